"""``topogen report ...`` and ``topogen provenance``: summaries, plots and lineage of outputs."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from topogen.cli.parser import Subparsers, command, group, table_argument
from topogen.cli.stage import log, stage
from topogen.errors import TopogenError


def _table(args: argparse.Namespace) -> int:
    from topogen.io.quarantine import read_quarantine
    from topogen.io.tables import read_table
    from topogen.report.tables import plot_table_summary, table_summary

    quarantined = {
        Path(q).name.removesuffix(".parquet.quarantine.csv"): len(read_quarantine(q))
        for q in args.quarantine
    }
    with stage(args, inputs=[args.table, *args.quarantine]) as run:
        summary = table_summary(read_table(args.table), quarantined)
        plot_table_summary(summary, run.output(args.plot), title=Path(args.table).name)
        run.write_json(args.summary, summary)
    log(
        f"{args.table}: {summary['rows']} structures, {sum(quarantined.values())} quarantined "
        f"on the way -> {args.plot}, {args.summary}"
    )
    return 0


def _funnels(args: argparse.Namespace) -> int:
    import pandas as pd

    from topogen.report.funnels import funnel_counts, plot_funnels
    from topogen.report.training import write_metrics_csv
    from topogen.screen.funnel import STEPS

    names = args.names or [Path(f).parent.name for f in args.funnels]
    if len(names) != len(args.funnels) or len(set(names)) != len(names):
        raise TopogenError(f"--names: one distinct name per funnel table, got {names}")
    with stage(args, inputs=args.funnels) as run:
        counts = funnel_counts(
            {n: pd.read_parquet(f) for n, f in zip(names, args.funnels, strict=True)}, STEPS
        )
        write_metrics_csv(counts.reset_index(), run.output(args.table))
        plot_funnels(counts, run.output(args.plot))
    left = {name: int(n) for name, n in counts.iloc[-1].items()}
    log(f"report funnels: {left} left after every step -> {args.plot}")
    return 0


def _training(args: argparse.Namespace) -> int:
    from topogen.models.training import read_metrics
    from topogen.report.training import plot_training

    df = read_metrics(args.folder)
    if df.empty:
        raise TopogenError(
            f"{args.folder}: no training log (logs/version_*/metrics.csv); was the model "
            "trained here?"
        )
    with stage(args, inputs=[args.model]) as run:
        plot_training(df, run.output(args.plot), args.title or Path(args.folder).parent.name)
    log(f"report training: {len(df)} epochs of {args.folder} -> {args.plot}")
    return 0


def _config_reference(args: argparse.Namespace) -> int:
    from topogen.config_schema import load_config
    from topogen.io.atomic import write_text
    from topogen.report.config_reference import render

    text = render(load_config(args.schema), load_config(args.default), load_config(args.paper))
    write_text(args.out, text)
    log(f"report config-reference: {text.count(chr(10)) - 10} keys -> {args.out}")
    return 0


def _provenance(args: argparse.Namespace) -> int:
    from topogen.io import provenance

    node = provenance.lineage(args.file)
    if node.manifest is None and node.status == "ok":
        raise TopogenError(f"{args.file}: no provenance manifest ({args.file}.prov.json)")
    print(json.dumps(node.as_dict(), indent=2) if args.json else provenance.format_tree(node))
    provenance.check(args.file)  # raises, naming the first file that no longer matches
    return 0


def register(stages: Subparsers) -> None:
    """Add ``topogen report ...`` and ``topogen provenance``."""
    cmds = group(stages, "report", "summaries and plots of stage outputs", "command", "COMMAND")
    p = command(
        cmds,
        "config-reference",
        _config_reference,
        "the configuration reference (Markdown) from the schema and the two configs",
    )
    p.add_argument("--schema", default="workflow/schemas/config.schema.yaml", metavar="YAML")
    p.add_argument("--default", default="config/config.yaml", metavar="YAML")
    p.add_argument("--paper", default="config/paper.yaml", metavar="YAML")
    p.add_argument("--out", default="docs/configuration.md", metavar="MD", help="the reference")

    p = command(
        cmds,
        "funnels",
        _funnels,
        "the screening funnels side by side: candidates left after each step (CSV + PNG)",
    )
    p.add_argument("funnels", nargs="+", metavar="FUNNEL", help="funnel.parquet of each set")
    p.add_argument("--names", nargs="+", metavar="NAME", help="one per funnel (default: folder)")
    p.add_argument("--table", required=True, metavar="CSV", help="counts per step and set")
    p.add_argument("--plot", required=True, metavar="PNG", help="the funnels, one line each")
    p = command(
        cmds,
        "training",
        _training,
        "training curves of a model: losses and metrics per epoch (PNG)",
        "Reads Lightning's logs/version_*/metrics.csv in WORKDIR (every run, a resumed one\n"
        "included) and plots the losses and the other logged metrics per epoch.",
    )
    p.add_argument("folder", metavar="WORKDIR", help="the model's work folder (--workdir)")
    p.add_argument("--model", metavar="CKPT", help="the trained model (recorded as input)")
    p.add_argument("--title", help="plot title (default: the model's folder)")
    p.add_argument("--plot", required=True, metavar="PNG", help="the curves")
    p = command(cmds, "table", _table, "summarise a structure table: a JSON summary and a PNG plot")
    table_argument(p)
    p.add_argument("--plot", required=True, metavar="PNG", help="output plot")
    p.add_argument("--summary", required=True, metavar="JSON", help="output summary")
    p.add_argument(
        "--quarantine", nargs="*", default=[], metavar="CSV",
        help="quarantine files of the tables that fed it (counted per table)",
    )  # fmt: skip

    p = command(
        stages,
        "provenance",
        _provenance,
        "print the lineage of a file and re-check every checksum",
        "Print the lineage tree of FILE back to its raw inputs, re-checking every sha256.\n"
        "Exits 1 naming the first file whose checksum no longer matches.",
    )
    p.add_argument("file", metavar="FILE", help="a file written by topogen")
    p.add_argument("--json", action="store_true", help="print the tree as JSON")
