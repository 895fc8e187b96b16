"""``topogen train ...``: the CGCNN band-gap model, the three GAN stages and the CHGNet
fine-tuning on DFT trajectories."""

from __future__ import annotations

import argparse
from typing import Any

from topogen.cli.options import add_options, read_options
from topogen.cli.parser import Subparsers, command, gpus_option, group, later, threads_option
from topogen.cli.stage import log, stage
from topogen.errors import TopogenError

# Help of each GanSettings field (type and default come from the dataclass).
GAN_HELP = {
    "epochs": "epochs (paper: 100, 50, 50)",
    "batch_size": "images per batch",
    "lr": "Adam learning rate (None: the paper's 5e-4, 2e-4, 2e-4 for stages 1, 2, 3)",
    "noise_dim": "generator noise size",
    "width": "convolution channels",
    "seed": "weights, batches, oracle samples",
    "patience": "stage 3: stop after N epochs without gain",
    "adv_weight": "stage 3 adversarial weight",
    "reward_weight": "stage 3 reward weight",
    "stage3_discriminator": "stage 3: 'train' the discriminator on real images or 'freeze' it "
    "(the paper's: no real data)",
    "reward_lr": "stage 3 reward-model learning rate",
    "reward_steps": "reward-model steps per epoch",
    "oracle_samples": "oracle samples per epoch",
    "rescore_samples": "stage 3: fresh samples re-scoring the model (metric of record)",
}

# The Stage III oracle's settings that `train gan` exposes (OracleSettings' batch_size would
# collide with the GAN's); help of each (type and default come from the dataclass).
ORACLE_HELP = {
    "fmax": "oracle relaxation fmax (eV/A)",
    "relax_steps": "oracle FIRE steps",
    "min_repeat_2d": "oracle phonon supercell",
    "prescreen": "oracle phonon pre-screen supercell n x n x 1 (0: none)",
    "band_gap_min": "eV: insulating",
    "topology_min": "topology score: topological (with --topology-model)",
    "chgnet_model": "the oracle's force field: a CHGNet from `topogen train chgnet` "
    "(none: pretrained 0.3.0)",
}

# Help of each FinetuneSettings field (type and default come from the dataclass).
CHGNET_HELP = {
    "epochs": "epochs of CHGNet's trainer",
    "batch_size": "frames per batch",
    "lr": "Adam learning rate (cosine decay)",
    "held_out": "fraction of the structures (whole trajectories) held out for the MAEs",
    "val_fraction": "fraction of the training frames for the trainer's per-epoch check",
    "stress": "train on stresses too (needs a converged cutoff: Pulay stress)",
    "force_weight": "force loss weight (energy: 1)",
    "stress_weight": "stress loss weight",
    "refit_reference": "refit the per-element reference energies (AtomRef) first",
    "seed": "split, batches, weights",
}


# Help of each CrystalBertSettings field (type and default come from the dataclass).
CRYSTALBERT_HELP = {
    "width": "token embedding width (paper: 256)",
    "layers": "transformer encoder layers (paper: 5)",
    "heads": "attention heads (paper: 4)",
    "dropout": "dropout in the encoder",
    "lr": "AdamW peak learning rate",
    "weight_decay": "AdamW weight decay",
    "batch_size": "crystals per batch (paper: 64)",
    "epochs": "training epochs",
    "warmup": "epochs of linear warm-up before the cosine decay",
    "space_group": "the five space-group tokens",
    "electrons": "the 14-bit electron-count token",
    "elements": "the element-vector token",
    "graph": "the CGCNN graph token (trained jointly)",
    "transformer": "the transformer encoder (off: one fully connected layer)",
    "graph_hidden": "CGCNN width of the graph token",
    "graph_layers": "CGCNN convolutions of the graph token",
    "seed": "weights, batches, splits and folds",
}


def _crystalbert_data(args: argparse.Namespace, task: str) -> Any:
    from topogen.io.tables import read_records
    from topogen.models.crystalbert.data import GRAPH_PARAMS, table_examples

    graph_params = GRAPH_PARAMS if args.graph else None
    data = table_examples(read_records(args.table), task, str(args.table), graph_params)
    return data, graph_params


