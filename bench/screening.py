"""Benchmark: the screening funnel's CHGNet relaxation + phonons against the stock route.

The same N structures (2D prototypes from ``topogen.data.prototypes``, spread over the
prototypes with a seed, each rattled by ``--rattle`` Angstrom) are relaxed and checked for
dynamical stability two ways in one process, on ``--threads`` torch threads:

funnel
    :func:`topogen.screen.funnel.screen` (validity, uniqueness and novelty included): lock-step
    batched FIRE with one CHGNet call per step for all active structures and one backward
    pass for forces and stress, then phonons with forces only (one backward pass, no
    ``create_graph``) and the supercell's neighbour topology re-used across displacements.

baseline (the yardstick)
    One structure at a time, the way matcalc 0.7 does it: ``RelaxCalc`` (ASE ``FIRE`` on
    the cell filter, a ``TrajectoryObserver`` reading energy, forces and stress after every
    step) with chgnet's stock ``CHGNetCalculator``, then ``PhononCalc`` with
    ``relax_structure=False``: ``phonopy.Phonopy(get_phonopy_structure(s), supercell)``,
    ``generate_displacements(distance)``, forces of every displaced supercell through
    ``AseAtomsAdaptor`` and ``atoms.get_forces()`` on the calculator,
    ``produce_force_constants()`` and, as the funnel does (matcalc does not; milliseconds),
    ``symmetrize_force_constants()``. Same cell filter and mask as the funnel (ASE
    ``UnitCellFilter``, in-plane strains only), same fmax and step limit, same supercell
    (6x6x1 or larger) and displacement (0.01 A). matcalc then also runs ``run_mesh()`` at
    its default density and ``run_thermal_properties()``; the baseline leaves those out (a
    stability verdict does not need them), which only favours it. Both verdicts come from
    the same :func:`topogen.calc.phonons.analyse` (same q mesh and criterion).

Output (``--json``): ``n, funnel_s, baseline_s, speedup, max_energy_diff_mev_per_atom,
verdicts_agree`` plus the split into relaxation and phonons, CPU seconds and per-structure
details. Usage::

    .venv/bin/python bench/screening.py --n 12 --json bench/out/screening.json
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import time
import warnings
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from topogen.calc.phonons import PRESCREEN


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (the funnel's workers)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def structures(n: int, seed: int, rattle: float) -> list[tuple[str, Any]]:
    from topogen.data import prototypes as P

    chosen = P.select(P.candidates(), n, seed)
    return [(c.id, P.rattle(c.structure, rattle, seed, c.id)) for c in chosen]


# --- the baseline: matcalc's RelaxCalc + PhononCalc, one structure at a time ---------------


class TrajectoryObserver:
    """matcalc's observer: reads energy, forces and stress after every FIRE step."""

    def __init__(self, atoms: Any) -> None:
        self.atoms = atoms
        self.energies: list[float] = []

    def __call__(self) -> None:
        self.energies.append(float(self.atoms.get_potential_energy()))
        self.atoms.get_forces()
        self.atoms.get_stress()


def baseline_relax(calculator: Any, structure: Any, fmax: float, steps: int) -> dict[str, Any]:
    """matcalc ``RelaxCalc(calculator, optimizer="FIRE", fmax, max_steps, cell_filter)``."""
    from ase.filters import UnitCellFilter
    from ase.optimize import FIRE
    from pymatgen.io.ase import AseAtomsAdaptor

    from topogen.calc.relax import SLAB_MASK

    cell_filter = partial(UnitCellFilter, mask=list(SLAB_MASK))
    atoms = AseAtomsAdaptor.get_atoms(structure)
    atoms.calc = calculator
    with contextlib.redirect_stdout(io.StringIO()):
        obs = TrajectoryObserver(atoms)
        filt = cell_filter(atoms)
        opt = FIRE(filt, logfile=None)
        opt.attach(obs, interval=1)
        converged = bool(opt.run(fmax=fmax, steps=steps))
    final = AseAtomsAdaptor.get_structure(filt.atoms)
    return {
        "structure": final,
        "energy_per_atom": obs.energies[-1] / len(final),
        "steps": opt.nsteps,
        "converged": converged,
    }


