"""``python -m topogen.cli ...``: the same as ``topogen ...``."""

import sys

from topogen.cli import main

sys.exit(main())
