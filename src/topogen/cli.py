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


def _save(run, result, out: str, verb: str) -> None:
    """Write a LoadResult's table and quarantine file, registered with the run; log counts."""
    from topogen.io.quarantine import quarantine_path, write_quarantine
    from topogen.io.tables import write_records

    if not result.records:
        first = result.rejected[0] if result.rejected else None
        raise TopogenError(
            f"no usable structure; {len(result.rejected)} rejected"
            + (f", first: {first.file} {first.item} {first.reason}" if first else "")
        )
    write_records(result.records, run.output(out))
    qpath = write_quarantine(run.output(quarantine_path(out)), result.rejected)
    _log(
        f"{verb} {len(result.records)} structure(s) -> {out}; "
        f"{len(result.rejected)} quarantined -> {qpath}"
    )


def _save_labels(run, result, out: str) -> None:
    """Write a label table (not structures: space group, formula, label) and its quarantine."""
    from topogen.io.atomic import atomic_path
    from topogen.io.quarantine import quarantine_path, write_quarantine

    with atomic_path(run.output(out)) as tmp:
        result.labels.to_parquet(tmp, index=False)
    qpath = write_quarantine(run.output(quarantine_path(out)), result.rejected)
    counts = result.labels["label"].value_counts()
    _log(
        f"topoa: {len(result.labels)} labels ({counts.get(1, 0)} topological, "
        f"{counts.get(0, 0)} trivial) from {result.lines_read} lines; "
        f"{result.duplicates_merged} duplicates merged, {result.conflicts_dropped} conflicts "
        f"dropped -> {out}; {len(result.rejected)} quarantined -> {qpath}"
    )


def _data_import(args: argparse.Namespace) -> int:
    from topogen.data.importers import import_files
    from topogen.io import provenance

    existing = [f for f in args.files if Path(f).exists()]
    with provenance.record("topogen data import", _config(args), inputs=existing) as run:
        result = import_files(args.files, source=args.source, min_distance=args.min_distance)
        _save(run, result, args.out, f"imported from {result.files_read} file(s):")
    return 0


def _normalize(args: argparse.Namespace) -> int:
    """``topogen data normalize SOURCE ...``: a downloaded raw file -> structure table."""
    from topogen.data import c2db, logan, mc2d, mp, qm9, topoa, tqc
    from topogen.io import provenance
    from topogen.io.tables import read_records

    if not isinstance(args.inputs, list):  # nargs="?"
        args.inputs = [args.inputs] if args.inputs else []
    inputs = [
        p
        for p in (
            *args.inputs,
            getattr(args, "mp_table", None),
            getattr(args, "uncharacterized", None),
        )
        if p
    ]
    command = f"topogen data normalize {args.source}"
    with provenance.record(command, _config(args), inputs=inputs) as run:
        if args.source == "c2db":
            result = c2db.load_c2db_db(args.inputs[0], args.topological, args.min_distance)
        elif args.source == "jarvis-c2db":
            result = c2db.load_jarvis_c2db(args.inputs[0], args.min_distance)
        elif args.source == "mp":
            result = mp.load_mp(args.inputs[0], args.min_distance)
        elif args.source == "qm9":
            if args.inputs:
                result = qm9.load_qm9(args.inputs[0], args.uncharacterized, args.limit)
            else:
                result = qm9.load_qm9pack(args.qm9pack_dir, args.limit)
        elif args.source == "tqc":
            result = tqc.join_tqc(args.inputs[0], read_records(args.mp_table))
        elif args.source == "c2db-subset":
            result = c2db.load_c2db_subset(args.inputs[0])
        elif args.source == "mc2d":
            result = mc2d.load_mc2d(args.inputs[0], args.min_distance)
        elif args.source == "logan":
            result = logan.load_logan(args.inputs[0], args.set)
        elif args.source == "topoa":
            _save_labels(run, topoa.load_topoa(args.inputs[0]), args.out)
            return 0
        else:  # pragma: no cover - argparse restricts the choices
            raise TopogenError(f"unknown source {args.source!r}")
        _save(run, result, args.out, f"normalized {args.source}:")
    return 0