def baseline_phonons(
    calculator: Any, structure: Any, supercell: tuple[int, int, int], displacement: float
) -> Any:
    """matcalc ``PhononCalc(calculator, atom_disp, supercell_matrix, relax_structure=False)``
    up to the force constants; returns the phonopy object."""
    import phonopy
    from pymatgen.io.ase import AseAtomsAdaptor
    from pymatgen.io.phonopy import get_phonopy_structure, get_pmg_structure

    cell = get_phonopy_structure(structure)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "primitive_matrix defaulted")
        phonon = phonopy.Phonopy(cell, np.diag(supercell))
    phonon.generate_displacements(distance=displacement)
    forces = []
    for sc in phonon.supercells_with_displacements:
        if sc is None:
            continue
        atoms = AseAtomsAdaptor.get_atoms(get_pmg_structure(sc))
        atoms.calc = calculator
        forces.append(atoms.get_forces())
    phonon.forces = forces
    with contextlib.redirect_stdout(io.StringIO()):
        phonon.produce_force_constants()
        phonon.symmetrize_force_constants()  # as the funnel does, so the verdicts compare
    return phonon


def run_baseline(model: Any, items: list[tuple[str, Any]], args: argparse.Namespace) -> dict:
    from chgnet.model.dynamics import CHGNetCalculator

    from topogen.calc.phonons import analyse, default_supercell
    from topogen.runtime import set_threads
    from topogen.structure.slabs import is_2d

    set_threads(args.baseline_threads)

    with contextlib.redirect_stdout(io.StringIO()):
        calculator = CHGNetCalculator(model=model, use_device="cpu")
    out: dict[str, Any] = {}
    t_relax = t_ph = 0.0
    for k, (id_, s) in enumerate(items):
        t0 = time.perf_counter()
        r = baseline_relax(calculator, s, args.fmax, args.steps)
        t1 = time.perf_counter()
        t_relax += t1 - t0
        entry = {k2: v for k2, v in r.items() if k2 != "structure"}
        if r["converged"]:
            two_d = is_2d(r["structure"])
            sc = default_supercell(r["structure"], two_d)
            ph = baseline_phonons(calculator, r["structure"], sc, args.displacement)
            stab, _, _ = analyse(ph, (18, 18, 1) if two_d else (10, 10, 10))
            entry.update(
                stable=stab.stable,
                min_frequency=stab.min_frequency,
                supercell=sc,
                phonon_evaluations=len(ph.forces),
            )
        t_ph += time.perf_counter() - t1
        out[id_] = entry
        log(f"baseline {k + 1}/{len(items)} {id_}: {time.perf_counter() - t0:.2f} s")
    return {"per_structure": out, "relax_s": t_relax, "phonons_s": t_ph}


def run_funnel(model: Any, items: list[tuple[str, Any]], args: argparse.Namespace) -> dict:
    from topogen.screen.funnel import FunnelOptions, screen

    opts = FunnelOptions(
        fmax=args.fmax,
        steps=args.steps,
        displacement=args.displacement,
        prescreen=args.prescreen,
    )
    res = screen(
        items, options=opts, model=model, threads=args.threads, workers=args.workers, log=log
    )
    per = {}
    for row in res.rows:
        per[row["id"]] = {
            "relax": row["relax"],
            "phonons": row["phonons"],
            "energy_per_atom": row["energy_per_atom"],
            "steps": row["relax_steps"],
            "converged": row["relax_converged"],
            "min_frequency": row["min_frequency"],
            "validity": row["validity"],
            "uniqueness": row["uniqueness"],
            "phonon_evaluations": row["phonon_evaluations"],
            "phonon_supercell": row["phonon_supercell"],
        }
    sec = res.seconds
    return {"per_structure": per, "relax_s": sec["relax"], "phonons_s": sec["phonons"]}


