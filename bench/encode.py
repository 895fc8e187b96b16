"""Benchmark: crystal-image round trips (voxels alone, then through the autoencoders) on 2D
crystals, and the throughput of every encoding in topogen.encode.

Structures come from ``--table`` (a structure table) or, without one, from the offline 2D
prototype library (``topogen.data.prototypes.candidates()``, unrelaxed, no CHGNet). A seeded
``--held-out`` fraction is never trained on. A decoded crystal counts as reproduced when
pymatgen's StructureMatcher with its DEFAULT tolerances (ltol 0.2, stol 0.3, angle_tol 5)
matches it to the original; the site error is the mean Cartesian distance (Angstrom, in the
original cell) between matched sites. Usage:

    python bench/encode.py --grid 16 --json bench/out/encode-small.json
    python bench/encode.py --grid 32 --json bench/out/encode-paper.json

``--ckpt-dir`` keeps the checkpoints; rerunning with it resumes (or skips) training.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _hex_cell(a: float, species: list[str], frac: list[list[float]], z: list[float]) -> Any:
    from pymatgen.core import Lattice, Structure

    c = max(z) - min(z) + 18.0
    fz = [(h - min(z) + 9.0) / c for h in z]
    lat = Lattice.hexagonal(a, c)
    return Structure(lat, species, [[x, y, w] for (x, y), w in zip(frac, fz, strict=True)])


def fallback_structures() -> list[tuple[str, Any]]:
    """A few dozen 2D monolayers (honeycombs, 1H/1T MX2) when the prototypes are missing."""
    out = []
    honey = {"C": 2.46, "Si": 3.87, "Ge": 4.02, "Sn": 4.67, "Sb": 4.12, "Bi": 4.34, "P": 3.33}
    for el, a in honey.items():
        h = 0.0 if el == "C" else 0.45 * a / 3
        out.append(
            (f"honey-{el}", _hex_cell(a, [el, el], [[1 / 3, 2 / 3], [2 / 3, 1 / 3]], [h, 0]))
        )
    for (x, y), a in {("B", "N"): 2.51, ("Ga", "N"): 3.2, ("Zn", "O"): 3.29}.items():
        out.append(
            (f"honey-{x}{y}", _hex_cell(a, [x, y], [[1 / 3, 2 / 3], [2 / 3, 1 / 3]], [0, 0]))
        )
    for m, am in {"Mo": 0.0, "W": 0.0, "Ti": 0.2, "Zr": 0.45, "Hf": 0.4, "Nb": 0.15}.items():
        for x, ax in {"S": 3.18, "Se": 3.32, "Te": 3.55}.items():
            a = ax + am
            h = 1.6 + (ax - 3.18)
            frac = [[1 / 3, 2 / 3], [2 / 3, 1 / 3], [2 / 3, 1 / 3]]
            out.append((f"1H-{m}{x}2", _hex_cell(a, [m, x, x], frac, [0, h, -h])))
            frac = [[0, 0], [1 / 3, 2 / 3], [2 / 3, 1 / 3]]
            out.append((f"1T-{m}{x}2", _hex_cell(a + 0.1, [m, x, x], frac, [0, h - 0.1, 0.1 - h])))
    return out


def load_structures(table: Path | None) -> tuple[str, list[tuple[str, Any]]]:
    if table is not None:
        from topogen.io.tables import read_records

        return str(table), [(r.id, r.structure) for r in read_records(table)]
    try:
        from topogen.data.prototypes import candidates

        return "prototypes.candidates()", [(c.id, c.structure) for c in candidates()]
    except ImportError:
        return "built-in monolayers", fallback_structures()


def rate(n: int, seconds: float) -> float:
    return n / seconds if seconds > 0 else math.inf


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--table", type=Path, help="structure table (default: 2D prototypes)")
    ap.add_argument("--n", type=int, help="use at most N structures (default: all)")
    ap.add_argument("--grid", type=int, default=16, help="voxels per axis (default: 16)")
    ap.add_argument("--sigma", type=float, help="Gaussian width, voxels (16: 0.75, else 1.0)")
    ap.add_argument("--latent", type=int, default=32, help="latent size (default: 32)")
    ap.add_argument("--width", type=int, default=8, help="full-resolution channels (default: 8)")
    ap.add_argument("--epochs", type=int, default=40, help="training epochs (default: 40)")
    ap.add_argument("--batch-size", type=int, default=8, help="crystals per batch (8)")
    ap.add_argument("--lr", type=float, default=2e-3, help="peak learning rate (2e-3)")
    ap.add_argument("--augment", action="store_true", help="random periodic shifts")
    ap.add_argument("--held-out", type=float, default=0.2, help="held-out fraction (0.2)")
    ap.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    ap.add_argument("--threads", type=int, default=2, help="torch threads (default: 2)")
    ap.add_argument("--ckpt-dir", type=Path, help="keep checkpoints here (resumes)")
    ap.add_argument("--json", type=Path, help="write the figures here")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    warnings.filterwarnings("ignore")  # pymatgen/spglib chatter; the figures are the output

    from topogen.encode.descriptors import PowerSpectrum
    from topogen.encode.graphs import structure_graph
    from topogen.encode.tokens import tokens_from_structure
    from topogen.encode.voxels import PAPER_LIKE, SMALL, devoxelize
    from topogen.models.autoencoder.crystal import voxelize_all
    from topogen.models.autoencoder.images import held_out_split
    from topogen.models.autoencoder.roundtrip import score
    from topogen.models.autoencoder.train import train_autoencoder

    sigma = args.sigma if args.sigma is not None else (0.75 if args.grid <= 16 else 1.0)
    spec = PAPER_LIKE if args.grid == 32 and args.sigma is None else SMALL
    spec = replace(spec, grid=args.grid, sigma=sigma)
    source, items = load_structures(args.table)
    if args.n:
        items = items[: args.n]
    log(f"{len(items)} structures from {source}; grid {args.grid}^3, sigma {sigma} voxel")

    t0 = time.perf_counter()
    voxels, kept, rejected = voxelize_all([s for _, s in items], spec)
    t_vox = time.perf_counter() - t0
    for i, reason in rejected:
        log(f"skipped {items[i][0]}: {reason}")
    items = [items[i] for i in kept]
    structures = [s for _, s in items]
    train_idx, test_idx = held_out_split(len(items), args.held_out, args.seed)
    test = [structures[i] for i in test_idx]
    train = [structures[i] for i in train_idx]
    log(f"voxelized {len(voxels)} in {t_vox:.2f} s; {len(train)} train, {len(test)} held out")

    t0 = time.perf_counter()
    raw = []
    for v in voxels:
        try:
            raw.append(devoxelize(v))
        except Exception:
            raw.append(None)
    t_devox = time.perf_counter() - t0
    raw_all = score(structures, raw)
    raw_test = score(test, [raw[i] for i in test_idx])
    log(f"(a) voxels only: held-out {raw_test['reproduced']:.3f}, all {raw_all['reproduced']:.3f}")

    ckpt = args.ckpt_dir or Path(tempfile.mkdtemp(prefix="bench-encode-"))
    log(f"training the autoencoders ({args.epochs} epochs) -> {ckpt}")
    t0 = time.perf_counter()
    model = train_autoencoder(
        train,
        ckpt,
        spec=spec,
        latent_dim=args.latent,
        width=args.width,
        lr=args.lr,
        augment=args.augment,
        epochs=args.epochs,
        batch_size=args.batch_size,
        val_fraction=0.0,
        seed=args.seed,
        threads=args.threads,
    )
    t_train = time.perf_counter() - t0
    log(f"trained in {t_train:.1f} s")

    t0 = time.perf_counter()
    images = model.encode_many(structures)
    t_enc = time.perf_counter() - t0
    t0 = time.perf_counter()
    decoded = model.decode_many(images)
    t_dec = time.perf_counter() - t0
    ae_test = score(test, [decoded[i] for i in test_idx])
    ae_train = score(train, [decoded[i] for i in train_idx])
    held, seen = ae_test["reproduced"], ae_train["reproduced"]
    log(f"(b) autoencoders: held-out {held:.3f}, train {seen:.3f}")

    t0 = time.perf_counter()
    for s in structures:
        structure_graph(s)
    t_graph = time.perf_counter() - t0
    spectra: dict[tuple[int, ...], PowerSpectrum] = {}  # one per species set, as LoGAN uses
    t0 = time.perf_counter()
    with torch.no_grad():
        for s in structures:
            key = tuple(sorted(set(s.atomic_numbers)))
            if key not in spectra:
                spectra[key] = PowerSpectrum(key, n_max=4, l_max=4)
            spectra[key].encode([s])
    t_desc = time.perf_counter() - t0
    t0 = time.perf_counter()
    for s in structures:
        tokens_from_structure(s)
    t_tok = time.perf_counter() - t0
    n = len(structures)
    figures = {
        "command": " ".join(sys.argv),
        "source": source,
        "n": n,
        "n_train": len(train),
        "n_held_out": len(test),
        "n_rejected": len(rejected),
        "spec": spec.as_dict(),
        "latent_dim": args.latent,
        "image_shape": list(model.image_shape),
        "epochs": args.epochs,
        "threads": args.threads,
        "train_s": t_train,
        "voxels_only": {"held_out": raw_test, "all": raw_all},
        "autoencoders": {"held_out": ae_test, "train": ae_train},
        "throughput_per_s": {
            "voxelize": rate(n, t_vox),
            "devoxelize": rate(n, t_devox),
            "ae_encode": rate(n, t_enc),
            "ae_decode": rate(n, t_dec),
            "graphs": rate(n, t_graph),
            "descriptors": rate(n, t_desc),
            "tokens": rate(n, t_tok),
        },
    }
    text = json.dumps(figures, indent=2)
    print(text)
    if args.json:
        from topogen.io.atomic import write_text

        write_text(args.json, text + "\n")


if __name__ == "__main__":
    main()
