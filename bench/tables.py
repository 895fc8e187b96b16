"""Benchmark: structure-table I/O, topogen's checked atomic writer vs plain pandas.

Writes and reads the same N structures both ways in one run and reports the ratio, so the
cost of the schema check + fsync + rename is visible. Usage:

    python bench/tables.py --n 2000 --json bench/out/tables.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from pymatgen.core import Lattice, Structure

from topogen.io.atomic import write_text
from topogen.io.tables import Record, read_table, records_to_frame, write_table


def _structures(n: int, seed: int) -> list[Record]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        k = int(rng.integers(2, 13))
        lat = Lattice.hexagonal(float(rng.uniform(2.4, 5.0)), 20.0)
        coords = rng.random((k, 3)) * [1, 1, 0.2] + [0, 0, 0.4]
        species = rng.choice(["Bi", "Sb", "Se", "Te", "Mo", "S"], size=k).tolist()
        out.append(Record(f"s{i}", "bench", Structure(lat, species, coords), {"i": i}))
    return out


def _best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--n", type=int, default=2000, help="structures (default: 2000)")
    ap.add_argument("--repeats", type=int, default=5, help="best of R runs (default: 5)")
    ap.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    ap.add_argument("--json", type=Path, help="write the figures here")
    args = ap.parse_args()

    df = records_to_frame(_structures(args.n, args.seed))
    with tempfile.TemporaryDirectory() as tmp:
        ours, base = Path(tmp) / "ours.parquet", Path(tmp) / "base.parquet"
        figures = {
            "n": args.n,
            "write_s": _best_of(lambda: write_table(df, ours), args.repeats),
            "write_baseline_s": _best_of(lambda: df.to_parquet(base, index=False), args.repeats),
            "read_s": _best_of(lambda: read_table(ours), args.repeats),
            "read_baseline_s": _best_of(lambda: pd.read_parquet(base), args.repeats),
        }
    figures["write_ratio"] = figures["write_s"] / figures["write_baseline_s"]
    figures["read_ratio"] = figures["read_s"] / figures["read_baseline_s"]
    text = json.dumps(figures, indent=2)
    print(text)
    if args.json:
        write_text(args.json, text + "\n")


if __name__ == "__main__":
    main()
