"""``topogen data ...`` and ``topogen download``: raw files in, structure tables out."""

from __future__ import annotations

import argparse
from pathlib import Path

from topogen.cli.options import add_options, read_options
from topogen.cli.parser import (
    Subparsers,
    command,
    group,
    later,
    min_distance_option,
    out_option,
    threads_option,
)
from topogen.cli.stage import config, log, stage
from topogen.io.labels import LABELS_FILE

# The relaxation settings `data prototypes` exposes (type and default from RelaxSettings).
RELAX_HELP = {"fmax": "force criterion", "steps": "maximum FIRE steps"}

# --- handlers ----------------------------------------------------------------------------------


def _import(args: argparse.Namespace) -> int:
    from topogen.data.importers import import_files

    with stage(args, inputs=[f for f in args.files if Path(f).exists()]) as run:
        result = import_files(args.files, source=args.source, min_distance=args.min_distance)
        run.save_records(result, args.out, f"imported from {result.files_read} file(s):")
    return 0


def _normalize(args: argparse.Namespace) -> int:
    """``topogen data normalize SOURCE ...``: a downloaded raw file -> structure table."""
    from topogen.data.sources import read_source

    if not isinstance(args.inputs, list):  # nargs="?"
        args.inputs = [args.inputs] if args.inputs else []
    extra = (getattr(args, "mp_table", None), getattr(args, "uncharacterized", None))
    with stage(args, inputs=[*args.inputs, *extra]) as run:
        result = read_source(args.source, args.inputs, config(args))
        if args.source == "topoa":
            _save_labels(run, result, args.out)
        else:
            run.save_records(result, args.out, f"normalized {args.source}:")
    return 0


def _save_labels(run, result, out: str) -> None:
    """Write a label table (not structures: space group, formula, label) and its quarantine."""
    from topogen.io.atomic import atomic_path

    with atomic_path(run.output(out)) as tmp:
        result.labels.to_parquet(tmp, index=False)
    qpath = run.quarantine(out, result.rejected)
    counts = result.labels["label"].value_counts()
    log(
        f"topoa: {len(result.labels)} labels ({counts.get(1, 0)} topological, "
        f"{counts.get(0, 0)} trivial) from {result.lines_read} lines; "
        f"{result.duplicates_merged} duplicates merged, {result.conflicts_dropped} conflicts "
        f"dropped -> {out}; {len(result.rejected)} quarantined -> {qpath}"
    )


def _prototypes(args: argparse.Namespace) -> int:
    from topogen.calc.relax import RelaxSettings
    from topogen.data.prototypes import build_library, labels_for
    from topogen.io.tables import LoadResult
    from topogen.runtime import Progress

    meter: list[Progress] = []

    def progress(done: int, total: int) -> None:
        if not meter:
            meter.append(Progress("prototypes relaxed", total))
        meter[0].update(done)

    with stage(args, inputs=[args.labels]) as run:
        records, rejected = build_library(
            n_max=args.max_candidates,
            seed=args.seed,
            settings=read_options(args, RelaxSettings, only=RELAX_HELP),
            threads=args.threads,
            progress=progress,
        )
        labels_for(records, args.labels)
        run.save_records(LoadResult(records, rejected), args.out, "prototypes:")
    return 0


def _query_mp(args: argparse.Namespace) -> int:
    from topogen.data.mp import query_mp

    with stage(args) as run:
        n = query_mp(
            run.output(args.out),
            elements=args.elements,
            exclude_elements=args.exclude_elements,
            num_sites=tuple(args.num_sites) if args.num_sites else None,
            energy_above_hull_max=args.energy_above_hull_max,
            band_gap=tuple(args.band_gap) if args.band_gap else None,
            chunk_size=args.chunk_size,
            num_chunks=args.num_chunks,
        )
    log(f"mp: {n} summary document(s) -> {args.out}")
    return 0


def _merge(args: argparse.Namespace) -> int:
    from topogen.data.merge import merge_tables
    from topogen.io.tables import write_table

    with stage(args, inputs=args.tables) as run:
        merged, report = merge_tables(args.tables)
        write_table(merged, run.output(args.out))
        run.quarantine(args.out, report.conflicts)
    log(report.summary() + f" -> {args.out}")
    return 0