def _crystalbert(args: argparse.Namespace) -> int:
    """``topogen train crystalbert``: pretraining on lattice parameters."""
    from topogen.models.crystalbert.settings import CrystalBertSettings
    from topogen.models.crystalbert.train import pretrain
    from topogen.runtime import accelerator_devices

    accelerator, _ = accelerator_devices(args.gpus)
    settings = read_options(args, CrystalBertSettings)
    with stage(args, inputs=[args.table]) as run:
        data, graph_params = _crystalbert_data(args, "lattice")
        log(f"crystalbert: {len(data.examples)} structures, {len(data.rejected)} rejected")
        metrics = pretrain(
            data, settings, args.workdir, run.output(args.out), graph_params,
            held_out=args.held_out, accelerator=accelerator,
        )  # fmt: skip
        run.write_json(args.metrics, metrics)
        run.quarantine(args.out, data.rejected)
    if "mae_a" in metrics:
        log(
            f"crystalbert: held-out MAE of a {metrics['mae_a']:.3f} A (predicting the mean: "
            f"{metrics['mae_a_of_train_mean']:.3f} A) -> {args.out}"
        )
    return 0


def _topology_classifier(args: argparse.Namespace) -> int:
    """``topogen train topology-classifier``: CrystalBERT fine-tuned on topo2d labels."""
    from topogen.models.crystalbert.settings import CrystalBertSettings
    from topogen.models.crystalbert.train import train_classifier
    from topogen.runtime import accelerator_devices

    accelerator, _ = accelerator_devices(args.gpus)
    settings = read_options(args, CrystalBertSettings)
    with stage(args, inputs=[args.table, args.pretrained]) as run:
        data, graph_params = _crystalbert_data(args, "topology")
        log(f"topology classifier: {len(data.examples)} labelled crystals")
        metrics = train_classifier(
            data, settings, args.workdir, run.output(args.out), graph_params,
            pretrained=args.pretrained, folds=args.folds, accelerator=accelerator, log=log,
        )  # fmt: skip
        run.write_json(args.metrics, metrics)
        run.quarantine(args.out, data.rejected)
    for row in metrics.get("cross_validation", []):
        log(
            f"topology classifier, {metrics['folds']}-fold: {row['model']} accuracy "
            f"{row['accuracy_mean']:.3f} +- {row['accuracy_std']:.3f}, F1 {row['f1_mean']:.3f}"
        )
    return 0


def _cgcnn(args: argparse.Namespace) -> int:
    from topogen.models.cgcnn.train import load_graph_set, train_cgcnn

    with stage(args, inputs=[args.graphs, args.table]) as run:
        data = load_graph_set(args.graphs, args.table, args.target)
        log(
            f"cgcnn: {len(data.graphs)} structures with {args.target!r}, "
            f"{len(data.rejected)} without"
        )
        metrics = train_cgcnn(
            data,
            args.workdir,
            run.output(args.out),
            epochs=args.epochs,
            seed=args.seed,
            batch_size=args.batch_size,
            hidden=args.hidden,
            layers=args.layers,
            lr=args.lr,
            accelerator=args.accelerator,
        )
        run.write_json(args.metrics, metrics)
        run.quarantine(args.out, data.rejected)
    log(
        f"cgcnn: held-out MAE {metrics['test_mae_ev']:.3f} eV (predicting the mean: "
        f"{metrics['test_mae_of_train_mean_ev']:.3f} eV) -> {args.out}"
    )
    return 0


def _gan(args: argparse.Namespace) -> int:
    """``topogen train gan --stage N``: one stage of the three-stage GAN."""
    from topogen.models.gan3.oracle import OracleSettings
    from topogen.models.gan3.settings import GanSettings
    from topogen.models.gan3.train import train_stage
    from topogen.report.training import plot_training, write_metrics_csv
    from topogen.runtime import accelerator_devices

    if args.stage == 3 and not args.summary:
        raise TopogenError("train gan --stage 3: give --summary (the re-scored metrics, JSON)")
    accelerator, devices = accelerator_devices(args.gpus)
    inputs = [
        *(args.images, args.table, args.init, args.autoencoder, args.band_gap_model),
        *(args.topology_model, args.chgnet_model),
    ]
    oracle = read_options(args, OracleSettings, only=ORACLE_HELP)
    settings = read_options(args, GanSettings, exclude=("oracle",), oracle=oracle)
    with stage(args, inputs, command=f"topogen train gan --stage {args.stage}") as run:
        result = train_stage(
            args.stage,
            args.images,
            args.table,
            args.workdir,
            run.output(args.out),
            settings,
            init=args.init,
            autoencoder=args.autoencoder,
            band_gap_model=args.band_gap_model,
            topology_model=args.topology_model,
            accelerator=accelerator,
            devices=devices,
            threads=args.threads,
            log=log,
        )
        metrics = result.metrics
        write_metrics_csv(metrics, run.output(args.metrics))
        if result.summary is not None:
            run.write_json(args.summary, result.summary)
        plot_training(metrics, run.output(args.plot), f"GAN stage {args.stage}")
    last = metrics.iloc[-1].to_dict() if len(metrics) else {}
    shown = ", ".join(
        f"{k} {v:.3g}" for k, v in last.items() if k != "epoch" and isinstance(v, float)
    )
    log(f"gan stage {args.stage}: {len(metrics)} epochs -> {args.out}; last epoch: {shown}")
    return 0


