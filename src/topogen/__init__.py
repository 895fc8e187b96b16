"""topogen: generative design of two-dimensional topological insulators.

The Snakemake workflow's rules each call one ``topogen`` subcommand; all logic lives here.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("topogen")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"
