"""``topogen <stage> ...``: one subcommand per workflow rule.

Exit codes: 0 success, 2 usage error (argparse), 1 failure with a one-line reason on stderr.
Heavy libraries are imported inside the commands so that ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from topogen import __version__
from topogen.errors import TopogenError

Handler = Callable[[argparse.Namespace], int | None]


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Show each option's default and keep the hand-made line breaks of descriptions."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.required or action.default in (None, argparse.SUPPRESS, False):
            return text
        if action.option_strings or action.nargs in ("?", "*"):
            text += " (default: %(default)s)"
        return text


def _config(args: argparse.Namespace, *exclude: str) -> dict:
    """The parameters a command ran with: the config subset recorded in its manifests."""
    skip = {"func", "debug", "stage", "command", *exclude}
    return {k: v for k, v in vars(args).items() if k not in skip}


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- data -------------------------------------------------------------------------------------


def _data_import(args: argparse.Namespace) -> int:
    from topogen.data.importers import import_files
    from topogen.io import provenance
    from topogen.io.quarantine import quarantine_path, write_quarantine
    from topogen.io.tables import write_records

    existing = [f for f in args.files if Path(f).exists()]
    with provenance.record("topogen data import", _config(args), inputs=existing) as run:
        result = import_files(args.files, source=args.source, min_distance=args.min_distance)
        if not result.records:
            raise TopogenError(
                f"no usable structure in {len(args.files)} file(s); first reason: "
                + (result.rejected[0].reason if result.rejected else "none")
            )
        write_records(result.records, run.output(args.out))
        qpath = write_quarantine(run.output(quarantine_path(args.out)), result.rejected)
    _log(
        f"imported {len(result.records)} structure(s) from {result.files_read} file(s) -> "
        f"{args.out}; {len(result.rejected)} quarantined -> {qpath}"
    )
    return 0


def _data_merge(args: argparse.Namespace) -> int:
    from topogen.data.merge import merge_tables
    from topogen.io import provenance
    from topogen.io.quarantine import quarantine_path, write_quarantine
    from topogen.io.tables import write_table

    with provenance.record("topogen data merge", _config(args), inputs=args.tables) as run:
        merged, report = merge_tables(args.tables)
        write_table(merged, run.output(args.out))
        write_quarantine(run.output(quarantine_path(args.out)), report.conflicts)
    _log(report.summary() + f" -> {args.out}")
    return 0


# --- report ---------------------------------------------------------------------------------


def _report_table(args: argparse.Namespace) -> int:
    from topogen.io import provenance
    from topogen.io.atomic import write_text
    from topogen.io.tables import read_table
    from topogen.report.tables import plot_table_summary, table_summary

    with provenance.record("topogen report table", _config(args), inputs=[args.table]) as run:
        summary = table_summary(read_table(args.table))
        plot_table_summary(summary, run.output(args.plot), title=Path(args.table).name)
        write_text(run.output(args.summary), json.dumps(summary, indent=2) + "\n")
    _log(f"{args.table}: {summary['rows']} structures -> {args.plot}, {args.summary}")
    return 0


# --- provenance -------------------------------------------------------------------------------


def _provenance(args: argparse.Namespace) -> int:
    from topogen.io import provenance

    node = provenance.lineage(args.file)
    if node.manifest is None and node.status == "ok":
        raise TopogenError(f"{args.file}: no provenance manifest ({args.file}.prov.json)")
    print(json.dumps(node.as_dict(), indent=2) if args.json else provenance.format_tree(node))
    provenance.check(args.file)  # raises, naming the first file that no longer matches
    return 0


# --- parser -----------------------------------------------------------------------------------


def _command(
    subparsers: argparse._SubParsersAction, name: str, handler: Handler, help: str, desc: str = ""
) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        name, help=help, description=desc or help, formatter_class=_HelpFormatter
    )
    parser.set_defaults(func=handler)
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="topogen",
        description="Generative design of 2D topological insulators: the commands that the "
        "Snakemake workflow's rules run. Every output gets a <file>.prov.json manifest.",
        formatter_class=_HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"topogen {__version__}")
    parser.add_argument(
        "--debug",
        action="store_true",
        default=bool(os.environ.get("TOPOGEN_DEBUG")),
        help="show the full traceback on failure (also: TOPOGEN_DEBUG=1)",
    )
    stages = parser.add_subparsers(dest="stage", required=True, metavar="STAGE")

    data = stages.add_parser(
        "data", help="import, merge and download structure data", formatter_class=_HelpFormatter
    )
    data_cmds = data.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = _command(
        data_cmds,
        "import",
        _data_import,
        "read structure files (CIF, extxyz/xyz, POSCAR, ASE .db) into a structure table",
        "Read structure files into a structure table (Parquet). Files, frames or database rows\n"
        "that cannot be used go to TABLE.quarantine.csv with the file and the reason.",
    )
    p.add_argument("files", nargs="+", metavar="FILE", help="structure files to read")
    p.add_argument("--out", required=True, metavar="TABLE", help="output table (.parquet)")
    p.add_argument("--source", default="import", help="value of the table's source column")
    p.add_argument(
        "--min-distance",
        type=float,
        default=0.5,
        metavar="A",
        help="reject structures with two atoms closer than this (Angstrom)",
    )
    p = _command(
        data_cmds,
        "merge",
        _data_merge,
        "concatenate structure tables, dropping duplicate ids",
        "Concatenate structure tables in the order given. A row whose id was already seen is\n"
        "dropped; if its structure differs it is listed in TABLE.quarantine.csv.",
    )
    p.add_argument("tables", nargs="+", metavar="TABLE", help="input tables (.parquet)")
    p.add_argument("--out", required=True, metavar="TABLE", help="output table (.parquet)")

    report = stages.add_parser(
        "report", help="summaries and plots of stage outputs", formatter_class=_HelpFormatter
    )
    report_cmds = report.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = _command(
        report_cmds,
        "table",
        _report_table,
        "summarise a structure table: a JSON summary and a PNG plot",
    )
    p.add_argument("table", metavar="TABLE", help="structure table (.parquet)")
    p.add_argument("--plot", required=True, metavar="PNG", help="output plot")
    p.add_argument("--summary", required=True, metavar="JSON", help="output summary")

    p = _command(
        stages,
        "provenance",
        _provenance,
        "print the lineage of a file and re-check every checksum",
        "Print the lineage tree of FILE back to its raw inputs, re-checking every sha256.\n"
        "Exits 1 naming the first file whose checksum no longer matches.",
    )
    p.add_argument("file", metavar="FILE", help="a file written by topogen")
    p.add_argument("--json", action="store_true", help="print the tree as JSON")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        _log("topogen: interrupted")
        return 130
    except Exception as exc:
        if args.debug:
            raise
        kind = "" if isinstance(exc, TopogenError) else f"{type(exc).__name__}: "
        reason = " ".join(str(exc).split()) or "no detail"
        _log(f"topogen: error: {kind}{reason}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