def _chgnet(args: argparse.Namespace) -> int:
    """``topogen train chgnet``: CHGNet fine-tuned on DFT relaxation trajectories."""
    from topogen.models.chgnet.finetune import FinetuneSettings, finetune

    with stage(args, inputs=[*args.trajectories, args.init]) as run:
        metrics = finetune(
            args.trajectories,
            run.output(args.out),
            args.workdir,
            read_options(args, FinetuneSettings),
            init=args.init,
            log=log,
        )
        run.write_json(args.metrics, metrics)
    return 0


# Help of each LoganSettings field (type and default come from the dataclass).
LOGAN_HELP = {
    "epochs": "epochs",
    "steps": "generator steps per epoch",
    "batch_size": "generated structures per step",
    "latent_dim": "generator noise size (paper: 20)",
    "r_cut": "descriptor cutoff (A)",
    "n_max": "descriptor radial functions",
    "l_max": "descriptor angular momentum",
    "radial": "descriptor radial basis: gaussian (shells), centred (the authors') or bessel",
    "max_neighbors": "descriptor: nearest neighbours kept (paper: 12 or 25; none: all)",
    "n_critic": "critic steps per generator step",
    "gp_weight": "gradient-penalty weight (lambda)",
    "lr": "RMSProp learning rate (both networks)",
    "rattle": "A: Gaussian rattle of the training copies",
    "copies": "rattled copies of every training structure",
    "span": "fraction of c the atoms may fill (a 2D layer in a vacuum cell: < 1)",
    "snapshots": "generators kept for sampling, evenly spaced over the epochs (1: the final)",
    "seed": "weights, noise, environment draws, rattling",
}


def _logan(args: argparse.Namespace) -> int:
    """``topogen train logan``: one LoGAN ensemble member for one target."""
    import shutil
    from pathlib import Path

    from pymatgen.core import Lattice

    from topogen.io.tables import read_records
    from topogen.models.logan.settings import LoganSettings
    from topogen.models.logan.train import (
        FINAL,
        chemical_system,
        composition_numbers,
        train_logan,
    )
    from topogen.runtime import accelerator_devices

    accelerator, _ = accelerator_devices(args.gpus)
    numbers = composition_numbers(args.formula)
    cell = Lattice.from_parameters(*args.lattice).matrix
    settings = read_options(args, LoganSettings)
    with stage(args, inputs=[args.table]) as run:
        every = [r.structure for r in read_records(args.table)]
        training = chemical_system(every, numbers)
        log(f"logan: {len(training)} of {len(every)} structures in the {args.formula} system")
        train_logan(
            training,
            numbers,
            cell,
            args.workdir,
            settings,
            threads=args.threads,
            accelerator=accelerator,
            log=log,
        )
        shutil.copyfile(Path(args.workdir) / FINAL, run.output(args.out))
    log(f"logan: {args.formula} in {args.lattice} -> {args.out}")
    return 0