def _prototypes(args: argparse.Namespace) -> int:
    from topogen.calc.relax import RelaxSettings
    from topogen.data.prototypes import build_library, labels_for
    from topogen.io import provenance
    from topogen.io.tables import LoadResult

    def progress(done: int, total: int) -> None:
        _log(f"prototypes: relaxed {done}/{total}")

    seeds = {"seed": args.seed}
    inputs = [args.labels]
    with provenance.record("topogen data prototypes", _config(args), inputs, seeds) as run:
        records, rejected = build_library(
            n_max=args.max_candidates,
            seed=args.seed,
            settings=RelaxSettings(fmax=args.fmax, steps=args.steps),
            threads=args.threads,
            progress=progress,
        )
        labels_for(records, args.labels)
        _save(run, LoadResult(records, rejected), args.out, "prototypes:")
    return 0


def _query_mp(args: argparse.Namespace) -> int:
    from topogen.data.mp import query_mp
    from topogen.io import provenance

    with provenance.record("topogen data query-mp", _config(args)) as run:
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
    _log(f"mp: {n} summary document(s) -> {args.out}")
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


# --- encode -----------------------------------------------------------------------------------


def _encode(args: argparse.Namespace) -> int:
    """``topogen encode graphs|tokens|descriptors TABLE --out FILE``."""
    from topogen.encode import encoded
    from topogen.io import provenance
    from topogen.io.quarantine import quarantine_path, write_quarantine
    from topogen.io.tables import read_records
    from topogen.runtime import set_threads

    set_threads(args.threads)
    params = _config(args, "table", "out", "threads")
    with provenance.record(f"topogen encode {args.kind}", _config(args), [args.table]) as run:
        records = read_records(args.table)
        rejected = encoded.encode_table(
            records, args.kind, run.output(args.out), params, source=args.table
        )
        write_quarantine(run.output(quarantine_path(args.out)), rejected)
    _log(
        f"encode {args.kind}: {len(records) - len(rejected)} of {len(records)} structures "
        f"-> {args.out}; {len(rejected)} quarantined"
    )
    return 0


def _encode_images(args: argparse.Namespace) -> int:
    """``topogen encode images TABLE --out PT --model CKPT``: autoencoders + crystal images."""
    from topogen.io import provenance
    from topogen.io.atomic import write_text
    from topogen.io.quarantine import quarantine_path, write_quarantine
    from topogen.io.tables import read_records
    from topogen.models.autoencoder.images import ImageSettings, encode_images
    from topogen.runtime import accelerator_devices, set_threads

    set_threads(args.threads)
    names = ImageSettings.__dataclass_fields__
    settings = ImageSettings(**{k: v for k, v in vars(args).items() if k in names})
    seeds = {"seed": args.seed}
    with provenance.record("topogen encode images", _config(args), [args.table], seeds) as run:
        records = read_records(args.table)
        metrics, rejected = encode_images(
            records,
            run.output(args.out),
            run.output(args.model),
            args.workdir,
            settings,
            source=args.table,
            accelerator=accelerator_devices(args.gpus)[0],
            log=_log,
        )
        write_text(run.output(args.metrics), json.dumps(metrics, indent=2) + "\n")
        write_quarantine(run.output(quarantine_path(args.out)), rejected)
    held = metrics["held_out"] or {}
    _log(
        f"encode images: {metrics['n_encoded']} of {len(records)} structures -> {args.out}; "
        f"{len(rejected)} quarantined; held-out round trip "
        f"{held.get('n_reproduced', 0)}/{held.get('n', 0)} reproduced, mean site error "
        f"{held.get('mean_site_error_A', float('nan')):.3f} A"
    )
    return 0


# --- train ------------------------------------------------------------------------------------


