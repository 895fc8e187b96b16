"""The offline reference-data folder (``../shared/data``) used by benchmarks and tests.

The folder is never part of the repository: every loader takes its root as an argument, and
:func:`shared_data_root` resolves the default (``$TOPOGEN_SHARED_DATA``, else
``<repo>/../shared/data``). Each folder, its origin and licence are described in its README.

=========== ====================================================== ==========================
source      loader                                                 returns
=========== ====================================================== ==========================
``logan``   :func:`topogen.data.logan.load_logan` (QM9, MP SiO2)   records (Molecule/Structure)
``topoa``   :func:`topogen.data.topoa.load_topoa` (labels only)    DataFrame of labels
``mc2d``    :func:`topogen.data.mc2d.load_mc2d` (258 monolayers)   records (Structure)
``c2db``    :func:`topogen.data.c2db.load_c2db_subset` (4,033)     records, coordinates repaired
=========== ====================================================== ==========================

Entries that cannot be used become :class:`~topogen.io.quarantine.Rejected` rows (file,
position, id, reason); the rest proceed. A missing file raises :class:`ReferenceDataError`.
"""

from __future__ import annotations

import os
from pathlib import Path

from topogen.errors import TopogenError

ENV_VAR = "TOPOGEN_SHARED_DATA"


class ReferenceDataError(TopogenError):
    """A reference file is missing or unreadable as a whole."""


def shared_data_root(path: str | os.PathLike[str] | None = None) -> Path | None:
    """The reference-data folder: ``path``, else ``$TOPOGEN_SHARED_DATA``, else
    ``<repo>/../shared/data``; None when that folder does not exist."""
    if path is None:
        env = os.environ.get(ENV_VAR)
        path = env if env else Path(__file__).resolve().parents[3].parent / "shared" / "data"
    root = Path(path).expanduser()
    return root if root.is_dir() else None


def require_file(path: Path, what: str) -> Path:
    if not path.is_file():
        raise ReferenceDataError(f"{path}: no such file ({what})")
    return path
