"""Benchmark: LoGAN on crystal structure prediction (Kovacs et al. 2024, the SiO2 test).

For every target (``--targets``: ground-truth files, one crystal each; default the three
SiO2 polymorphs in ``../shared/data/logan``) LoGAN models are trained on the target's
training file (``<id>_training.extxyz`` beside ``<id>_ground_truth.extxyz``, or
``--training FILE`` for every target) for the target's composition in the target's cell:
one model per seed x radial basis x neighbour count (``--seeds`` x ``--radial`` x
``--max-neighbors``; the paper: 5 seeds x the authors' atom-centred Gaussians and Bessel
functions x 12 and 25 nearest neighbours, 45,000 steps each: ``--config config/paper.yaml``;
the defaults are our CPU protocol: 10 seeds x the atom-centred Gaussians x 12 neighbours,
2,500 steps each, because a model settles on its structure early and the number of models,
not their length, is what reached the targets: README). Every model draws ``--samples``
structures; the samples of each hyper-parameter set are pooled and ``--select`` of them
(paper: 20) picked with the workflow's diversity filter (PCA + k-means,
:func:`topogen.screen.selection.select_diverse`).
The picks are relaxed with CHGNet at fixed cell (positions only, as the paper's FIRE runs;
the paper used DFT, here CHGNet) and compared with the target relaxed the same way:
recovered when pymatgen's StructureMatcher (default tolerances) matches them; the energy
difference per atom is reported for every relaxation.

Baseline (the paper's random search): as many random structures of the same composition
and cell (uniform fractional coordinates, no two atoms closer than ``--random-min-distance``,
1.5 A by default, generous to the baseline), relaxed and matched the same way.

Generator snapshots (ours, ``--snapshots S``; 1, the default, is the paper's final generators
only): every model also keeps S - 1 earlier generators, evenly spaced over its epochs (the
final generator is unchanged by keeping them). Their samples form a second pool, picked and
relaxed the same way (``logan_snapshots`` beside ``logan`` in the JSON, the paper's protocol
staying the control in the same run), with as many picks as the final generators'.

Diversity, per target: ``distinct_minima`` (how many different structures each method's
relaxations ended in, StructureMatcher groups) and, per model, ``sample_spread_A`` (rms
distance of the samples' atoms from their mean positions: a generator that has collapsed
onto one structure shows a few hundredths of an A).

Writes ``<out>/logan-crystals.json`` (``recovered``, ``n_relaxations``, per-target results,
wall time) and ``<out>/logan-crystals.png`` (targets recovered vs relaxations per target,
LoGAN and random). A rerun with the same ``--out`` resumes: finished targets are read back
(``<out>/<target>/result.json``), trained models are reused; ``--train-only`` trains and
stops, so the models can be trained in parallel processes (one per seed) and judged after.

    python bench/logan_sio2.py --out bench/out/logan-sio2
    # the same on 2 cores: the models two at a time in single-thread processes, then judged
    seq 0 9 | xargs -P 2 -I{} python bench/logan_sio2.py --seeds {} --threads 1 \
        --train-only --out bench/out/logan-sio2
    python bench/logan_sio2.py --threads 1 --out bench/out/logan-sio2
    python bench/logan_sio2.py --config config/paper.yaml --out bench/out/logan-sio2-paper
    python bench/logan_sio2.py --epochs 1 --steps 5 --samples 20 --select 3 --out /tmp/s  # smoke
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any

from schedules import config_defaults, shared_logan

CITE = (
    "data: Kovacs et al., MLST 5, 035079 (2024); Materials Project (CC BY 4.0)"  # the figure's data
)


# per method (the paper's final generators, our snapshot pool, random search): its label and
# its count of recovered targets in the summary JSON
LABELS = {"logan": "LoGAN", "logan_snapshots": "LoGAN, snapshots", "random": "random"}
TOTALS = {
    "logan": "recovered",
    "logan_snapshots": "snapshots_recovered",
    "random": "random_recovered",
}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def default_targets() -> list[Path]:
    """The crystals among the shared ground truths (the C5H12O molecules have no cell)."""
    from ase.io import read

    return [p for p in sorted(shared_logan().glob("*_ground_truth.extxyz")) if read(p).pbc.all()]


def training_file(target: Path, given: Path | None) -> Path:
    if given is not None:
        return given
    path = target.with_name(target.name.replace("_ground_truth", "_training"))
    if not path.exists():
        raise SystemExit(f"{target}: no training file {path.name} beside it (pass --training)")
    return path


def random_structures(target: Any, n: int, min_distance: float, seed: int) -> list[Any]:
    """``n`` structures of the target's atoms in its cell, placed one at a time at uniform
    random fractional coordinates at least ``min_distance`` from every atom placed before
    (periodic images included); a structure that gets stuck starts again."""
    import numpy as np
    from pymatgen.core import Structure

    rng = np.random.default_rng(seed)
    lattice = target.lattice
    out: list[Any] = []
    restarts = 0
    while len(out) < n:
        frac: list[np.ndarray] = []
        for _ in range(len(target)):
            for _try in range(1000):
                trial = rng.random(3)
                if not frac or lattice.get_all_distances([trial], frac).min() >= min_distance:
                    frac.append(trial)
                    break
            else:
                break
        if len(frac) == len(target):
            out.append(Structure(lattice, target.species, np.array(frac)))
            continue
        restarts += 1
        if restarts > 100 * n:
            raise SystemExit(f"no random structure with atoms {min_distance} A apart: lower it")
    return out


def first_match(matches: list[bool]) -> int | None:
    """1-based index of the first match (relaxations needed), None when none matched."""
    return next((k + 1 for k, m in enumerate(matches) if m), None)


def verdicts(relaxed: list[Any], ref: Any, matcher: Any) -> list[dict[str, Any]]:
    """Per relaxation: converged, error, match with the relaxed target, energy above it."""
    out = []
    for r in relaxed:
        row: dict[str, Any] = {"converged": r.converged, "error": r.error, "match": False}
        if r.error is None:
            row["match"] = bool(matcher.fit(r.structure, ref.structure))
            row["de_meV_atom"] = 1000 * (r.energy_per_atom - ref.energy_per_atom)
        out.append(row)
    return out


def distinct_minima(relaxed: list[Any], matcher: Any) -> int:
    """How many different structures the successful relaxations ended in (StructureMatcher
    groups): the diversity a method's picks actually bought."""
    ok = [r.structure for r in relaxed if r.error is None]
    return len(matcher.group_structures(ok)) if ok else 0