def _train_cgcnn(args: argparse.Namespace) -> int:
    from topogen.io import provenance
    from topogen.io.atomic import write_text
    from topogen.io.quarantine import quarantine_path, write_quarantine
    from topogen.models.cgcnn.train import load_graph_set, train_cgcnn
    from topogen.runtime import set_threads

    set_threads(args.threads)
    inputs = [args.graphs, args.table]
    seeds = {"seed": args.seed}
    with provenance.record("topogen train cgcnn", _config(args), inputs, seeds) as run:
        data = load_graph_set(args.graphs, args.table, args.target)
        _log(
            f"cgcnn: {len(data.graphs)} structures with {args.target!r}, "
            f"{len(data.rejected)} without"
        )
        metrics = train_cgcnn(
            data,
            args.workdir,
            run.output(args.out),
            epochs=args.epochs,
            seed=args.seed,
            batch_size=args.batch_size,
            hidden=args.hidden,
            layers=args.layers,
            lr=args.lr,
            accelerator=args.accelerator,
        )
        write_text(run.output(args.metrics), json.dumps(metrics, indent=2) + "\n")
        write_quarantine(run.output(quarantine_path(args.out)), data.rejected)
    _log(
        f"cgcnn: held-out MAE {metrics['test_mae_ev']:.3f} eV (predicting the mean: "
        f"{metrics['test_mae_of_train_mean_ev']:.3f} eV) -> {args.out}"
    )
    return 0


def _train_gan(args: argparse.Namespace) -> int:
    """``topogen train gan --stage N``: one stage of the three-stage GAN."""
    from topogen.io import provenance
    from topogen.models.gan3.oracle import OracleSettings
    from topogen.models.gan3.settings import GanSettings
    from topogen.models.gan3.train import train_stage
    from topogen.report.training import plot_training, write_metrics_csv
    from topogen.runtime import accelerator_devices, set_threads

    set_threads(args.threads)
    accelerator, devices = accelerator_devices(args.gpus)
    optional = [args.init, args.autoencoder, args.band_gap_model]
    inputs = [args.images, args.table, *(p for p in optional if p)]
    oracle = {k: getattr(args, k) for k in ("fmax", "relax_steps", "min_repeat_2d", "band_gap_min")}
    names = ("noise_dim", "width", "lr", "adv_weight", "reward_weight", "reward_steps", "seed")
    names += ("oracle_samples", "epochs", "batch_size", "patience")
    settings = GanSettings(**{k: getattr(args, k) for k in names}, oracle=OracleSettings(**oracle))
    command = f"topogen train gan --stage {args.stage}"
    with provenance.record(command, _config(args), inputs, {"seed": args.seed}) as run:
        metrics = train_stage(
            args.stage,
            args.images,
            args.table,
            args.workdir,
            run.output(args.out),
            settings,
            init=args.init,
            autoencoder=args.autoencoder,
            band_gap_model=args.band_gap_model,
            accelerator=accelerator,
            devices=devices,
            threads=args.threads,
            log=_log,
        )
        write_metrics_csv(metrics, run.output(args.metrics))
        plot_training(metrics, run.output(args.plot), f"GAN stage {args.stage}")
    last = metrics.iloc[-1].to_dict() if len(metrics) else {}
    shown = ", ".join(
        f"{k} {v:.3g}" for k, v in last.items() if k != "epoch" and isinstance(v, float)
    )
    _log(f"gan stage {args.stage}: {len(metrics)} epochs -> {args.out}; last epoch: {shown}")
    return 0


def _generate_gan(args: argparse.Namespace) -> int:
    from topogen.io import provenance
    from topogen.models.gan3.sampling import sample_candidates
    from topogen.runtime import set_threads

    set_threads(args.threads)
    inputs = [args.generator, args.autoencoder]
    with provenance.record(
        "topogen generate gan", _config(args), inputs, {"seed": args.seed}
    ) as run:
        result = sample_candidates(args.generator, args.autoencoder, args.n, args.seed)
        _save(run, result, args.out, f"gan: {args.n} samples,")
    return 0


# --- screen -----------------------------------------------------------------------------------


