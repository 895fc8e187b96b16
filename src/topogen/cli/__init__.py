"""``topogen <stage> ...``: one subcommand per workflow rule, one module per rule family.

Exit codes: 0 success, 2 usage error (argparse), 1 failure with a one-line reason on stderr,
143 stopped by SIGTERM (SLURM's and Snakemake's stop signal; no output written, one line
saying where a rerun resumes), 130 interrupted.
Heavy libraries are imported inside the commands (and options generated from a library's
dataclass are added when their command is used) so that ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import os
import signal
from collections.abc import Sequence

from topogen import __version__
from topogen.cli import (
    config,
    data,
    dft,
    encode,
    generate,
    report,
    screen,
    ssl,
    tbnn,
    topology,
    train,
)
from topogen.cli.parser import CommandParser, HelpFormatter
from topogen.cli.stage import log
from topogen.errors import TopogenError

__all__ = ["Terminated", "build_parser", "main"]


class Terminated(BaseException):
    """SIGTERM (what SLURM and Snakemake send to stop a job) arrived."""


def _terminate(signum: int, frame: object) -> None:
    raise Terminated(signum)


# Registration order is the order of `topogen --help`.
FAMILIES = (data, encode, train, generate, screen, report, dft, topology, ssl, tbnn, config)


def build_parser() -> argparse.ArgumentParser:
    parser = CommandParser(
        prog="topogen",
        description="Generative design of 2D topological insulators: the commands that the "
        "Snakemake workflow's rules run. Every output gets a <file>.prov.json manifest.",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"topogen {__version__}")
    parser.add_argument(
        "--debug",
        action="store_true",
        default=bool(os.environ.get("TOPOGEN_DEBUG")),
        help="show the full traceback on failure (also: TOPOGEN_DEBUG=1)",
    )
    stages = parser.add_subparsers(dest="stage", required=True, metavar="STAGE")
    for family in FAMILIES:
        family.register(stages)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        log("topogen: interrupted")
        return 130
    except (Terminated, SystemExit) as exc:
        # Lightning turns SIGTERM into SIGTERMException, a SystemExit that would exit 0
        if isinstance(exc, SystemExit) and type(exc).__name__ != "SIGTERMException":
            raise
        workdir = getattr(args, "workdir", None)
        resume = f"running it again resumes from {workdir}" if workdir else "run it again"
        log(f"topogen: terminated (SIGTERM) before this step's outputs were written; {resume}")
        return 128 + signal.SIGTERM
    except Exception as exc:
        if args.debug:
            raise
        kind = "" if isinstance(exc, TopogenError) else f"{type(exc).__name__}: "
        reason = " ".join(str(exc).split()) or "no detail"
        log(f"topogen: error: {kind}{reason}")
        return 1
    finally:
        signal.signal(signal.SIGTERM, previous)