def spread(samples: list[Any]) -> float:
    """Root-mean-square distance (A) of the samples' atoms from their mean positions (atom by
    atom, unwrapped Cartesian coordinates as generated): ~0 when a generator has collapsed
    onto one structure."""
    import numpy as np

    pos = np.array([s.cart_coords for s in samples])
    return float(np.sqrt(((pos - pos.mean(axis=0)) ** 2).sum(axis=-1).mean()))


def summarise(relaxed: list[Any], ref: Any, matcher: Any) -> dict[str, Any]:
    """One method's relaxations against the relaxed target: per-relaxation verdicts, the
    first match, the lowest energy above the target and the distinct minima."""
    rows = verdicts(relaxed, ref, matcher)
    matches = [r["match"] for r in rows]
    return {
        "recovered": any(matches),
        "first_match": first_match(matches),
        "n_relaxations": len(rows),
        "distinct_minima": distinct_minima(relaxed, matcher),
        "min_de_meV_atom": min(
            (r["de_meV_atom"] for r in rows if "de_meV_atom" in r), default=None
        ),
        "relaxations": rows,
    }


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--targets", type=Path, nargs="+", default=None, help="ground-truth files")
    ap.add_argument("--training", type=Path, default=None, help="one training file for all")
    ap.add_argument(
        "--seeds", type=int, nargs="+", default=list(range(10)), help="ensemble seeds (0 .. 9)"
    )
    ap.add_argument(
        "--radial", nargs="+", default=["centred"], help="radial bases (centred; paper + bessel)"
    )
    ap.add_argument(
        "--max-neighbors",
        type=int,
        nargs="+",
        default=[12],
        help="neighbours kept per atom, one set each (12; paper 12 25; 0: all within r_cut)",
    )
    ap.add_argument("--r-cut", type=float, default=4.0, help="descriptor cutoff, A (4)")
    ap.add_argument("--n-max", type=int, default=4, help="radial functions (4)")
    ap.add_argument("--batch-size", type=int, default=15, help="batch (paper 15)")
    ap.add_argument("--copies", type=int, default=4, help="rattled copies, 0.03 A (paper 10)")
    ap.add_argument("--epochs", type=int, default=25, help="epochs per model (25)")
    ap.add_argument("--steps", type=int, default=100, help="generator steps per epoch (100)")
    ap.add_argument("--lr", type=float, default=10**-3.5, help="RMSProp lr (paper 10^-3.5)")
    ap.add_argument(
        "--snapshots", type=int, default=1, help="generator snapshots per model (1: paper)"
    )
    ap.add_argument("--samples", type=int, default=500, help="samples per model (500)")
    ap.add_argument("--select", type=int, default=20, help="relaxations per set (paper 20)")
    ap.add_argument("--random-min-distance", type=float, default=1.5, help="A (1.5)")
    ap.add_argument("--relax-steps", type=int, default=500, help="FIRE steps at most (500)")
    ap.add_argument("--threads", type=int, default=2, help="torch threads (2)")
    ap.add_argument("--out", type=Path, default=Path("bench/out/logan-sio2"))
    ap.add_argument(
        "--train-only",
        action="store_true",
        help="train the models and stop (e.g. one process per seed; a later run reuses them)",
    )
    config_defaults(ap, "logan_sio2")
    return ap