def _download(args: argparse.Namespace) -> int:
    from topogen.io.downloads import download

    local = args.url.removeprefix("file://")
    inputs = [local] if "://" not in local and Path(local).exists() else []
    with stage(args, inputs=inputs) as run:
        result = download(
            args.url,
            run.output(args.out),
            sha256=args.sha256,
            timeout=args.timeout,
            retries=args.retries,
            source=args.source,
            config_key=args.config_key,
            progress=not args.quiet,
        )
        run.extra.update(result.as_dict())
    log(f"{args.out}: {result.size} bytes, sha256 {result.sha256}")
    return 0


# --- parser ------------------------------------------------------------------------------------


def register(stages: Subparsers) -> None:
    """Add ``topogen data ...`` and ``topogen download``."""
    cmds = group(stages, "data", "import, merge and download structure data", "command", "COMMAND")
    p = command(
        cmds,
        "import",
        _import,
        "read structure files (CIF, extxyz/xyz, POSCAR, ASE .db) into a structure table",
        "Read structure files into a structure table (Parquet). Files, frames or database rows\n"
        "that cannot be used go to TABLE.quarantine.csv with the file and the reason.",
    )
    p.add_argument("files", nargs="+", metavar="FILE", help="structure files to read")
    out_option(p)
    p.add_argument("--source", default="import", help="value of the table's source column")
    min_distance_option(p)
    _register_normalize(cmds)
    _register_prototypes(cmds)
    _register_query_mp(cmds)

    p = command(
        cmds,
        "merge",
        _merge,
        "concatenate structure tables, dropping duplicate ids",
        "Concatenate structure tables in the order given. A row whose id was already seen is\n"
        "dropped; if its structure differs it is listed in TABLE.quarantine.csv.",
    )
    p.add_argument("tables", nargs="+", metavar="TABLE", help="input tables (.parquet)")
    out_option(p)
    _register_download(stages)


def _c2db_options(p: argparse.ArgumentParser) -> None:
    from topogen.data.c2db import TOPOLOGICAL

    p.add_argument(
        "--topological",
        nargs="+",
        default=list(TOPOLOGICAL),
        metavar="CLASS",
        help="spin-Chern classes of C2DB's Topology key labelled topological (QSHI and/or "
        "CRI); QAHI (Chern insulators) get no label, trivial ones 0",
    )


def _register_normalize(cmds: Subparsers) -> None:
    from topogen.cli.parser import HelpFormatter

    normalize = cmds.add_parser(
        "normalize",
        help="turn a downloaded source file into a structure table",
        formatter_class=HelpFormatter,
    )
    sources = normalize.add_subparsers(dest="source", required=True, metavar="SOURCE")

    def source(
        name: str, help: str, inputs: str = "FILE", nargs: str = "1"
    ) -> argparse.ArgumentParser:
        p = command(sources, name, _normalize, help)
        p.add_argument(
            "inputs", nargs=nargs if nargs != "1" else 1, metavar=inputs, help="the downloaded file"
        )
        out_option(p)
        min_distance_option(p)
        return p

    p = source("c2db", "the C2DB ASE database (c2db.db)", "DB")
    later(p, _c2db_options)
    source("jarvis-c2db", "JARVIS's copy of C2DB (the figshare zip or its json)", "ZIP")
    source("mp", "Materials Project summary documents written by `topogen data query-mp`", "JSON")
    p = source(
        "qm9",
        "the QM9 xyz archive, or qm9pack's CSV files when no archive is given",
        "ARCHIVE",
        nargs="?",
    )
    p.add_argument(
        "--uncharacterized",
        metavar="TXT",
        help="QM9's list of uncharacterized molecules (they are quarantined)",
    )
    p.add_argument(
        "--qm9pack-dir",
        metavar="DIR",
        help="qm9pack's data folder (default: the installed package's)",
    )
    p.add_argument("--limit", type=int, metavar="N", help="stop after N molecules")
    source("c2db-subset", "the C2DB subset of the reference data (coordinates repaired)", "ROOT")
    source("mc2d", "the MC2D v4 monolayers of the reference data", "ROOT")
    source(
        "mc2d-gaps",
        "an MC2D structures file (.json/.json.gz): resources/mc2d_gaps.json.gz or the full source",
        "JSON",
    )
    p = source("logan", "one LoGAN benchmark set of the reference data", "ROOT")
    p.add_argument(
        "--set",
        required=True,
        metavar="NAME",
        help="C5H12O_training, C5H12O_ground_truth, or mp-<id>_training/_ground_truth",
    )
    source("topoa", "TopoA label files (ti/tci/case1/case3_ccmp.txt) -> a label table", "DIR")
    p = source("tqc", "a Topological Quantum Chemistry export joined to MP structures", "CSV")
    p.add_argument(
        "--mp-table",
        required=True,
        metavar="TABLE",
        help="the Materials Project table (from `normalize mp`) to join on ICSD ids",
    )


