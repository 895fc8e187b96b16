"""``topogen tbnn ...``: the tight-binding network for periodic metamaterials (Peano,
Sapper, Marquardt, PRX 11, 021052 (2021)): data, training, evaluation."""

from __future__ import annotations

import argparse

from topogen.cli.options import add_options, read_options
from topogen.cli.parser import Subparsers, command, gpus_option, group, later, threads_option
from topogen.cli.stage import log, stage

DATA_HELP = {
    "kind": "step: p6 step potentials (Schroedinger); bhz: p4 QWZ mass maps (Chern case)",
    "size": "pixels (step) or sites (bhz) per side of the image (the network's input)",
    "ecut": "plane-wave cut-off of the exact solver (E0 = hbar^2/2ma^2)",
    "wedge": "k grid: intervals per side of the irreducible wedge (12: 91 points)",
    "n_bands": "bands learnt",
    "vmax": "potential height (E0; the paper's (16 hbar)^2/(2 m a^2) = 256; bhz: 1)",
    "masses": "bhz: the two masses of the map (units of the hopping)",
    "chern_grid": "bhz: FHS grid of the exact Chern numbers",
}
NETWORK_HELP = {
    "orbitals": "irreps at Wyckoff 1a of the TB model (s, p, d, f; b: B of p4; bhz: e.g. "
    "'s s p p b b')",
    "radius": "hopping range of the TB model (units of a)",
    "channels": "convolution channels per block",
    "hidden": "dense layer widths",
    "dropout": "dropout after each dense layer",
    "lr": "Adam learning rate (cosine decay)",
    "epochs": "training epochs",
    "batch_size": "potentials per batch",
    "label_weight": "r: weight of the per-irrep-block loss at Gamma, K, M",
    "late_factor": "r is multiplied by this late in training",
    "late_fraction": "fraction of the epochs that counts as late",
    "seed": "weights, split, batches",
}


def _data_options(p: argparse.ArgumentParser) -> None:
    from topogen.models.tbnn.settings import DataSettings

    add_options(p, DataSettings, DATA_HELP, choices={"kind": ["step", "bhz"]})
    threads_option(p)


def _network_options(p: argparse.ArgumentParser) -> None:
    from topogen.models.tbnn.settings import NetworkSettings

    add_options(p, NetworkSettings, NETWORK_HELP)
    gpus_option(p)
    threads_option(p)


def _data(args: argparse.Namespace) -> int:
    from topogen.models.tbnn.data import make_dataset
    from topogen.models.tbnn.settings import DataSettings

    settings = read_options(args, DataSettings)
    with stage(args) as run:
        make_dataset(
            settings,
            args.n,
            run.output(args.out),
            seed=args.seed,
            wedge=args.wedge,
            threads=args.threads or 1,
            log=log,
        )
    return 0