def compare(funnel: dict, base: dict) -> tuple[float, bool, list[str]]:
    diffs, problems = [], []
    for id_, b in base.items():
        f = funnel[id_]
        if f["energy_per_atom"] is not None and b["energy_per_atom"] is not None:
            diffs.append(abs(f["energy_per_atom"] - b["energy_per_atom"]) * 1000)
        if bool(f["converged"]) != bool(b["converged"]):
            problems.append(f"{id_}: converged {f['converged']} vs {b['converged']}")
        if "stable" in b:
            f_stable = {"pass": True, "fail": False}.get(f["phonons"])
            if f_stable is None or f_stable != b["stable"]:
                problems.append(f"{id_}: phonons {f['phonons']} vs stable={b['stable']}")
        elif f["phonons"] in ("pass", "fail"):
            problems.append(f"{id_}: phonons ran in the funnel only ({f['relax']})")
    return (max(diffs) if diffs else float("nan")), not problems, problems


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=12, help="number of structures (default 12)")
    ap.add_argument("--json", type=Path, required=True, help="write the results here")
    ap.add_argument(
        "--threads", type=int, default=1, help="CPU threads for the funnel, in all (default 1)"
    )
    ap.add_argument(
        "--workers",
        type=int,
        default=1,
        help="funnel worker processes, threads/workers torch threads each (default 1)",
    )
    ap.add_argument(
        "--baseline-threads",
        type=int,
        default=1,
        help="torch threads of the one-at-a-time baseline (default 1; on 2 shared cores 2 "
        "threads made it 3-30x slower in some sessions and 5%% faster in others: run both)",
    )
    ap.add_argument("--fmax", type=float, default=0.05, help="eV/A (default 0.05)")
    ap.add_argument("--steps", type=int, default=300, help="FIRE steps (default 300)")
    ap.add_argument("--displacement", type=float, default=0.01, help="A (default 0.01)")
    ap.add_argument("--rattle", type=float, default=0.05, help="A (default 0.05)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--prescreen",
        type=int,
        default=PRESCREEN,
        help=f"the funnel's phonon pre-screen supercell, n x n x 1 (default {PRESCREEN}: none)",
    )
    ap.add_argument(
        "--order",
        choices=("funnel-first", "baseline-first"),
        default="funnel-first",
        help="which route runs first (the machine may be busier at one time than another)",
    )
    args = ap.parse_args(argv)
    warnings.filterwarnings("ignore")

    from topogen.calc.relax import load_model
    from topogen.runtime import set_threads

    set_threads(args.threads)
    model = load_model()
    items = structures(args.n, args.seed, args.rattle)
    log(f"{len(items)} structures: {', '.join(i for i, _ in items)}")

    runs: dict[str, Any] = {}
    order = ["funnel", "baseline"] if args.order == "funnel-first" else ["baseline", "funnel"]
    for name in order:
        log(f"--- {name}")
        w0, c0 = time.perf_counter(), cpu_seconds()
        runs[name] = (run_funnel if name == "funnel" else run_baseline)(model, items, args)
        runs[name]["wall_s"] = time.perf_counter() - w0
        runs[name]["cpu_s"] = cpu_seconds() - c0
        log(f"{name}: {runs[name]['wall_s']:.1f} s wall, {runs[name]['cpu_s']:.1f} s CPU")

    f, b = runs["funnel"], runs["baseline"]
    ediff, agree, problems = compare(f["per_structure"], b["per_structure"])
    result = {
        "n": len(items),
        "funnel_s": round(f["wall_s"], 3),
        "baseline_s": round(b["wall_s"], 3),
        "speedup": round(b["wall_s"] / f["wall_s"], 3),
        "max_energy_diff_mev_per_atom": round(ediff, 6),
        "verdicts_agree": agree,
        "disagreements": problems,
        "threads": args.threads,
        "workers": args.workers,
        "baseline_threads": args.baseline_threads,
        "funnel_phonon_evaluations": sum(
            int(v.get("phonon_evaluations") or 0) for v in f["per_structure"].values()
        ),
        "baseline_phonon_evaluations": sum(
            int(v.get("phonon_evaluations") or 0) for v in b["per_structure"].values()
        ),
        "fmax": args.fmax,
        "steps": args.steps,
        "displacement": args.displacement,
        "prescreen": args.prescreen,
        "funnel_prescreened": sum(
            str(v.get("phonon_supercell")) == f"{args.prescreen}x{args.prescreen}x1"
            for v in f["per_structure"].values()
        ),
        "rattle": args.rattle,
        "seed": args.seed,
        "order": args.order,
        "funnel_cpu_s": round(f["cpu_s"], 3),
        "baseline_cpu_s": round(b["cpu_s"], 3),
        "cpu_speedup": round(b["cpu_s"] / f["cpu_s"], 3),
        "funnel_relax_s": round(f["relax_s"], 3),
        "funnel_phonons_s": round(f["phonons_s"], 3),
        "baseline_relax_s": round(b["relax_s"], 3),
        "baseline_phonons_s": round(b["phonons_s"], 3),
        "relax_speedup": round(b["relax_s"] / f["relax_s"], 3),
        "phonons_speedup": round(b["phonons_s"] / max(f["phonons_s"], 1e-9), 3),
        "structures": {
            id_: {"funnel": f["per_structure"][id_], "baseline": b["per_structure"][id_]}
            for id_, _ in items
        },
        "load_average": os.getloadavg(),
        "python": sys.version.split()[0],
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2, default=str) + "\n")
    keys = ("n", "funnel_s", "baseline_s", "speedup", "max_energy_diff_mev_per_atom")
    log(json.dumps({k: result[k] for k in (*keys, "verdicts_agree")}))
    if problems:
        log("disagreements: " + "; ".join(problems))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