def register(stages: Subparsers) -> None:
    """Add ``topogen train ...``."""
    cmds = group(stages, "train", "train the models", "model", "MODEL")
    p = command(
        cmds, "cgcnn", _cgcnn, "CGCNN band-gap model on encoded graphs (held-out MAE reported)"
    )
    p.add_argument("--graphs", required=True, metavar="PT", help="from `topogen encode graphs`")
    p.add_argument(
        "--table", required=True, metavar="TABLE", help="structure table with the target"
    )
    p.add_argument("--target", default="band_gap", help="property to learn (eV)")
    p.add_argument("--out", required=True, metavar="CKPT", help="trained model (.ckpt)")
    p.add_argument("--metrics", required=True, metavar="JSON", help="held-out metrics")
    p.add_argument(
        "--workdir",
        required=True,
        metavar="DIR",
        help="checkpoints and per-epoch logs; an interrupted run resumes from here",
    )
    p.add_argument("--epochs", type=int, default=50, help="training epochs")
    p.add_argument("--batch-size", type=int, default=32, help="structures per batch")
    p.add_argument("--hidden", type=int, default=64, help="hidden width")
    p.add_argument("--layers", type=int, default=3, help="graph convolutions")
    p.add_argument("--lr", type=float, default=1e-3, help="AdamW learning rate")
    p.add_argument("--seed", type=int, default=0, help="seed of the split and the weights")
    p.add_argument("--accelerator", default="auto", help="Lightning accelerator: auto, cpu, gpu")
    threads_option(p)
    _register_gan(cmds)
    _register_chgnet(cmds)
    _register_logan(cmds)
    _register_crystalbert(cmds)


def _register_crystalbert(cmds: Subparsers) -> None:
    p = command(
        cmds,
        "crystalbert",
        _crystalbert,
        "pretrain CrystalBERT: lattice parameters from tokens and graph",
        "Regresses a, b, c, alpha, beta, gamma (standardised) of every structure of --table\n"
        "from its space-group, electron-count, element and CGCNN graph tokens (see\n"
        "topogen.models.crystalbert). Writes the model (for --pretrained of\n"
        "`train topology-classifier`) and held-out MAEs next to predicting the mean.",
    )
    p.add_argument("--table", required=True, metavar="TABLE", help="structure table")
    p.add_argument("--out", required=True, metavar="CKPT", help="the pretrained model")
    p.add_argument("--metrics", required=True, metavar="JSON", help="held-out MAEs")
    p.add_argument("--workdir", required=True, metavar="DIR", help="checkpoints and logs")
    p.add_argument("--held-out", type=float, default=0.1, help="fraction of structures held out")
    later(p, _crystalbert_options)
    p = command(
        cmds,
        "topology-classifier",
        _topology_classifier,
        "CrystalBERT topology classifier on the topo2d labels of a structure table",
        "Fine-tunes CrystalBERT (from --pretrained when given) to tell topological (topo2d\n"
        "1) from trivial (0) crystals of --table: --folds-fold cross-validation first (the\n"
        "metrics, next to the majority class), then the model of record on every labelled\n"
        "crystal. Its probability of 'topological' is the funnel's topology score.",
    )
    p.add_argument("--table", required=True, metavar="TABLE", help="structures with topo2d")
    p.add_argument("--pretrained", metavar="CKPT", help="`train crystalbert` output")
    p.add_argument("--out", required=True, metavar="CKPT", help="the classifier")
    p.add_argument("--metrics", required=True, metavar="JSON", help="cross-validation metrics")
    p.add_argument("--workdir", required=True, metavar="DIR", help="checkpoints and logs")
    p.add_argument("--folds", type=int, default=5, help="cross-validation folds (0: none)")
    later(p, _crystalbert_options)


def _crystalbert_options(p: argparse.ArgumentParser) -> None:
    from topogen.models.crystalbert.settings import CrystalBertSettings

    add_options(p, CrystalBertSettings, CRYSTALBERT_HELP)
    gpus_option(p)
    threads_option(p)


def _register_logan(cmds: Subparsers) -> None:
    p = command(
        cmds,
        "logan",
        _logan,
        "one LoGAN ensemble member: a WGAN on local environments for one target",
        "Trains the generator of FORMULA's atoms in the cell --lattice against a per-atom\n"
        "critic on the local environments of the structures of --table made of FORMULA's\n"
        "elements only (and rattled copies), drawn to match the target composition (see\n"
        "topogen.models.logan). An interrupted run resumes from --workdir.",
    )
    p.add_argument("--table", required=True, metavar="TABLE", help="training structures")
    p.add_argument("--formula", required=True, help="target composition, e.g. MoS2 or Mo2S4")
    p.add_argument(
        "--lattice", required=True, type=float, nargs=6,
        metavar=("A", "B", "C", "ALPHA", "BETA", "GAMMA"), help="target cell (A, degrees)",
    )  # fmt: skip
    p.add_argument("--out", required=True, metavar="CKPT", help="the trained member")
    p.add_argument("--workdir", required=True, metavar="DIR", help="checkpoints and logs")
    later(p, _logan_options)