def _train(args: argparse.Namespace) -> int:
    import shutil
    from pathlib import Path

    from topogen.models.tbnn.data import read_dataset
    from topogen.models.tbnn.settings import NetworkSettings
    from topogen.models.tbnn.train import FINAL, train_tbnn

    settings = read_options(args, NetworkSettings)
    with stage(args, inputs=[args.data]) as run:
        data = read_dataset(args.data)
        train_tbnn(
            data,
            args.workdir,
            settings,
            val_fraction=args.val_fraction,
            threads=args.threads,
            gpus=args.gpus,
            log=log,
        )
        shutil.copyfile(Path(args.workdir) / FINAL, run.output(args.out))
    log(f"tbnn: model -> {args.out}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from topogen.models.tbnn.data import read_dataset
    from topogen.models.tbnn.evaluate import evaluate, plot_examples, speed
    from topogen.models.tbnn.train import load_tbnn

    with stage(args, inputs=[args.model, args.data]) as run:
        model = load_tbnn(args.model)
        data = read_dataset(args.data)
        metrics = evaluate(model, data)
        metrics["speed"] = speed(model, data, n_kpoints=args.speed_kpoints)
        run.write_json(args.metrics, metrics)
        if args.plot:
            plot_examples(model, data, str(run.output(args.plot)))
    s = metrics["speed"]
    baseline = "Lanczos" if "speedup_over_lanczos" in s else "the exact solver"
    speedup = s.get("speedup_over_lanczos", s["speedup_over_exact_solver"])
    chern = metrics.get("chern", {})
    log(
        f"tbnn: rms {metrics['rms_over_vmax']:.4f} (units of vmax), labels "
        f"{100 * metrics['label_accuracy']:.1f}% right on {metrics['n_potentials']} cells; "
        + "".join(f"Chern of the {k}: {100 * v['accuracy']:.0f}% right; " for k, v in chern.items())
        + f"{speedup:.0f}x faster than {baseline} ({s['n_kpoints']} k points) -> {args.metrics}"
    )
    return 0


DESIGN_HELP = {
    "hole": "hole radius (a) of the six-hole geometry",
    "softness": "edge width of the holes (a): the image is smooth in R",
    "start": "initial R (a) of the gradient descent",
    "steps": "Adam steps on the geometry",
    "lr": "Adam learning rate on the geometry",
    "scan": "radii of the exact scan between 0.1 and 0.5 a",
    "ecut": "plane-wave cut-off of the exact check (the training data's)",
}


def _design_options(p: argparse.ArgumentParser) -> None:
    from topogen.models.tbnn.design import DesignSettings

    add_options(p, DesignSettings, DESIGN_HELP)
    threads_option(p)


def _design(args: argparse.Namespace) -> int:
    from topogen.models.tbnn.design import DesignSettings, find_inversion, fit_target, plot_design
    from topogen.models.tbnn.train import load_tbnn

    settings = read_options(args, DesignSettings)
    with stage(args, inputs=[args.model]) as run:
        model = load_tbnn(args.model)
        result = {"inversion": find_inversion(model, settings)}
        result["target_fit"] = fit_target(model, (0.3, 0.12), (0.22, 0.15), settings)
        run.write_json(args.out, result)
        if args.plot:
            plot_design(result, str(run.output(args.plot)))
    inv = result["inversion"]
    exact = inv["exact_crossing"]
    log(
        f"tbnn design: p/d inversion at R = {inv['designed_radius']:.3f} a by gradient descent"
        f" (exact crossing: {'none' if exact is None else f'{exact:.3f} a'}); target fit "
        f"{result['target_fit']['found']} for {result['target_fit']['target']} -> {args.out}"
    )
    return 0


def _explore(args: argparse.Namespace) -> int:
    import numpy as np

    from topogen.models.tbnn.data import read_dataset
    from topogen.models.tbnn.explore import explore
    from topogen.models.tbnn.potentials import random_potential
    from topogen.models.tbnn.symmetry import wedge_grid
    from topogen.models.tbnn.train import load_tbnn

    with stage(args, inputs=[args.model, args.valid]) as run:
        model = load_tbnn(args.model)
        lattice, size = model.tb.lattice, model.hparams.size
        kpoints = wedge_grid(lattice, args.wedge)
        exact = None
        if args.valid:
            valid = read_dataset(args.valid)
            points = valid.points
            exact = {
                "energies": valid["energies"],
                "vmax": valid.settings.vmax,
                "labels": {p: valid[f"labels_{p}"] for p in points},
            }
            kpoints = valid["kpoints"]
            result = {"validation": explore(model, valid["images"], kpoints, args.gap, exact=exact)}
        else:
            result = {}
        images = np.array(
            [random_potential(lattice, size, np.random.default_rng([args.seed, i]), 1.0)
             for i in range(args.n)]
        )  # fmt: skip
        log(f"tbnn explore: {args.n} random potentials, {len(kpoints)} k points")
        result["random"] = explore(model, images, kpoints, args.gap)
        run.write_json(args.out, result)
    fine = result["random"]["fine"]
    points = result["random"]["points"]
    log(
        f"tbnn explore: {fine['fragile']} of {args.n} second band sets fragile "
        f"({fine['with_second_set']} isolated); checked at Gamma, K, M only: "
        f"{points['fragile']} of {points['with_second_set']} -> {args.out}"
    )
    return 0


def _network_inputs(p: argparse.ArgumentParser, out: tuple[str, str], plot: str = "") -> None:
    """--model (a trained network), the JSON output ``out`` (flag, help) and --plot."""
    p.add_argument("--model", required=True, metavar="CKPT", help="`topogen tbnn train` output")
    p.add_argument(out[0], required=True, metavar="JSON", help=out[1])
    if plot:
        p.add_argument("--plot", metavar="PNG", help=plot)


def register(stages: Subparsers) -> None:
    """Add ``topogen tbnn ...``."""
    cmds = group(stages, "tbnn", "tight-binding network for periodic metamaterials", "step", "STEP")
    p = command(
        cmds,
        "data",
        _data,
        "random C6-symmetric step potentials and their exact bands and symmetry labels",
        "Draws N Gaussian random fields with C6-symmetric Fourier components\n"
        "(<|A_k|^2> ~ 1/|k|, |n1|, |n2| <= 6), digitises them to {0, Vmax} and solves\n"
        "-laplacian + V with plane waves on the irreducible-wedge k grid; the labels are the\n"
        "rotation eigenvalues at Gamma, K, M (see topogen.models.tbnn).",
    )
    p.add_argument("--out", required=True, metavar="NPZ", help="the data set")
    p.add_argument("--n", type=int, required=True, help="number of potentials")
    p.add_argument("--seed", type=int, default=0, help="sample i is drawn with seed (SEED, i)")
    later(p, _data_options)
    p = command(
        cmds,
        "train",
        _train,
        "the network: potential image -> symmetric tight-binding model -> bands",
        "Trains on a `topogen tbnn data` set (a fraction held out for the validation\n"
        "curve); an interrupted run resumes from --workdir.",
    )
    p.add_argument("--data", required=True, metavar="NPZ", help="`topogen tbnn data` output")
    p.add_argument("--out", required=True, metavar="CKPT", help="the trained network")
    p.add_argument("--workdir", required=True, metavar="DIR", help="checkpoints and logs")
    p.add_argument("--val-fraction", type=float, default=0.1, help="potentials held out")
    later(p, _network_options)
    p = command(
        cmds,
        "evaluate",
        _evaluate,
        "rms band error / Vmax, symmetry-label accuracy and speed-up of a trained network",
        "On a validation set (its own, usually finer, k grid): rms deviation of the bands in\n"
        "units of Vmax, the fraction of right symmetry labels per band and point, and the\n"
        "time per band structure against the plane-wave and finite-difference Lanczos\n"
        "solvers; --plot draws exact and predicted bands of a few potentials.",
    )
    _network_inputs(p, ("--metrics", "the metrics"), "exact vs predicted bands")
    p.add_argument("--data", required=True, metavar="NPZ", help="validation set")
    p.add_argument("--speed-kpoints", type=int, default=79, help="k points of the timing")
    threads_option(p)
    p = command(
        cmds,
        "design",
        _design,
        "gradient-based design through the network: the p/d band inversion of six holes",
        "Six holes (V = 0) move out from the rotation centre; R of the p/d band inversion at\n"
        "Gamma is found by gradient descent through the network and checked against an exact\n"
        "scan; then a target band structure's geometry (R, hole) is recovered from another\n"
        "start (see topogen.models.tbnn.design).",
    )
    _network_inputs(p, ("--out", "design results"), "the inversion gap against R")
    later(p, _design_options)
    p = command(
        cmds,
        "explore",
        _explore,
        "band sets, symmetry fingerprints and fragile topology of many random potentials",
        "Runs N random potentials through the network: isolated band sets (gaps over the\n"
        "whole k grid, and, as a contrast, at Gamma, K, M only), the symmetry fingerprint of\n"
        "the second set, and whether it is a sum of elementary band representations (else:\n"
        "fragile). With --valid, the same on a validation set's exact bands, and the\n"
        "agreement (see topogen.models.tbnn.explore).",
    )
    _network_inputs(p, ("--out", "the exploration"))
    p.add_argument("--n", type=int, default=10000, help="random potentials")
    p.add_argument("--seed", type=int, default=3, help="potential i is drawn with (SEED, i)")
    p.add_argument("--valid", metavar="NPZ", help="a validation set: the exact check")
    p.add_argument("--wedge", type=int, default=24, help="k grid without --valid (its grid)")
    p.add_argument("--gap", type=float, default=1e-3, help="a set's gap, units of Vmax")
    threads_option(p)
