"""Benchmark: topological invariants against z2pack, on the same models at the same k resolution.

Three families of random tight-binding models (``--n`` of each, parameters drawn on both
sides of the phase boundary, nothing within ``--margin`` of it, where the gap closes):

haldane
    Chern number of the lowest band (t2, phi, M random); z2pack's WCC orientation is
    opposite to ours, so its Chern number is compared with ours negated.
kane_mele
    Z2 of the two occupied bands, with Rashba coupling (S_z not conserved).
bhz
    Z2 of the two occupied bands with the Delta tau_y s_y coupling; a third of the models
    have Delta = 0 and a third Delta in [1e-4, 1e-3]: occupied bands degenerate or nearly so
    at every k (inversion and time reversal), the hard case for a Wilson loop.

Same resolution: Z2 from ``--lines`` Wilson loops of ``--nk`` k points in each of the two
loop directions (z2pack: one ``surface.run`` per direction with ``num_lines=--lines`` and
``iterator=[--nk]``; ours: :func:`topogen.topology.invariants.z2_invariant` with
``n_loop=--lines``, ``n_k=--nk``); both refine lines where the centres move too far. Chern:
z2pack with ``--nk`` lines of ``--nk`` points, ours the Fukui-Hatsugai-Suzuki number on the
same ``--nk`` x ``--nk`` grid. The time of each is the median of ``--repeat`` runs; the
ratio is z2pack's total over ours, per family.

Output (``--json``): per family the ratio, the totals, ms per model, and every model's
parameters and both answers; the process exits 1 if any answer differs.

    .venv/bin/python bench/invariants.py --n 30 --json bench/out/invariants.json
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from topogen.topology.hr import TBModel, hamiltonian
from topogen.topology.invariants import chern_number, z2_invariant
from topogen.topology.models import bhz, haldane, kane_mele


def _draw(rng: np.random.Generator, lo: float, hi: float, edge: float, margin: float) -> float:
    """A value in [lo, hi] at least ``margin`` (relative) away from ``edge``."""
    while True:
        x = rng.uniform(lo, hi)
        if abs(x - edge) > margin * abs(edge):
            return float(x)


def _haldane(rng: np.random.Generator, margin: float) -> tuple[dict[str, float], TBModel]:
    t2 = rng.uniform(0.05, 0.3)
    phi = rng.uniform(0.2, np.pi - 0.2) * rng.choice([-1, 1])  # both signs of the Chern number
    edge = 3 * np.sqrt(3) * t2 * abs(np.sin(phi))  # |M| below: Chern +-1
    m = _draw(rng, 0.0, 2 * edge, edge, margin) * rng.choice([-1, 1])
    p = {"t2": t2, "phi": phi, "m": m}
    return p, haldane(t1=1.0, **p)


def _kane_mele(rng: np.random.Generator, margin: float) -> tuple[dict[str, float], TBModel]:
    so = rng.uniform(0.03, 0.1)
    edge = 3 * np.sqrt(3) * so  # lambda_v below (lambda_r = 0): Z2 = 1
    v = _draw(rng, 0.0, 2 * edge, edge, margin)
    r = rng.uniform(0.0, 0.3 * so)  # shifts the boundary a little: kept small
    p = {"lambda_so": so, "lambda_v": v, "lambda_r": r}
    return p, kane_mele(**p)


def _bhz(rng: np.random.Generator, margin: float, k: int) -> tuple[dict[str, float], TBModel]:
    edges = (0.0, 4.0, 8.0)
    while True:
        m = rng.uniform(-2.0, 10.0)
        if all(abs(m - e) > 4 * margin for e in edges):
            break
    delta = (0.0, rng.uniform(1e-4, 1e-3), rng.uniform(0.05, 0.3))[k % 3]
    p = {"m": m, "delta": delta}
    return p, bhz(a=1.0, b=1.0, **p)


def _timed(fn: Callable[[], Any], repeat: int) -> tuple[Any, float]:
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return out, statistics.median(times)


def _z2pack_run(z2pack: Any, model: TBModel, nocc: int, surface: Any, lines: int, nk: int) -> Any:
    system = z2pack.hm.System(
        lambda k: hamiltonian(model, np.asarray(k, dtype=float)[None])[0], dim=3, bands=nocc
    )
    return z2pack.surface.run(
        system=system, surface=surface, num_lines=lines, iterator=[nk], load=False
    )


# z2pack's loops for the Z2 of each direction: along k2 pumping k1, then along k1 (as ours)
SURFACES = (lambda s, t: [t, s / 2, 0], lambda s, t: [s / 2, t, 0])


def run(args: argparse.Namespace) -> dict[str, Any]:
    import z2pack

    logging.getLogger("z2pack").setLevel(logging.ERROR)
    rng = np.random.default_rng(args.seed)
    settings = {k: v for k, v in vars(args).items() if k != "json"}
    out: dict[str, Any] = {"settings": settings, "families": {}}
    for family in ("haldane", "kane_mele", "bhz"):
        rows = []
        for k in range(args.n):
            if family == "haldane":
                params, model = _haldane(rng, args.margin)
                ours, t_ours = _timed(lambda m=model: chern_number(m, 1, n=args.nk), args.repeat)
                theirs, t_z2 = _timed(
                    lambda m=model: (
                        -round(
                            z2pack.invariant.chern(
                                _z2pack_run(z2pack, m, 1, lambda s, t: [s, t, 0], args.nk, args.nk)
                            )
                        )
                    ),
                    args.repeat,
                )
            else:
                params, model = (
                    _kane_mele(rng, args.margin)
                    if family == "kane_mele"
                    else _bhz(rng, args.margin, k)
                )
                res, t_ours = _timed(
                    lambda m=model: z2_invariant(m, 2, n_k=args.nk, n_loop=args.lines), args.repeat
                )
                ours = list(res.by_direction)
                theirs, t_z2 = _timed(
                    lambda m=model: [
                        int(z2pack.invariant.z2(_z2pack_run(z2pack, m, 2, f, args.lines, args.nk)))
                        for f in SURFACES
                    ],
                    args.repeat,
                )
            rows.append(
                {
                    "params": params,
                    "ours": ours,
                    "z2pack": theirs,
                    "ours_s": t_ours,
                    "z2pack_s": t_z2,
                }
            )
            print(f"{family} {k:3d}: ours {ours} z2pack {theirs} "
                  f"{1e3 * t_ours:.1f} ms vs {1e3 * t_z2:.0f} ms", flush=True)  # fmt: skip
        ours_s = sum(r["ours_s"] for r in rows)
        z2_s = sum(r["z2pack_s"] for r in rows)
        values = [r["ours"] for r in rows]
        out["families"][family] = {
            "n": len(rows),
            "agree": sum(r["ours"] == r["z2pack"] for r in rows),
            "phases": {
                str(v): values.count(v) for v in map(json.loads, {json.dumps(v) for v in values})
            },
            "ours_ms_per_model": 1e3 * ours_s / len(rows),
            "z2pack_ms_per_model": 1e3 * z2_s / len(rows),
            "speedup": z2_s / ours_s,
            "models": rows,
        }
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=30, help="random models per family")
    p.add_argument("--nk", type=int, default=24, help="k points per Wilson loop (and Chern grid)")
    p.add_argument("--lines", type=int, default=11, help="Wilson loops per direction (Z2)")
    p.add_argument(
        "--margin", type=float, default=0.1, help="relative distance from a phase boundary"
    )
    p.add_argument("--repeat", type=int, default=3, help="timings per model (median)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, help="write the result here")
    args = p.parse_args()
    out = run(args)
    for family, f in out["families"].items():
        print(f"{family}: {f['agree']}/{f['n']} agree, phases {f['phases']}, "
              f"{f['ours_ms_per_model']:.1f} ms vs z2pack {f['z2pack_ms_per_model']:.0f} ms "
              f"per model: {f['speedup']:.1f}x")  # fmt: skip
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=1) + "\n")
    return 0 if all(f["agree"] == f["n"] for f in out["families"].values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