def _logan_options(p: argparse.ArgumentParser) -> None:
    from topogen.encode.descriptors import RADIAL_BASES
    from topogen.models.logan.settings import LoganSettings

    add_options(p, LoganSettings, LOGAN_HELP, choices={"radial": RADIAL_BASES})
    gpus_option(p)
    threads_option(p)


def _register_gan(cmds: Subparsers) -> None:
    p = command(
        cmds,
        "gan",
        _gan,
        "one stage of the three-stage GAN on crystal images",
        "Stage 1: real vs generated crystal images. Stage 2: a new topology-aware\n"
        "discriminator (topo2d labels; generated = 0). Stage 3: CHGNet relaxation + phonon\n"
        "stability, CGCNN gap and (optional) CrystalBERT topology oracles through a reward\n"
        "model refit every epoch (see topogen.models.gan3). Writes the model, per-epoch\n"
        "metrics (CSV) and their plot; an interrupted stage resumes from --workdir.",
    )
    p.add_argument("--stage", type=int, choices=[1, 2, 3], required=True, help="GAN stage")
    p.add_argument("--images", required=True, metavar="PT", help="`topogen encode images` output")
    p.add_argument("--table", required=True, metavar="TABLE", help="structure table (labels)")
    p.add_argument("--init", metavar="CKPT", help="the previous stage's model (stages 2, 3)")
    p.add_argument("--autoencoder", metavar="CKPT", help="crystal autoencoder (stage 3)")
    p.add_argument("--band-gap-model", metavar="CKPT", help="CGCNN gap oracle (stage 3)")
    p.add_argument(
        "--topology-model",
        metavar="CKPT",
        help="stage 3: CrystalBERT topology classifier (`topogen train topology-classifier`) "
        "as a third oracle (a reward head; the stage metric becomes 'all')",
    )
    p.add_argument("--out", required=True, metavar="CKPT", help="the stage's model")
    p.add_argument("--metrics", required=True, metavar="CSV", help="per-epoch metrics")
    p.add_argument("--plot", required=True, metavar="PNG", help="per-epoch curves")
    p.add_argument(
        "--summary", metavar="JSON", help="stage 3: the re-scored model's metrics (of record)"
    )
    p.add_argument("--workdir", required=True, metavar="DIR", help="checkpoints and logs")
    later(p, _gan_options)


def _gan_options(p: argparse.ArgumentParser) -> None:
    from topogen.models.gan3.oracle import OracleSettings
    from topogen.models.gan3.settings import GanSettings

    add_options(p, GanSettings, GAN_HELP, exclude=("oracle",))
    add_options(p, OracleSettings, ORACLE_HELP, only=ORACLE_HELP)
    gpus_option(p)
    threads_option(p)


def _register_chgnet(cmds: Subparsers) -> None:
    p = command(
        cmds,
        "chgnet",
        _chgnet,
        "fine-tune CHGNet on DFT relaxation trajectories (held-out MAEs before and after)",
        "CHGNet's own trainer on the frames of `topogen dft trajectory` files; whole\n"
        "structures are held out. Writes the model (for --chgnet-model of `screen chunk` and\n"
        "`train gan`) and the metrics: held-out energy and force MAE before and after.",
    )
    p.add_argument(
        "--trajectories", nargs="+", required=True, metavar="JSON", help="trajectory files"
    )
    p.add_argument("--init", metavar="PT", help="a fine-tuned CHGNet to start from (none: 0.3.0)")
    p.add_argument("--out", required=True, metavar="PT", help="the fine-tuned CHGNet")
    p.add_argument("--metrics", required=True, metavar="JSON", help="held-out MAEs, history")
    p.add_argument("--workdir", required=True, metavar="DIR", help="the trainer's checkpoints")
    later(p, _chgnet_options)


def _chgnet_options(p: argparse.ArgumentParser) -> None:
    from topogen.models.chgnet.finetune import FinetuneSettings

    add_options(p, FinetuneSettings, CHGNET_HELP)
    threads_option(p)