def _screen_split(args: argparse.Namespace) -> int:
    from topogen.io import provenance
    from topogen.screen.chunks import split_file

    with provenance.record("topogen screen split", _config(args), [args.table]) as run:
        sizes = split_file(args.table, [run.output(p) for p in args.out])
    _log(
        f"screen split: {sum(sizes)} candidates -> {len(sizes)} chunks ({min(sizes)}-{max(sizes)})"
    )
    return 0


def _screen_options(args: argparse.Namespace):
    from topogen.screen.funnel import FunnelOptions
    from topogen.screen.validity import ValidityOptions

    return FunnelOptions(
        fmax=args.fmax,
        steps=args.steps,
        batch_size=args.batch_size,
        phonons=not args.no_phonons,
        displacement=args.displacement,
        min_repeat_2d=args.min_repeat_2d,
        symprec=args.symprec,
        tol=args.tol,
        gamma_tol=args.gamma_tol,
        gamma_radius=args.gamma_radius,
        band_gap_min=args.band_gap_min,
        topology_min=args.topology_min,
        validity=ValidityOptions(
            min_distance=args.min_distance, oxidation_states_set=args.oxidation_states
        ),
    )


def _screen_chunk(args: argparse.Namespace) -> int:
    from topogen.io import provenance
    from topogen.screen.chunks import run_chunk, summary

    inputs = [args.candidates, *([args.training] if args.training else [])]
    band_gap = None
    if args.band_gap_model:  # the CGCNN of `topogen train cgcnn`
        from topogen.models.cgcnn.model import load_cgcnn, predict_gaps

        inputs.append(args.band_gap_model)
        gap_model = load_cgcnn(args.band_gap_model)
        band_gap = lambda structures: predict_gaps(gap_model, structures).numpy()  # noqa: E731
    with provenance.record("topogen screen chunk", _config(args), inputs) as run:
        result = run_chunk(
            args.candidates,
            band_gap=band_gap,
            out=run.output(args.out),
            funnel=run.output(args.funnel),
            dos=run.output(args.dos),
            training=args.training,
            chunk=args.chunk,
            options=_screen_options(args),
            threads=args.threads,
            workers=args.workers,
            log=_log,
        )
    counts = summary(result.frame())
    _log(
        f"screen chunk {args.chunk}: {len(result.rows)} candidates, "
        + ", ".join(f"{s} {c['pass']} pass" for s, c in counts.items())
        + f"; {len(result.records)} relaxed -> {args.out}"
    )
    return 0


def _screen_merge(args: argparse.Namespace) -> int:
    from topogen.io import provenance
    from topogen.screen.chunks import merge_files

    inputs = [*args.funnel_in, *args.structures_in, *args.dos_in]
    with provenance.record("topogen screen merge", _config(args), inputs) as run:
        counts = merge_files(
            args.funnel_in,
            args.structures_in,
            args.dos_in,
            funnel_out=run.output(args.funnel),
            survivors_out=run.output(args.out),
            dos_out=run.output(args.dos),
        )
    _log("screen merge: " + json.dumps(counts))
    return 0


def _screen_select(args: argparse.Namespace) -> int:
    from topogen.io import provenance
    from topogen.screen.selection import select_file

    seeds = {"seed": args.seed}
    with provenance.record("topogen screen select", _config(args), [args.table], seeds) as run:
        chosen = select_file(
            args.table,
            run.output(args.out),
            args.slots,
            seed=args.seed,
            r_cut=args.r_cut,
            n_max=args.n_max,
            l_max=args.l_max,
        )
    _log(f"screen select: {len(chosen)} structures for DFT -> {args.out}")
    return 0


# --- download ---------------------------------------------------------------------------------


def _download(args: argparse.Namespace) -> int:
    from topogen.io import provenance
    from topogen.io.downloads import download

    local = args.url.removeprefix("file://")
    inputs = [local] if "://" not in local and Path(local).exists() else []
    with provenance.record("topogen download", _config(args), inputs=inputs) as run:
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
    _log(f"{args.out}: {result.size} bytes, sha256 {result.sha256}")
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


