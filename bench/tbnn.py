"""Benchmark: the tight-binding network (Peano, Sapper, Marquardt, PRX 11, 021052 (2021)).

p6 step potentials: ``--train`` random potentials on the 91-point wedge grid (the paper: 79
points, 50,000 potentials) and ``--valid`` others on the finer 325-point grid; trains the
network (``--epochs``) and reports, on the validation set, the rms band error / Vmax, the
fraction of right symmetry labels at Gamma, K, M, and the time per band structure of 79 k
points against the 100 x 100 finite-difference Lanczos solver and the plane-wave solver
(one process, ``--threads`` torch threads); then explores ``--explore`` random potentials
(band sets, fragile second sets; the same on the validation set's exact bands) and finds
the p/d inversion of six holes by gradient descent (``topogen tbnn explore`` / ``design``).

The Chern case (``--case bhz``): p4 QWZ supercells of ``--bhz-size``^2 sites with random
C4-symmetric mass maps (-1 / 3), trained on the lowest four bands and their labels at Gamma,
M, X (class D: complex hoppings); reported: rms (units of the hopping t), label accuracy,
and the Chern numbers of the lowest 1..4 bands of the predicted TB models against the exact
ones (FHS), also modulo 4 (what the labels fix), next to the share of the most common exact
value (always guessing it). Its defaults (300 epochs of batch 16, ~27 min on 2 cores) give
the network the optimisation steps it needs: 80 epochs of batch 64 left it at 0.10 t.

Targets (issue #18): reduced scale on CPU rms <= 0.01 Vmax and labels >= 95%; paper scale
rms <= 0.003 Vmax and labels >= 99%; speed-up >= 1000x. Data sets are kept in ``--out`` and
reused when their settings match (``--fresh`` draws them again).

    .venv/bin/python bench/tbnn.py --out bench/out/tbnn --epochs 80 --channels 32 64 128
    .venv/bin/python bench/tbnn.py --out bench/out/tbnn --case bhz
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from topogen.errors import TopogenError
from topogen.models.tbnn.data import make_dataset, read_dataset
from topogen.models.tbnn.design import DesignSettings, find_inversion
from topogen.models.tbnn.evaluate import evaluate, plot_examples, speed
from topogen.models.tbnn.explore import explore
from topogen.models.tbnn.potentials import random_potential
from topogen.models.tbnn.settings import DataSettings, NetworkSettings
from topogen.models.tbnn.symmetry import LATTICES, wedge_grid
from topogen.models.tbnn.train import train_tbnn
from topogen.runtime import set_threads

VALID_WEDGE = 24
P6 = LATTICES["p6"]


def _data(path: Path, settings: DataSettings, n: int, seed: int, wedge: int, args) -> dict:
    if path.exists() and not args.fresh:
        try:
            data = read_dataset(path)
            if (
                data.settings == settings
                and len(data["images"]) == n
                and int(data["seed"]) == seed
                and len(data["kpoints"]) == len(wedge_grid(LATTICES[settings.lattice], wedge))
            ):
                print(f"reusing {path}")
                return data
        except TopogenError:
            pass
    return make_dataset(settings, n, path, seed=seed, wedge=wedge, threads=args.threads)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--out", type=Path, default=Path("bench/out/tbnn"), help="output folder")
    p.add_argument("--train", type=int, default=3000, help="training potentials")
    p.add_argument("--valid", type=int, default=300, help="validation potentials")
    p.add_argument("--epochs", type=int, default=150, help="training epochs")
    p.add_argument("--radius", type=float, default=2.7, help="TB hopping range (a)")
    p.add_argument("--ecut", type=float, default=DataSettings.ecut, help="plane-wave cut-off")
    p.add_argument("--batch-size", type=int, default=64, help="potentials per batch")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate")
    p.add_argument("--channels", type=int, nargs="+", default=[16, 32, 64], help="conv channels")
    p.add_argument("--hidden", type=int, nargs="+", default=[512, 256], help="dense widths")
    p.add_argument("--threads", type=int, default=2, help="data workers and torch threads")
    p.add_argument("--gpus", default="auto", help="0: CPU; auto: a GPU when there is one")
    p.add_argument("--fresh", action="store_true", help="draw the data sets again")
    p.add_argument("--explore", type=int, default=10000, help="random potentials explored")
    p.add_argument("--case", choices=["step", "bhz"], default="step", help="which case")
    p.add_argument("--bhz-size", type=int, default=6, help="bhz: sites per side of the cell")
    p.add_argument("--bhz-train", type=int, default=1000, help="bhz: training cells")
    p.add_argument("--bhz-valid", type=int, default=200, help="bhz: validation cells")
    p.add_argument("--bhz-epochs", type=int, default=300, help="bhz: training epochs")
    p.add_argument("--bhz-batch-size", type=int, default=16, help="bhz: cells per batch")
    p.add_argument("--bhz-lr", type=float, default=3e-3, help="bhz: Adam learning rate")
    p.add_argument("--bhz-radius", type=float, default=2.3, help="bhz: TB hopping range (a)")
    args = p.parse_args(argv)
    set_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.case == "bhz":
        return _bhz(args)
    start = time.perf_counter()
    data_settings = DataSettings(ecut=args.ecut)
    train = _data(args.out / "train.npz", data_settings, args.train, 1, data_settings.wedge, args)
    valid = _data(args.out / "valid.npz", data_settings, args.valid, 2, VALID_WEDGE, args)
    data_s = time.perf_counter() - start
    net = NetworkSettings(
        epochs=args.epochs,
        radius=args.radius,
        batch_size=args.batch_size,
        lr=args.lr,
        channels=tuple(args.channels),
        hidden=tuple(args.hidden),
    )
    t0 = time.perf_counter()
    model = train_tbnn(train, args.out / "run", net, threads=args.threads, gpus=args.gpus)
    train_s = time.perf_counter() - t0
    model = model.cpu()
    metrics = evaluate(model, valid)
    timing = speed(model, valid)
    plot_examples(model, valid, str(args.out / "bands.png"))
    images = np.array(
        [random_potential(P6, data_settings.size, np.random.default_rng([3, i]), 1.0)
         for i in range(args.explore)]
    )  # fmt: skip
    exact = {
        "energies": valid["energies"],
        "vmax": data_settings.vmax,
        "labels": {p: valid[f"labels_{p}"] for p in valid.points},
    }
    explored = {
        "validation": explore(model, valid["images"], valid["kpoints"], exact=exact),
        "random": explore(model, images, valid["kpoints"]),
    }
    designed = find_inversion(model, DesignSettings(ecut=args.ecut))
    summary = {
        "data": asdict(data_settings),
        "network": asdict(net),
        "n_train": args.train,
        "n_valid": args.valid,
        "validation": metrics,
        "speed": timing,
        "explore": explored,
        "design": {k: v for k, v in designed.items() if k != "history"},
        "targets": {
            "cpu_reduced": {"rms_over_vmax": 0.01, "label_accuracy": 0.95},
            "paper": {"rms_over_vmax": 0.003, "label_accuracy": 0.99},
            "speedup_over_lanczos": 1000,
        },
        "met_cpu_reduced": metrics["rms_over_vmax"] <= 0.01 and metrics["label_accuracy"] >= 0.95,
        "met_speedup": timing["speedup_over_lanczos"] >= 1000,
        "wall_s": {"data": data_s, "train": train_s, "total": time.perf_counter() - start},
    }
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(
        f"rms {metrics['rms_over_vmax']:.4f} Vmax, labels {metrics['label_accuracy']:.3f}, "
        f"speed-up over Lanczos {timing['speedup_over_lanczos']:.0f}x -> {args.out}/summary.json"
    )
    return 0


def _bhz(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    out = args.out / "bhz"
    out.mkdir(parents=True, exist_ok=True)
    settings = DataSettings(kind="bhz", size=args.bhz_size, wedge=8, n_bands=4)
    train = _data(out / "train.npz", settings, args.bhz_train, 1, 8, args)
    valid = _data(out / "valid.npz", settings, args.bhz_valid, 2, 16, args)
    net = NetworkSettings(
        orbitals="s s s s p p p p b b b b",  # 8 orbitals fit single cells to 0.1 t only
        radius=args.bhz_radius,
        channels=(16, 32),
        hidden=(256, 256),
        epochs=args.bhz_epochs,
        batch_size=args.bhz_batch_size,
        lr=args.bhz_lr,
    )
    model = train_tbnn(train, out / "run", net, threads=args.threads, gpus=args.gpus).cpu()
    metrics = evaluate(model, valid)
    plot_examples(model, valid, str(out / "bands.png"))
    summary = {
        "data": asdict(settings),
        "network": asdict(net),
        "n_train": args.bhz_train,
        "n_valid": args.bhz_valid,
        "validation": metrics,
        "speed": speed(model, valid),
        "wall_s": time.perf_counter() - start,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    chern = ", ".join(
        f"{k}: {v['accuracy']:.2f} (mod 4: {v['accuracy_mod4']:.2f}; majority "
        f"{v['majority_share']:.2f})"
        for k, v in metrics["chern"].items()
    )
    print(
        f"bhz: rms {metrics['rms_over_vmax']:.4f} t, labels {metrics['label_accuracy']:.3f}, "
        f"Chern {chern} -> {out}/summary.json"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
