"""Benchmark: is the phonon pre-screen's "clearly unstable" safe? (issue 20)

With ``prescreen=3`` (off by default), :func:`topogen.calc.phonons.phonons` stops a slab
whose small pre-screen supercell (3x3x1)
shows an imaginary mode by more than ``prescreen_margin`` (0.5 THz) beyond the stability
tolerance, and skips the default 6x6x1 (or larger) calculation. That is safe when the two
supercells give the same frequencies at the small one's q points (which lie on the final
18 x 18 mesh): exactly so in the harmonic limit, and to a spread measured here.

``--n`` library monolayers (``topogen.data.prototypes``, spread over the prototypes with a
seed, rattled by ``--rattle`` A) are relaxed with the funnel's settings; for each converged
one the phonons run both ways (pre-screen off, and the pre-screen supercell alone), and the
frequencies of both force-constant sets are compared at the pre-screen's q points.

Output (``--json``): per structure the two verdicts, minimum frequencies, the largest
difference over all modes and of the lowest mode at those q points, and the time of each;
in total: structures the pre-screen would call unstable while the full calculation calls
them stable (``false_unstable``, must be 0), the largest amount by which the pre-screen put
the lowest mode lower than the full calculation (``worst_lowering_thz``, to compare with
the margin), how many the pre-screen stops, and the phonon time with and without it. Usage::

    .venv/bin/python bench/phonon_prescreen.py --n 60 --json bench/out/phonon-prescreen.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from topogen.calc.phonons import PRESCREEN_MARGIN, PRESCREEN_REPEAT


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def compare(structure: Any, model: Any, small: int, margin: float) -> dict[str, Any]:
    from topogen.calc import phonons as P

    t0 = time.perf_counter()
    sc = P.default_supercell(structure, True)
    full, _, full_ph = P._phonons_at(structure, model, sc, P.MESH_2D, dos=False)
    t1 = time.perf_counter()
    cell = (small, small, 1)
    pre, stab, pre_ph = P._phonons_at(structure, model, cell, cell, dos=False)
    t2 = time.perf_counter()
    q = np.array([[i / small, j / small, 0.0] for i in range(small) for j in range(small)])
    full_ph.run_qpoints(q)
    pre_ph.run_qpoints(q)
    f_full = np.asarray(full_ph.get_qpoints_dict()["frequencies"])
    f_pre = np.asarray(pre_ph.get_qpoints_dict()["frequencies"])
    return {
        "atoms": len(structure),
        "full_supercell": list(full.supercell),
        "full_stable": bool(full.stable),
        "prescreen_stable": bool(pre.stable),
        "prescreen_stops": bool(stab.excess >= margin),  # phonons()'s decision
        "full_min_thz": full.min_frequency,
        "prescreen_min_thz": pre.min_frequency,
        "prescreen_excess_thz": stab.excess,
        "max_diff_thz": float(np.abs(f_full - f_pre).max()),
        # > 0: the pre-screen put the lowest mode at some q lower than the full calculation
        "lowest_mode_lowering_thz": float((f_full[:, 0] - f_pre[:, 0]).max()),
        "full_s": t1 - t0,
        "prescreen_s": t2 - t1,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=60, help="library monolayers (default 60)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--rattle", type=float, default=0.05, help="A (default 0.05)")
    ap.add_argument(
        "--prescreen",
        type=int,
        default=PRESCREEN_REPEAT,
        help=f"n of n x n x 1 (default {PRESCREEN_REPEAT})",
    )
    ap.add_argument("--margin", type=float, default=PRESCREEN_MARGIN, help="THz")
    ap.add_argument("--json", type=Path, required=True, help="write the results here")
    args = ap.parse_args(argv)
    warnings.filterwarnings("ignore")

    from topogen.calc.calculators import RelaxCalc
    from topogen.data import prototypes as P
    from topogen.runtime import set_threads

    set_threads(1)
    chosen = P.select(P.candidates(), args.n, args.seed)
    starts = [P.rattle(c.structure, args.rattle, args.seed, c.id) for c in chosen]
    relax = RelaxCalc()
    log(f"relaxing {len(starts)} monolayers")
    relaxed = relax.relax_many(starts)
    rows: dict[str, Any] = {}
    for k, (c, r) in enumerate(zip(chosen, relaxed, strict=True)):
        if not r.converged or k in relax.refused:
            continue
        try:
            rows[c.id] = compare(r.structure, relax.model, args.prescreen, args.margin)
        except Exception as exc:  # a structure phonopy or CHGNet cannot do: recorded
            rows[c.id] = {"error": f"{type(exc).__name__}: {exc}"[:200]}
            continue
        x = rows[c.id]
        log(
            f"{k + 1}/{len(chosen)} {c.id}: full {'stable' if x['full_stable'] else 'unstable'}"
            f" ({x['full_min_thz']:.2f} THz), pre-screen "
            f"{'stops' if x['prescreen_stops'] else 'passes on'}, lowest-mode lowering "
            f"{x['lowest_mode_lowering_thz']:+.3f} THz"
        )
    ok = [x for x in rows.values() if "error" not in x]
    stops = [x for x in ok if x["prescreen_stops"]]
    full_s = sum(x["full_s"] for x in ok)
    with_pre = sum(x["prescreen_s"] + (0 if x["prescreen_stops"] else x["full_s"]) for x in ok)
    result = {
        "n": len(ok),
        "prescreen": args.prescreen,
        "margin_thz": args.margin,
        "unstable": sum(not x["full_stable"] for x in ok),
        "stopped_by_prescreen": len(stops),
        "false_unstable": sum(x["full_stable"] for x in stops),
        "missed_by_prescreen_but_unstable": sum(
            not x["full_stable"] and not x["prescreen_stops"] for x in ok
        ),
        "worst_lowering_thz": max((x["lowest_mode_lowering_thz"] for x in ok), default=None),
        "median_max_diff_thz": float(np.median([x["max_diff_thz"] for x in ok])) if ok else None,
        "phonons_s_without": full_s,
        "phonons_s_with": with_pre,
        "speedup": full_s / with_pre if with_pre else None,
        "structures": rows,
        "python": sys.version.split()[0],
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    log(json.dumps({k: v for k, v in result.items() if k != "structures"}))
    return 0 if result["false_unstable"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
