"""Benchmark: LoGAN on molecular isomers (Kovacs et al. 2024, the C5H12O test).

Trains an ensemble of LoGAN models (``--seeds`` x ``--r-cut`` x ``--n-max``; the paper:
3 seeds x r_cut 5, 6 x n_max 3, 4, 60,000 steps of batch 15 at lr 1e-4, 20 rattled copies,
2,000 samples per model: ``config/paper.yaml``) on the molecules of
``--training`` (default: the 39 QM9 C4H10O + C6H14O molecules in ``../shared/data/logan``)
for the target ``--composition`` (default C5H12O, absent from the training set) in a cubic box
of ``--box`` Angstrom, pools ``--samples`` samples per model, and for each K of ``--k`` picks
K samples with the workflow's diversity filter (PCA + k-means on per-element power spectra,
:func:`topogen.screen.selection.select_diverse`), relaxes them with GFN2-xTB
(:func:`topogen.calc.xtb.relax_molecule`; the paper used DFT) and converts the relaxed
geometries to canonical SMILES without stereochemistry (RDKit). Reported: how many of the
ground-truth isomers (``--ground-truth``: a ``.smi`` file or an extxyz of geometries) are
recovered as a function of K (the paper: all 14 with 38 relaxations, 12 with 15), the
relaxations done, and the wall time. Defaults: the paper's 12-model ensemble at 1/15 of
its training (4,000 steps of batch 15 at lr 1e-3, 4 rattled copies, 1,000 samples per
model), trained ``--workers`` members at a time in single-thread processes (2: about 45
minutes on 2 cores; 12 of 14 isomers with 38 relaxations in the README's run).

Snapshots (ours, ``--snapshots S``): every model also keeps S - 1 earlier generators, evenly
spaced over its training, and the pooled samples are drawn by them in turn. The same models
give the control in the same run: the curve of the final generators alone (the paper's way)
is reported next to it (``curve_final_generators``). Writes ``<out>/logan-molecules.json`` and
``<out>/logan-molecules.png``; a rerun with the same ``--out`` resumes the trained models.

    python bench/logan_c5h12o.py --out bench/out/logan-c5h12o
    python bench/logan_c5h12o.py --config config/paper.yaml --out bench/out/logan-c5h12o-paper
    python bench/logan_c5h12o.py --seeds 0 --r-cut 5 --n-max 4 --epochs 2 --samples 20 \
        --k 3 5 --out /tmp/smoke  # smoke
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

from schedules import config_defaults, shared_logan

from topogen.encode.descriptors import RADIAL_BASES

CITE = "data: Kovacs et al., MLST 5, 035079 (2024); QM9, Ramakrishnan et al. (2014)"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def ground_truth(path: Path) -> set[str]:
    from ase.io import read

    from topogen.structure.molecules import canonical_smiles, geometry_smiles

    if path.suffix == ".smi":
        lines = [line.split()[0] for line in path.read_text().splitlines() if line.strip()]
        return {canonical_smiles(s) for s in lines}
    out = set()
    for atoms in read(path, ":"):
        smiles = geometry_smiles(atoms.get_chemical_symbols(), atoms.positions)
        if smiles is None:
            raise SystemExit(f"{path}: a ground-truth geometry has no valid bonding")
        out.add(smiles)
    return out


def member_name(seed: int, r_cut: float, n_max: int) -> str:
    return f"seed{seed}-rcut{r_cut:g}-nmax{n_max}"


def train_member(
    args: argparse.Namespace, member: tuple[int, float, int], model: bool = False
) -> tuple[str, Any]:
    """Train (or resume) one ensemble member in ``<out>/<name>``: (name, the model when
    ``model``, else the training seconds). Top-level, so worker processes can run it."""
    import numpy as np
    from ase.io import read

    from topogen.models.logan.settings import LoganSettings
    from topogen.models.logan.train import composition_numbers, train_logan

    warnings.filterwarnings("ignore")
    seed, r_cut, n_max = member
    name = member_name(seed, r_cut, n_max)
    settings = LoganSettings(
        epochs=args.epochs,
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        r_cut=r_cut,
        n_max=n_max,
        radial=args.radial,
        max_neighbors=args.max_neighbors or None,
        seed=seed,
        copies=args.copies,
        snapshots=args.snapshots,
    )
    t0 = time.perf_counter()
    trained = train_logan(
        read(args.training, ":"),
        composition_numbers(args.composition),
        np.eye(3) * args.box,
        args.out / name,
        settings,
        pbc=(False,) * 3,
        threads=args.threads if model or args.workers <= 1 else 1,
        accelerator="cpu",
        log=log,
    )
    return name, trained if model else time.perf_counter() - t0


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--training", type=Path, default=shared_logan() / "C5H12O_training.extxyz")
    ap.add_argument("--ground-truth", type=Path, default=shared_logan() / "C5H12O_ground_truth.smi")
    ap.add_argument("--composition", default="C5H12O", help="target composition (C5H12O)")
    ap.add_argument("--box", type=float, default=8.0, help="cubic box edge, A (8)")
    ap.add_argument(
        "--seeds", type=int, nargs="+", default=[0, 1, 2], help="ensemble seeds (0 1 2)"
    )
    ap.add_argument(
        "--r-cut", type=float, nargs="+", default=[5.0, 6.0], help="ensemble r_cut, A (5 6)"
    )
    ap.add_argument("--n-max", type=int, nargs="+", default=[3, 4], help="ensemble n_max (3 4)")
    ap.add_argument(
        "--radial",
        default="centred",
        choices=RADIAL_BASES,
        help="descriptor radial basis (centred; the authors' script: their Bessel basis)",
    )
    ap.add_argument(
        "--max-neighbors",
        type=int,
        default=12,
        help="neighbours kept per atom (the authors': 12; 0: all within r_cut)",
    )
    ap.add_argument("--batch-size", type=int, default=15, help="batch (paper 15)")
    ap.add_argument("--lr", type=float, default=1e-3, help="RMSProp lr (paper 1e-4)")
    ap.add_argument("--copies", type=int, default=4, help="rattled copies (paper 20)")
    ap.add_argument(
        "--snapshots", type=int, default=1, help="generator snapshots per model (1: paper)"
    )
    ap.add_argument("--epochs", type=int, default=40, help="epochs per model (40)")
    ap.add_argument("--steps", type=int, default=100, help="generator steps per epoch (100)")
    ap.add_argument("--samples", type=int, default=1000, help="samples per model (1000)")
    ap.add_argument(
        "--k", type=int, nargs="+", default=[5, 10, 15, 20, 25, 30, 38, 40], help="K values"
    )
    ap.add_argument("--threads", type=int, default=2, help="torch threads (2)")
    ap.add_argument(
        "--workers",
        type=int,
        default=2,
        help="members trained at once, one thread each (2; 1: one after another)",
    )
    ap.add_argument("--out", type=Path, default=Path("bench/out/logan-c5h12o"))
    config_defaults(ap, "logan_c5h12o")
    return ap


def main() -> None:
    args = parser().parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from ase.io import read

    from topogen.calc.xtb import relax_molecule
    from topogen.errors import TopogenError
    from topogen.models.logan.train import composition_numbers, generate
    from topogen.runtime import set_threads
    from topogen.screen.selection import select_diverse
    from topogen.structure.molecules import geometry_smiles

    warnings.filterwarnings("ignore")
    set_threads(args.threads)
    t_start = time.perf_counter()
    truth = ground_truth(args.ground_truth)
    training = read(args.training, ":")
    n_atoms = len(composition_numbers(args.composition))  # a bad formula fails here
    log(
        f"{len(training)} training molecules; target {args.composition} ({n_atoms} atoms); "
        f"{len(truth)} isomers"
    )

    members = []
    pools: dict[str, list[tuple[str, int, Any]]] = {"final": [], "snapshots": []}
    grid = list(itertools.product(args.seeds, args.r_cut, args.n_max))
    trained: dict[str, float] = {}
    if args.workers > 1 and len(grid) > 1:  # members in parallel, one thread each
        from concurrent.futures import ProcessPoolExecutor
        from multiprocessing import get_context

        log(f"training {len(grid)} members in {args.workers} single-thread processes")
        with ProcessPoolExecutor(args.workers, mp_context=get_context("spawn")) as ex:
            trained = dict(ex.map(train_member, [args] * len(grid), grid))
    for seed, r_cut, n_max in grid:
        name = member_name(seed, r_cut, n_max)
        t0 = time.perf_counter()
        model = train_member(args, (seed, r_cut, n_max), model=True)[1]
        seeds = range(seed * 1_000_000, seed * 1_000_000 + args.samples)
        for pool, snapshot in (("final", -1), ("snapshots", None)):
            drawn = generate(model, seeds, snapshot=snapshot)
            pools[pool] += [(name, s, m) for s, m in zip(seeds, drawn, strict=True)]
        members.append({"name": name, "train_s": trained.get(name, time.perf_counter() - t0)})
        log(f"{name}: trained and sampled in {time.perf_counter() - t0:.0f} s")
        del model

    relaxed: dict[tuple[str, int, str], dict[str, Any]] = {}
    curves: dict[str, list[dict[str, Any]]] = {}
    for pool, entries in pools.items():
        if pool == "snapshots" and args.snapshots == 1:
            continue
        mols = [m for _, _, m in entries]
        curves[pool] = []
        for k in sorted(args.k):
            sel = select_diverse(mols, k, seed=0, r_cut=4.0)
            found: set[str] = set()
            for i in sel.indices:
                name, s, mol = entries[i]
                key = (name, s, "final" if pool == "final" else "mixed")
                if key not in relaxed:
                    try:
                        r = relax_molecule(mol)
                        smi = geometry_smiles(r.atoms.get_chemical_symbols(), r.atoms.positions)
                        relaxed[key] = {"smiles": smi, "energy": r.energy, "converged": r.converged}
                    except TopogenError as exc:
                        relaxed[key] = {"smiles": None, "error": str(exc)}
                found.add(relaxed[key]["smiles"])
            found &= truth
            curves[pool].append({"k": k, "recovered": len(found), "isomers": sorted(found)})
            log(f"{pool} generators, K = {k}: {len(found)} of {len(truth)} isomers recovered")
    curve = curves["snapshots" if "snapshots" in curves else "final"]

    smiles = Counter(v["smiles"] for v in relaxed.values())
    summary = {
        "command": "bench/logan_c5h12o.py " + " ".join(sys.argv[1:]),
        "composition": args.composition,
        "n_ground_truth": len(truth),
        "recovered": curve[-1]["recovered"] if curve else 0,
        "n_relaxations": curve[-1]["k"] if curve else 0,
        "n_relaxations_all_k": len(relaxed),
        "curve": curve,
        "curve_final_generators": curves["final"],
        "snapshots": args.snapshots,
        "members": members,
        "n_samples": len(pools["final"]),
        "relaxed_smiles": smiles.most_common(),
        "wall_s": time.perf_counter() - t_start,
        "threads": args.threads,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "logan-molecules.json").write_text(json.dumps(summary, indent=2))
    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    for pool, label in (
        ("final", "final generators"),
        ("snapshots", f"{args.snapshots} snapshots"),
    ):
        if pool in curves:
            ks = [c["k"] for c in curves[pool]]
            ax.plot(ks, [c["recovered"] for c in curves[pool]], "o-", label=label)
    ax.axhline(len(truth), color="grey", lw=0.8, ls="--", label="ground truth")
    ax.set_xlabel("relaxations (K)")
    ax.set_ylabel(f"{args.composition} isomers recovered")
    ax.legend(frameon=False)
    fig.text(0.01, 0.01, CITE, fontsize=6, color="grey")
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    fig.savefig(args.out / "logan-molecules.png", dpi=110)
    log(f"recovered {summary['recovered']} of {len(truth)}; {summary['wall_s']:.0f} s")


if __name__ == "__main__":
    main()