def main() -> None:
    args = parser().parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from ase.io import read
    from pymatgen.analysis.structure_matcher import StructureMatcher
    from pymatgen.io.ase import AseAtomsAdaptor

    from topogen.calc.relax import RelaxSettings, load_model, relax_batch
    from topogen.models.logan.settings import LoganSettings
    from topogen.models.logan.train import generate, train_logan
    from topogen.runtime import set_threads
    from topogen.screen.selection import select_diverse

    warnings.filterwarnings("ignore")
    set_threads(args.threads)
    t_start = time.perf_counter()
    targets = args.targets or default_targets()
    if not targets:
        raise SystemExit(f"no *_ground_truth.extxyz in {shared_logan()} (pass --targets)")
    chgnet = load_model()
    relax_opts = RelaxSettings(steps=args.relax_steps)
    matcher = StructureMatcher()

    def relax(structures: list[Any]) -> list[Any]:
        return relax_batch(
            structures, relax_opts, model=chgnet, relax_cell=False, threads=args.threads
        )

    # the paper's final generators; with --snapshots, also every kept generator (ours)
    pools: dict[str, int | None] = {"logan": -1}
    if args.snapshots > 1:
        pools["logan_snapshots"] = None
    methods = [*pools, "random"]
    results = []
    for path in targets:
        name = path.name.replace("_ground_truth.extxyz", "").replace(path.suffix, "")
        done = args.out / name / "result.json"
        if done.exists():  # a finished target of an earlier run with this --out
            results.append(json.loads(done.read_text()))
            log(f"{name}: result of an earlier run ({done})")
            continue
        target = AseAtomsAdaptor.get_structure(read(path))
        training = read(training_file(path, args.training), ":")
        numbers = [site.specie.Z for site in target]
        (ref,) = relax([target])
        if ref.error:
            raise SystemExit(f"{path}: CHGNet cannot relax the target: {ref.error}")
        log(
            f"{name}: {target.composition.reduced_formula} x{len(target)} atoms, "
            f"{len(training)} training structures, target {ref.energy_per_atom:.4f} eV/atom"
        )
        picks: dict[str, list[Any]] = {pool: [] for pool in pools}
        origin: dict[str, list[int]] = {pool: [] for pool in pools}  # each pick's seed
        sets = []
        for radial, n_neig in itertools.product(args.radial, args.max_neighbors):
            tag = radial if n_neig == 0 else f"{radial}-n{n_neig}"
            pooled: dict[str, list[Any]] = {pool: [] for pool in pools}
            drawn_by: list[int] = []
            spreads: dict[int, float] = {}
            t0 = time.perf_counter()
            for seed in args.seeds:
                settings = LoganSettings(
                    epochs=args.epochs,
                    steps=args.steps,
                    r_cut=args.r_cut,
                    radial=radial,
                    max_neighbors=n_neig or None,
                    seed=seed,
                    lr=args.lr,
                    n_max=args.n_max,
                    rattle=0.03,
                    copies=args.copies,
                    batch_size=args.batch_size,
                    snapshots=args.snapshots,
                )
                model = train_logan(
                    training,
                    numbers,
                    target.lattice.matrix,
                    args.out / name / f"{tag}-s{seed}",
                    settings,
                    threads=args.threads,
                    accelerator="cpu",
                    log=log,
                )
                if args.train_only:
                    continue
                seeds = range(seed * 10**6, seed * 10**6 + args.samples)
                for pool, snapshot in pools.items():
                    pooled[pool] += generate(model, seeds, snapshot=snapshot)
                spreads[seed] = spread(pooled["logan"][-args.samples :])
                drawn_by += [seed] * args.samples
            if args.train_only:
                continue
            for pool, drawn in pooled.items():
                sel = select_diverse(drawn, args.select, seed=0, r_cut=args.r_cut)
                picks[pool] += [drawn[i] for i in sel.indices]
                origin[pool] += [drawn_by[i] for i in sel.indices]
            sets.append(
                {
                    "radial": radial,
                    "max_neighbors": n_neig or None,
                    "train_s": time.perf_counter() - t0,
                    "n_samples": len(pooled["logan"]),
                    "sample_spread_A": spreads,
                }
            )
            log(
                f"{name}/{tag}: {len(pooled['logan'])} samples per pool (spread per seed, A: "
                + ", ".join(f"{k}: {v:.3f}" for k, v in spreads.items())
                + f"), {args.select} picked from each of {', '.join(pooled)}"
            )
        if args.train_only:
            log(f"{name}: models trained (--train-only)")
            continue
        n_picks = len(picks["logan"])
        baseline = random_structures(target, n_picks, args.random_min_distance, seed=0)

        t0 = time.perf_counter()
        found = {pool: summarise(relax(p), ref, matcher) for pool, p in picks.items()}
        for pool, seeds in origin.items():  # which model drew each relaxed pick
            for verdict, seed in zip(found[pool]["relaxations"], seeds, strict=True):
                verdict["seed"] = seed
        random = summarise(relax(baseline), ref, matcher)
        row = {
            "target": name,
            "file": str(path),
            "formula": target.composition.formula.replace(" ", ""),
            "target_energy_eV_atom": ref.energy_per_atom,
            "sets": sets,
            "relax_s": time.perf_counter() - t0,
            **found,
            "random": random,
        }
        results.append(row)
        done.write_text(json.dumps(row, indent=2))
        log(
            f"{name}, {n_picks} relaxations each: "
            + "; ".join(
                f"{LABELS[m]} {'recovered' if row[m]['recovered'] else 'missed'} (first at "
                f"{row[m]['first_match']}, {row[m]['distinct_minima']} distinct minima)"
                for m in methods
            )
        )

    if args.train_only:
        return
    n_max = max((r["logan"]["n_relaxations"] for r in results), default=0)
    curve = {
        method: [
            sum(1 for r in results if r[method]["first_match"] and r[method]["first_match"] <= k)
            for k in range(1, n_max + 1)
        ]
        for method in methods
    }
    summary = {
        "command": "bench/logan_sio2.py " + " ".join(sys.argv[1:]),
        **{TOTALS[m]: sum(r[m]["recovered"] for r in results) for m in methods},
        "n_targets": len(results),
        "n_relaxations": n_max,
        "curve_relaxations_per_target": curve,
        "targets": results,
        "wall_s": time.perf_counter() - t_start,
        "threads": args.threads,
        "relaxation": "CHGNet 0.3.0, FIRE, fixed cell, fmax 0.05 eV/A (paper: DFT)",
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "logan-crystals.json").write_text(json.dumps(summary, indent=2))
    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    ks = list(range(1, n_max + 1))
    for method in methods:
        ax.step(ks, curve[method], where="post", label=LABELS[method])
    ax.set_xlabel("relaxations per target")
    ax.set_ylabel(f"targets recovered (of {len(results)})")
    ax.set_ylim(-0.1, len(results) + 0.1)
    ax.legend(frameon=False)
    fig.text(0.01, 0.01, CITE, fontsize=6, color="grey")
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    fig.savefig(args.out / "logan-crystals.png", dpi=110)
    log(
        ", ".join(f"{LABELS[m]} recovered {summary[TOTALS[m]]}" for m in methods)
        + f" of {len(results)}; {summary['wall_s']:.0f} s"
    )


if __name__ == "__main__":
    main()
