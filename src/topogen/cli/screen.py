"""``topogen screen ...``: the funnel chunk by chunk, then the diverse selection for DFT."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from typing import Any

from topogen.cli.options import add_options, read_options
from topogen.cli.parser import Subparsers, command, group, later, threads_option
from topogen.cli.stage import log, stage

# Help of each FunnelOptions / ValidityOptions leaf field (type and default come from them).
FUNNEL_HELP = {
    "fmax": "eV/A",
    "steps": "FIRE steps",
    "batch_size": "structures per CHGNet call",
    "cell_filter": "relaxation cell filter: unit or frechet (see topogen.calc.relax)",
    "phonons": "the phonon step",
    "displacement": "A",
    "min_repeat_2d": "slab supercell >= n x n x 1",
    "tol": "THz, imaginary-mode tolerance",
    "gamma_tol": "THz, near Gamma",
    "gamma_radius": "1/A (no 2 pi)",
    "symprec": "A, phonopy symmetry tolerance",
    "reuse_topology": "build the phonon supercell's graph once and reuse it per displacement",
    "prescreen": "slabs: n x n x 1 pre-screen supercell, clear instabilities stop there (0: off)",
    "prescreen_margin": "THz beyond tol that the pre-screen must show to stop a structure",
    "band_gap_min": "eV, band-gap hook",
    "min_distance": "A, structural validity",
    "max_length": "A, longest lattice vector",
    "min_angle": "degrees, smallest lattice angle",
    "max_angle": "degrees, largest lattice angle",
    "area_per_atom": "A^2, area per atom range of a slab",
    "volume_per_atom": "A^3, volume per atom range of a bulk crystal",
    "use_pauling_test": "SMACT's electronegativity test in compositional validity",
    "include_alloys": "compositions of metals only count as valid",
    "oxidation_states_set": 'SMACT set ("smact14": CDVAE / Liu et al.; none: SMACT default)',
    "check_composition": "the compositional validity check",
}


# The topology step runs after the merge (`screen topology`), not in the chunks.
NOT_IN_CHUNKS = ("topology_min",)


def _split(args: argparse.Namespace) -> int:
    from topogen.screen.chunks import split_file

    with stage(args, inputs=[args.table]) as run:
        sizes = split_file(args.table, [run.output(p) for p in args.out])
    log(f"screen split: {sum(sizes)} candidates -> {len(sizes)} chunks ({min(sizes)}-{max(sizes)})")
    return 0


def _band_gap_hook(path: str) -> Callable[[Sequence[Any]], Any]:
    """The band-gap hook of the funnel: the CGCNN of `topogen train cgcnn`."""
    from topogen.models.cgcnn.model import load_cgcnn, predict_gaps

    model = load_cgcnn(path)
    return lambda structures: predict_gaps(model, structures).numpy()


def _topology_scorer(args: argparse.Namespace) -> Callable[[Sequence[Any]], Any] | None:
    """The topology scorer: a CrystalBERT topology classifier (`topogen train
    topology-classifier`), or with --autoencoder a GAN Stage II/III checkpoint whose
    topology-aware discriminator scores crystal images (topogen.models.gan3.scorer)."""
    if not args.model:
        return None
    if args.autoencoder:
        from topogen.models.gan3.scorer import TopologyScorer

        return TopologyScorer(args.model, args.autoencoder)
    from topogen.models.crystalbert.scorer import TopologyClassifier

    return TopologyClassifier(args.model)


def _chunk(args: argparse.Namespace) -> int:
    from topogen.calc.relax import load_model
    from topogen.screen.chunks import run_chunk, summary
    from topogen.screen.funnel import FunnelOptions

    hook = _band_gap_hook(args.band_gap_model) if args.band_gap_model else None
    models = [args.chgnet_model, args.band_gap_model]
    with stage(args, inputs=[args.candidates, args.training, *models]) as run:
        result = run_chunk(
            args.candidates,
            model=load_model(args.chgnet_model) if args.chgnet_model else None,
            band_gap=hook,
            out=run.output(args.out),
            funnel=run.output(args.funnel),
            dos=run.output(args.dos),
            training=args.training,
            chunk=args.chunk,
            options=read_options(args, FunnelOptions, exclude=NOT_IN_CHUNKS),
            threads=args.threads,
            workers=args.workers,
            log=log,
        )
    counts = summary(result.frame())
    log(
        f"screen chunk {args.chunk}: {len(result.rows)} candidates, "
        + ", ".join(f"{s} {c['pass']} pass" for s, c in counts.items())
        + f"; {len(result.records)} relaxed -> {args.out}"
    )
    return 0


def _merge(args: argparse.Namespace) -> int:
    from topogen.screen.chunks import merge_files

    with stage(args, inputs=[*args.funnel_in, *args.structures_in, *args.dos_in]) as run:
        counts = merge_files(
            args.funnel_in,
            args.structures_in,
            args.dos_in,
            funnel_out=run.output(args.funnel),
            survivors_out=run.output(args.out),
            dos_out=run.output(args.dos),
        )
    log("screen merge: " + json.dumps(counts))
    return 0


def _topology(args: argparse.Namespace) -> int:
    from topogen.screen.topology import score_files

    scorer = _topology_scorer(args)
    with stage(
        args, inputs=[args.funnel_in, args.structures_in, args.model, args.autoencoder]
    ) as run:
        counts = score_files(
            args.funnel_in,
            args.structures_in,
            scorer,
            funnel_out=run.output(args.funnel),
            survivors_out=run.output(args.out),
            mode=args.mode,
            topology_min=args.topology_min,
        )
    log("screen topology: " + json.dumps(counts))
    return 0


def _select(args: argparse.Namespace) -> int:
    from topogen.screen.selection import select_file

    with stage(args, inputs=[args.table]) as run:
        chosen = select_file(
            args.table,
            run.output(args.out),
            args.slots,
            seed=args.seed,
            r_cut=args.r_cut,
            n_max=args.n_max,
            l_max=args.l_max,
            rank_by=args.rank_by,
        )
    log(f"screen select: {len(chosen)} structures for DFT -> {args.out}")
    return 0


def _inspect(args: argparse.Namespace) -> int:
    from topogen.calc.relax import load_model
    from topogen.dft.candidates import read_candidate
    from topogen.io.tables import read_records
    from topogen.report.candidates import plot_relax_phonons
    from topogen.screen.funnel import FunnelOptions
    from topogen.screen.inspect import inspect_structure

    with stage(args, inputs=[args.candidate, *args.generated, args.chgnet_model]) as run:
        record = read_candidate(args.candidate)
        start, origin = record.structure, args.candidate
        for table in args.generated:  # the generator's own output, before any relaxation
            found = [r for r in read_records(table) if r.id == record.id]
            if found and found[0].structure is not None:
                start, origin = found[0].structure, f"{table} (row {record.id})"
                break
        log(f"screen inspect {record.id}: relaxing from {origin}")
        data = inspect_structure(
            start,
            read_options(args, FunnelOptions, exclude=NOT_IN_CHUNKS),
            model=load_model(args.chgnet_model) if args.chgnet_model else None,
            threads=args.threads,
        )
        data = {"id": record.id, "start": origin, **data}
        run.write_json(args.out, data)
        title = f"{record.id} ({record.formula}): CHGNet"
        plot_relax_phonons(data, run.output(args.plot), title)
    relax, ph = data["relax"], data["phonons"] or {}
    log(
        f"screen inspect {record.id}: relax {relax['steps']} steps, "
        f"converged {relax['converged']}; phonons {ph.get('reason') or ph.get('error')}"
    )
    return 0


def register(stages: Subparsers) -> None:
    """Add ``topogen screen ...``."""
    cmds = group(
        stages,
        "screen",
        "screening funnel: validity, novelty, CHGNet relaxation, phonons, selection",
        "command",
        "COMMAND",
    )
    p = command(
        cmds,
        "split",
        _split,
        "split candidates into chunk tables",
        "Possible duplicates (same reduced formula and number of sites) share a chunk.",
    )
    p.add_argument("table", help="structure table of candidates")
    p.add_argument("--out", nargs="+", required=True, help="one output table per chunk")

    p = command(cmds, "chunk", _chunk, "screen one chunk of candidates")
    p.add_argument("candidates", help="chunk structure table")
    p.add_argument("--training", help="structure table for novelty (none: skipped)")
    p.add_argument("--chunk", default="", help="chunk label recorded in the funnel table")
    p.add_argument("--out", required=True, help="relaxed structures (structure table)")
    p.add_argument("--funnel", required=True, help="funnel table (every candidate)")
    p.add_argument("--dos", required=True, help="phonon DOS per candidate (.npz)")
    p.add_argument(
        "--chgnet-model",
        metavar="PT",
        help="the force field: a CHGNet from `topogen train chgnet` (none: pretrained 0.3.0)",
    )
    p.add_argument(
        "--band-gap-model",
        metavar="CKPT",
        help="CGCNN from `topogen train cgcnn` (none: the band-gap step is skipped)",
    )
    p.add_argument("--workers", type=int, default=1, help="CHGNet worker processes")
    threads_option(p)
    later(p, _funnel_options)

    p = command(
        cmds,
        "inspect",
        _inspect,
        "one candidate's CHGNet relaxation and phonon dispersion, with a figure",
        "Relaxes the candidate from its generated structure (the row of its id in a\n"
        "--generated table; else the candidate's own structure) with the funnel's settings,\n"
        "then computes its phonons with the dispersion along the 2D high-symmetry path.",
    )
    p.add_argument("candidate", help="candidate file (`topogen dft candidates`)")
    p.add_argument(
        "--generated", nargs="*", default=[], help="generator tables to find its start in"
    )
    p.add_argument("--chgnet-model", metavar="PT", help="the force field (none: pretrained)")
    p.add_argument("--out", required=True, help="the numbers (JSON)")
    p.add_argument("--plot", required=True, help="the figure (PNG)")
    threads_option(p)
    later(p, _funnel_options)

    p = command(cmds, "merge", _merge, "merge chunk outputs")
    p.add_argument("--funnel-in", nargs="+", required=True, help="chunk funnel tables")
    p.add_argument("--structures-in", nargs="+", required=True, help="chunk structure tables")
    p.add_argument("--dos-in", nargs="+", required=True, help="chunk phonon DOS files")
    p.add_argument("--funnel", required=True, help="funnel table of every candidate")
    p.add_argument("--out", required=True, help="structures that passed every step")
    p.add_argument("--dos", required=True, help="their phonon DOS (.npz)")

    p = command(
        cmds,
        "topology",
        _topology,
        "the topology step: score the merged survivors (filter or rank)",
        "Scores every candidate that passed the earlier steps (its relaxed structure) with\n"
        "--model and fills in the funnel's topology step (see topogen.screen.topology):\n"
        "--mode filter passes a score >= --topology-min, --mode rank passes every scored\n"
        "candidate and orders the survivors by score. Without --model the step is skipped\n"
        "and both tables pass through.",
    )
    p.add_argument("--funnel-in", required=True, help="merged funnel table")
    p.add_argument("--structures-in", required=True, help="merged survivors (structure table)")
    p.add_argument(
        "--model",
        metavar="CKPT",
        help="CrystalBERT topology classifier (`topogen train topology-classifier`), or a GAN "
        "Stage II/III checkpoint with --autoencoder (none: the step is skipped)",
    )
    p.add_argument(
        "--autoencoder", metavar="CKPT", help="the GAN's crystal autoencoder (GAN scorer only)"
    )
    p.add_argument("--funnel", required=True, help="funnel table with the topology step")
    p.add_argument("--out", required=True, help="survivors of the topology step")
    later(p, _topology_options)

    p = command(cmds, "select", _select, "diverse selection for DFT (LoGAN)")
    p.add_argument("table", help="structure table (survivors)")
    p.add_argument("--out", required=True, help="selected structures")
    p.add_argument("--slots", type=int, required=True, help="number of DFT slots (k)")
    p.add_argument("--seed", type=int, default=0, help="k-means seed")
    p.add_argument("--r-cut", type=float, default=5.0, help="A, power-spectrum cutoff")
    p.add_argument("--n-max", type=int, default=6, help="radial basis functions")
    p.add_argument("--l-max", type=int, default=4, help="maximum angular momentum")
    p.add_argument(
        "--rank-by",
        metavar="PROPERTY",
        help="per cluster, take the member with the highest PROPERTY (e.g. topology_score) "
        "instead of the one nearest the centre",
    )


def _funnel_options(p: argparse.ArgumentParser) -> None:
    from topogen.screen.funnel import FunnelOptions

    add_options(
        p,
        FunnelOptions,
        FUNNEL_HELP,
        title="funnel options (topogen.screen.funnel)",
        exclude=NOT_IN_CHUNKS,
    )


def _topology_options(p: argparse.ArgumentParser) -> None:
    from topogen.calc.calculators import TOPOLOGY_MIN
    from topogen.screen.topology import MODES

    p.add_argument("--mode", choices=MODES, default=MODES[0], help="filter or rank (see above)")
    p.add_argument(
        "--topology-min", type=float, default=TOPOLOGY_MIN, help="filter: the score that passes"
    )
    threads_option(p)