def _group(
    stages: argparse._SubParsersAction, name: str, help: str, dest: str, metavar: str
) -> argparse._SubParsersAction:
    """A stage (``topogen NAME ...``) whose subcommands are added to the returned object."""
    parser = stages.add_parser(name, help=help, formatter_class=_HelpFormatter)
    return parser.add_subparsers(dest=dest, required=True, metavar=metavar)


def _threads_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--threads",
        type=int,
        default=int(os.environ.get("OMP_NUM_THREADS", "1")),
        help="torch threads (default: $OMP_NUM_THREADS or 1)",
    )


def _gpus_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--gpus",
        default="auto",
        help="GPUs to train on: auto (one if there is one), 0 (CPU) or N (the rule's gpu "
        "resource); mixed precision on a GPU",
    )


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

    data_cmds = _group(
        stages, "data", "import, merge and download structure data", "command", "COMMAND"
    )
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
    normalize = data_cmds.add_parser(
        "normalize",
        help="turn a downloaded source file into a structure table",
        formatter_class=_HelpFormatter,
    )
    sources = normalize.add_subparsers(dest="source", required=True, metavar="SOURCE")

    def source(
        name: str, help: str, inputs: str = "FILE", nargs: str = "1"
    ) -> argparse.ArgumentParser:
        p = _command(sources, name, _normalize, help)
        p.add_argument(
            "inputs", nargs=nargs if nargs != "1" else 1, metavar=inputs, help="the downloaded file"
        )
        p.add_argument("--out", required=True, metavar="TABLE", help="output table (.parquet)")
        p.add_argument(
            "--min-distance",
            type=float,
            default=0.5,
            metavar="A",
            help="reject structures with two atoms closer than this (Angstrom)",
        )
        return p

    p = source("c2db", "the C2DB ASE database (c2db.db)", "DB")
    p.add_argument(
        "--topological",
        nargs="+",
        default=["QSHI", "QAHI", "CRI"],
        metavar="VALUE",
        help="values of C2DB's Topology key that are labelled topological",
    )
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

    p = _command(
        data_cmds,
        "prototypes",
        _prototypes,
        "build the offline 2D library: prototypes x substitutions, relaxed with CHGNet",
        "Build common 2D prototypes with element substitutions, relax them with CHGNet\n"
        "(atoms and in-plane cell; the vacuum is kept), quarantine those that fall apart,\n"
        "do not converge or duplicate another, and attach literature topo2d labels.",
    )
    p.add_argument("--out", required=True, metavar="TABLE", help="output table (.parquet)")
    p.add_argument(
        "--labels",
        default="resources/topo2d_labels.csv",
        metavar="CSV",
        help="literature topology labels (formula, prototype, label, reference)",
    )
    p.add_argument("--max-candidates", type=int, metavar="N", help="take N candidates (all)")
    p.add_argument("--fmax", type=float, default=0.05, metavar="EV_A", help="force criterion")
    p.add_argument("--steps", type=int, default=300, help="maximum FIRE steps")
    p.add_argument("--seed", type=int, default=0, help="seed of the candidate choice and rattle")
    _threads_option(p)

    p = _command(
        data_cmds,
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

    encode_cmds = _group(stages, "encode", "encode structures for the models", "kind", "KIND")

    def encoder(name: str, help: str) -> argparse.ArgumentParser:
        p = _command(encode_cmds, name, _encode, help)
        p.add_argument("table", metavar="TABLE", help="structure table (.parquet)")
        p.add_argument("--out", required=True, metavar="PT", help="encoded data set (.pt)")
        p.add_argument(
            "--threads",
            type=int,
            default=int(os.environ.get("OMP_NUM_THREADS", "1")),
            help="torch threads (default: $OMP_NUM_THREADS or 1)",
        )
        return p

    p = encoder("graphs", "periodic crystal graphs (CGCNN / CrystalBERT)")
    p.add_argument("--cutoff", type=float, default=8.0, metavar="A", help="neighbour cutoff")
    p.add_argument("--max-neighbors", type=int, default=12, help="nearest neighbours kept")
    p.add_argument("--n-gaussians", type=int, default=41, help="Gaussian distance features")
    p.add_argument(
        "--atom-features",
        choices=["onehot", "cgcnn-like"],
        default="cgcnn-like",
        help="atom feature vectors",
    )
    p = encoder("tokens", "CrystalBERT tokens: space group, electron count, element fractions")
    p.add_argument("--symprec", type=float, default=0.01, metavar="A", help="spglib tolerance")
    p = encoder("descriptors", "LoGAN local power-spectrum descriptors, per atom")
    p.add_argument("--r-cut", type=float, default=5.0, metavar="A", help="cutoff radius")
    p.add_argument("--n-max", type=int, default=6, help="radial basis functions")
    p.add_argument("--l-max", type=int, default=4, help="maximum angular momentum")
    p.add_argument(
        "--radial", choices=["gaussian", "bessel"], default="gaussian", help="radial basis"
    )

    p = _command(
        encode_cmds,
        "images",
        _encode_images,
        "crystal images: train the voxel autoencoders, then encode every structure",
        "Train the voxel autoencoders (resuming from --workdir) on the table minus a seeded\n"
        "held-out part, report the held-out encode -> decode round trip (StructureMatcher,\n"
        "default tolerances) in --metrics, and write every structure's crystal image.\n"
        "Structures that cannot be voxelized go to PT.quarantine.csv with the reason.",
    )
    p.add_argument("table", metavar="TABLE", help="structure table (.parquet)")
    p.add_argument("--out", required=True, metavar="PT", help="crystal images (.pt)")
    p.add_argument("--model", required=True, metavar="CKPT", help="trained autoencoders")
    p.add_argument("--metrics", required=True, metavar="JSON", help="held-out round trip")
    p.add_argument(
        "--workdir", required=True, metavar="DIR", help="checkpoints and logs (resumable)"
    )
    p.add_argument("--grid", type=int, default=16, help="voxels per axis")
    p.add_argument("--sigma", type=float, default=0.75, help="site Gaussian width (voxels)")
    p.add_argument("--lattice-sigma", type=float, default=2.5, help="lattice width (voxels)")
    p.add_argument("--latent-dim", type=int, default=32, help="latent size (image width - 1)")
    p.add_argument("--max-elements", type=int, default=4, help="element rows of an image")
    p.add_argument("--width", type=int, default=8, help="channels at full resolution")
    p.add_argument("--epochs", type=int, default=40, help="autoencoder training epochs")
    p.add_argument("--batch-size", type=int, default=8, help="crystals per batch")
    p.add_argument("--lr", type=float, default=2e-3, help="peak learning rate")
    p.add_argument("--held-out", type=float, default=0.2, help="fraction never trained on")
    p.add_argument("--seed", type=int, default=0, help="split and weight seed")
    _gpus_option(p)
    _threads_option(p)

    train_cmds = _group(stages, "train", "train the models", "model", "MODEL")
    p = _command(
        train_cmds,
        "cgcnn",
        _train_cgcnn,
        "CGCNN band-gap model on encoded graphs (held-out MAE reported)",
    )
    p.add_argument("--graphs", required=True, metavar="PT", help="from `topogen encode graphs`")
    p.add_argument(
        "--table", required=True, metavar="TABLE", help="structure table with the target"
    )
    p.add_argument("--target", default="band_gap", help="property to learn (eV)")
    p.add_argument("--out", required=True, metavar="CKPT", help="trained model (.ckpt)")
    p.add_argument("--metrics", required=True, metavar="JSON", help="held-out metrics")
    p.add_argument(
        "--workdir",
        required=True,
        metavar="DIR",
        help="checkpoints and per-epoch logs; an interrupted run resumes from here",
    )
    p.add_argument("--epochs", type=int, default=50, help="training epochs")
    p.add_argument("--batch-size", type=int, default=32, help="structures per batch")
    p.add_argument("--hidden", type=int, default=64, help="hidden width")
    p.add_argument("--layers", type=int, default=3, help="graph convolutions")
    p.add_argument("--lr", type=float, default=1e-3, help="AdamW learning rate")
    p.add_argument("--seed", type=int, default=0, help="seed of the split and the weights")
    p.add_argument("--accelerator", default="auto", help="Lightning accelerator: auto, cpu, gpu")
    _threads_option(p)

    p = _command(
        train_cmds,
        "gan",
        _train_gan,
        "one stage of the three-stage GAN on crystal images",
        "Stage 1: real vs generated crystal images. Stage 2: a new topology-aware\n"
        "discriminator (topo2d labels; generated = 0). Stage 3: CHGNet relaxation + phonon\n"
        "stability and CGCNN gap oracles through a reward model refit every epoch (see\n"
        "topogen.models.gan3). Writes the model, per-epoch metrics (CSV) and their plot;\n"
        "an interrupted stage resumes from --workdir.",
    )
    p.add_argument("--stage", type=int, choices=[1, 2, 3], required=True, help="GAN stage")
    p.add_argument("--images", required=True, metavar="PT", help="`topogen encode images` output")
    p.add_argument("--table", required=True, metavar="TABLE", help="structure table (labels)")
    p.add_argument("--init", metavar="CKPT", help="the previous stage's model (stages 2, 3)")
    p.add_argument("--autoencoder", metavar="CKPT", help="crystal autoencoder (stage 3)")
    p.add_argument("--band-gap-model", metavar="CKPT", help="CGCNN gap oracle (stage 3)")
    p.add_argument("--out", required=True, metavar="CKPT", help="the stage's model")
    p.add_argument("--metrics", required=True, metavar="CSV", help="per-epoch metrics")
    p.add_argument("--plot", required=True, metavar="PNG", help="per-epoch curves")
    p.add_argument("--workdir", required=True, metavar="DIR", help="checkpoints and logs")
    p.add_argument("--epochs", type=int, default=10, help="epochs (paper: 100, 50, 50)")
    p.add_argument("--batch-size", type=int, default=32, help="images per batch")
    p.add_argument("--lr", type=float, help="Adam learning rate (default: 5e-4, 2e-4, 2e-4)")
    p.add_argument("--noise-dim", type=int, default=64, help="generator noise size")
    p.add_argument("--width", type=int, default=32, help="convolution channels")
    p.add_argument("--seed", type=int, default=0, help="weights, batches, oracle samples")
    p.add_argument("--patience", type=int, help="stage 3: stop after N epochs without gain")
    p.add_argument("--adv-weight", type=float, default=1.0, help="stage 3 adversarial weight")
    p.add_argument("--reward-weight", type=float, default=1.0, help="stage 3 reward weight")
    p.add_argument("--reward-steps", type=int, default=50, help="reward-model steps per epoch")
    p.add_argument("--oracle-samples", type=int, default=32, help="oracle samples per epoch")
    p.add_argument("--fmax", type=float, default=0.05, help="oracle relaxation fmax (eV/A)")
    p.add_argument("--relax-steps", type=int, default=150, help="oracle FIRE steps")
    p.add_argument("--min-repeat-2d", type=int, default=6, help="oracle phonon supercell")
    p.add_argument("--band-gap-min", type=float, default=0.1, help="eV: insulating")
    _gpus_option(p)
    _threads_option(p)

    generate_cmds = _group(
        stages, "generate", "sample candidates from trained models", "model", "MODEL"
    )
    p = _command(
        generate_cmds,
        "gan",
        _generate_gan,
        "decode N generator samples into a candidate structure table",
        "Sample i uses noise seeded with SEED + i; every row records the generator checkpoint,\n"
        "its sha256 and its seed. Undecodable samples go to TABLE.quarantine.csv.",
    )
    p.add_argument("--generator", required=True, metavar="CKPT", help="a GAN stage's model")
    p.add_argument("--autoencoder", required=True, metavar="CKPT", help="crystal autoencoder")
    p.add_argument("--n", type=int, default=100, help="samples")
    p.add_argument("--seed", type=int, default=0, help="seed of sample 0")
    p.add_argument("--out", required=True, metavar="TABLE", help="candidate table (.parquet)")
    _threads_option(p)

    screen_cmds = _group(
        stages,
        "screen",
        "screening funnel: validity, novelty, CHGNet relaxation, phonons, selection",
        "command",
        "COMMAND",
    )

    p = _command(
        screen_cmds,
        "split",
        _screen_split,
        "split candidates into chunk tables",
        "Possible duplicates (same reduced formula and number of sites) share a chunk.",
    )
    p.add_argument("table", help="structure table of candidates")
    p.add_argument("--out", nargs="+", required=True, help="one output table per chunk")

    p = _command(screen_cmds, "chunk", _screen_chunk, "screen one chunk of candidates")
    p.add_argument("candidates", help="chunk structure table")
    p.add_argument("--training", help="structure table for novelty (none: skipped)")
    p.add_argument("--chunk", default="", help="chunk label recorded in the funnel table")
    p.add_argument("--out", required=True, help="relaxed structures (structure table)")
    p.add_argument("--funnel", required=True, help="funnel table (every candidate)")
    p.add_argument("--dos", required=True, help="phonon DOS per candidate (.npz)")
    p.add_argument("--fmax", type=float, default=0.05, help="eV/A")
    p.add_argument("--steps", type=int, default=300, help="FIRE steps")
    p.add_argument("--batch-size", type=int, default=32, help="structures per CHGNet call")
    p.add_argument("--no-phonons", action="store_true", help="skip the phonon step")
    p.add_argument("--displacement", type=float, default=0.01, help="A")
    p.add_argument("--min-repeat-2d", type=int, default=6, help="slab supercell >= n x n x 1")
    p.add_argument("--symprec", type=float, default=0.01, help="A, phonopy symmetry tolerance")
    p.add_argument("--tol", type=float, default=0.05, help="THz, imaginary-mode tolerance")
    p.add_argument("--gamma-tol", type=float, default=1.0, help="THz, near Gamma")
    p.add_argument("--gamma-radius", type=float, default=0.06, help="1/A (no 2 pi)")
    p.add_argument(
        "--band-gap-model",
        metavar="CKPT",
        help="CGCNN from `topogen train cgcnn` (none: the band-gap step is skipped)",
    )
    p.add_argument("--band-gap-min", type=float, default=0.1, help="eV, band-gap hook")
    p.add_argument("--topology-min", type=float, default=0.5, help="topology-score hook")
    p.add_argument("--min-distance", type=float, default=0.5, help="A, structural validity")
    p.add_argument(
        "--oxidation-states-set",
        "--oxidation-states",
        dest="oxidation_states",
        help='SMACT set ("smact14": CDVAE / Liu et al.)',
    )
    p.add_argument("--workers", type=int, default=1, help="CHGNet worker processes")
    _threads_option(p)

    p = _command(screen_cmds, "merge", _screen_merge, "merge chunk outputs")
    p.add_argument("--funnel-in", nargs="+", required=True, help="chunk funnel tables")
    p.add_argument("--structures-in", nargs="+", required=True, help="chunk structure tables")
    p.add_argument("--dos-in", nargs="+", required=True, help="chunk phonon DOS files")
    p.add_argument("--funnel", required=True, help="funnel table of every candidate")
    p.add_argument("--out", required=True, help="structures that passed every step")
    p.add_argument("--dos", required=True, help="their phonon DOS (.npz)")

    p = _command(screen_cmds, "select", _screen_select, "diverse selection for DFT (LoGAN)")
    p.add_argument("table", help="structure table (survivors)")
    p.add_argument("--out", required=True, help="selected structures")
    p.add_argument("--slots", type=int, required=True, help="number of DFT slots (k)")
    p.add_argument("--seed", type=int, default=0, help="k-means seed")
    p.add_argument("--r-cut", type=float, default=5.0, help="A, power-spectrum cutoff")
    p.add_argument("--n-max", type=int, default=6, help="radial basis functions")
    p.add_argument("--l-max", type=int, default=4, help="maximum angular momentum")

    p = _command(
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

    report_cmds = _group(
        stages, "report", "summaries and plots of stage outputs", "command", "COMMAND"
    )
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
    from topogen.dft.commands import register as register_dft

    register_dft(stages)
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