def _register_prototypes(cmds: Subparsers) -> None:
    p = command(
        cmds,
        "prototypes",
        _prototypes,
        "build the offline 2D library: prototypes x substitutions, relaxed with CHGNet",
        "Build common 2D prototypes with element substitutions, relax them with CHGNet\n"
        "(atoms and in-plane cell; the vacuum is kept), quarantine those that fall apart,\n"
        "do not converge or duplicate another, and attach literature topo2d labels.",
    )
    out_option(p)
    p.add_argument(
        "--labels",
        default=str(LABELS_FILE),
        metavar="CSV",
        help="literature topology labels (formula, prototype, label, invariant, reference)",
    )
    p.add_argument("--max-candidates", type=int, metavar="N", help="take N candidates (all)")
    p.add_argument("--seed", type=int, default=0, help="seed of the candidate choice and rattle")
    later(p, _relax_options)
    threads_option(p)


def _relax_options(p: argparse.ArgumentParser) -> None:
    from topogen.calc.relax import RelaxSettings

    add_options(p, RelaxSettings, RELAX_HELP, only=RELAX_HELP, metavars={"fmax": "EV_A"})


def _register_query_mp(cmds: Subparsers) -> None:
    p = command(
        cmds,
        "query-mp",
        _query_mp,
        "download Materials Project summary documents with mp-api (key: $MP_API_KEY)",
    )
    p.add_argument("--out", required=True, metavar="JSON_GZ", help="raw documents (.json.gz)")
    p.add_argument("--elements", nargs="+", metavar="EL", help="all of these elements")
    p.add_argument("--exclude-elements", nargs="+", metavar="EL", help="none of these")
    p.add_argument(
        "--num-sites", nargs=2, type=int, metavar=("MIN", "MAX"), help="number of sites per cell"
    )
    p.add_argument(
        "--energy-above-hull-max",
        type=float,
        metavar="EV",
        help="maximum energy above the hull (eV/atom)",
    )
    p.add_argument(
        "--band-gap", nargs=2, type=float, metavar=("MIN", "MAX"), help="band gap range (eV)"
    )
    p.add_argument("--chunk-size", type=int, default=1000, help="documents per page")
    p.add_argument("--num-chunks", type=int, metavar="N", help="stop after N pages")


def _register_download(stages: Subparsers) -> None:
    p = command(
        stages,
        "download",
        _download,
        "download one file (resumable, retried, checksummed) or copy a local one",
        "Download URL to PATH: streamed to PATH's folder, resumed with HTTP Range after an\n"
        "interruption, retried with backoff, checked against --sha256, renamed into place.\n"
        "URL may be a local path or file:// URL (copied with the same checks).",
    )
    p.add_argument("--url", required=True, help="http(s):// or file:// URL, or a local path")
    p.add_argument("--out", required=True, metavar="PATH", help="where the file goes")
    p.add_argument("--sha256", metavar="HEX", help="expected sha256 (mismatch: nothing written)")
    p.add_argument(
        "--timeout",
        type=float,
        default=60.0,
        metavar="S",
        help="seconds without data before an attempt is abandoned",
    )
    p.add_argument(
        "--retries", type=int, default=4, metavar="N", help="retries after the first try"
    )
    p.add_argument("--source", default="", help="source name used in error messages")
    p.add_argument(
        "--config-key",
        default="",
        metavar="KEY",
        help="config key that points to a local copy, named in error messages",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
