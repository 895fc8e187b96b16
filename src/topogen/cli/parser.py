"""Building blocks of the parser: help formatting, stages, commands and shared options."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Sequence
from typing import Any

Handler = Callable[[argparse.Namespace], int | None]
Subparsers = argparse._SubParsersAction
Setup = Callable[[argparse.ArgumentParser], None]


class CommandParser(argparse.ArgumentParser):
    """A parser whose options may be added :func:`later`: when it parses or shows its help,
    so that ``topogen --help`` does not import the libraries that hold their dataclasses.
    Subparsers inherit the class."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.deferred: list[Setup] = []

    def complete(self) -> None:
        while self.deferred:
            self.deferred.pop(0)(self)

    def parse_known_args(
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        self.complete()
        return super().parse_known_args(args, namespace)

    def format_help(self) -> str:
        self.complete()
        return super().format_help()


def later(parser: argparse.ArgumentParser, setup: Setup) -> None:
    """Run ``setup(parser)`` (adding options) once the command is used or its help shown."""
    if isinstance(parser, CommandParser):
        parser.deferred.append(setup)
    else:
        setup(parser)


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Show each option's default and keep the hand-made line breaks of descriptions."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.required or action.default in (None, argparse.SUPPRESS, False):
            return text
        if "%(default)" in text or "(default:" in text:  # already says it
            return text
        if action.option_strings or action.nargs in ("?", "*"):
            text += " (default: %(default)s)"
        return text


def command(
    subparsers: Subparsers, name: str, handler: Handler, help: str, desc: str = ""
) -> argparse.ArgumentParser:
    """Add ``name`` (run by ``handler``) to a stage; its manifests name its full command."""
    parser = subparsers.add_parser(
        name, help=help, description=desc or help, formatter_class=HelpFormatter
    )
    parser.set_defaults(func=handler, command_line=parser.prog)
    return parser


def group(stages: Subparsers, name: str, help: str, dest: str, metavar: str) -> Subparsers:
    """A stage (``topogen NAME ...``) whose subcommands are added to the returned object."""
    parser = stages.add_parser(name, help=help, formatter_class=HelpFormatter)
    return parser.add_subparsers(dest=dest, required=True, metavar=metavar)


def threads_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--threads",
        type=int,
        default=int(os.environ.get("OMP_NUM_THREADS", "1")),
        help="torch threads (default: $OMP_NUM_THREADS or 1)",
    )


def gpus_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--gpus",
        default="auto",
        help="GPUs to train on: auto (one if there is one), 0 (CPU) or N (the rule's gpu "
        "resource); mixed precision on a GPU",
    )


def table_argument(p: argparse.ArgumentParser, help: str = "structure table (.parquet)") -> None:
    p.add_argument("table", metavar="TABLE", help=help)


def out_option(p: argparse.ArgumentParser, metavar: str = "TABLE", help: str = "") -> None:
    p.add_argument("--out", required=True, metavar=metavar, help=help or "output table (.parquet)")


def min_distance_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--min-distance",
        type=float,
        default=0.5,
        metavar="A",
        help="reject structures with two atoms closer than this (Angstrom)",
    )
