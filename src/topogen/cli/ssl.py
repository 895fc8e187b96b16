"""``topogen ssl ...``: the self-supervised crystal generator (Liu, Chen et al., iScience
2024): pretraining, fine-tuning heads, the GAN stage, its metrics and candidate sampling."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path
from typing import Any

from topogen.cli.options import add_options, read_options
from topogen.cli.parser import Subparsers, command, gpus_option, group, later, threads_option
from topogen.cli.stage import log, stage

BACKBONE_HELP = {
    "backbone": "equivariant network (painn)",
    "hidden": "feature width",
    "layers": "message-passing blocks",
    "cutoff": "graph cut-off (A)",
    "max_neighbors": "nearest neighbours kept per atom",
    "n_rbf": "radial basis functions",
}
PRETRAIN_HELP = {
    **BACKBONE_HELP,
    "species_mask": "probability of masking every atom of one species (else a fraction)",
    "mask_fraction": "fraction of atoms masked otherwise (paper: 0.15)",
    "noise_ratio": "position noise / shortest edge (paper: 0.1)",
    "pos_weight": "w_pos: weight of the position MSE (A^2) (paper: 200)",
    "lr": "Adam learning rate (paper: 1e-4)",
    "epochs": "epochs",
    "batch_size": "crystals per batch",
    "seed": "weights, batches, corruptions",
}
FINETUNE_HELP = {
    "task": "classification (property <= threshold is class 1) or regression",
    "property": "the table's property column",
    "threshold": "classification: the class boundary",
    "positive": "class 1 (e.g. stable) is property <= threshold (below) or > (above)",
    "hidden": "width of the head",
    "held_out": "fraction of the labelled crystals held out for the metric",
    "lr": "Adam learning rate",
    "epochs": "epochs",
    "batch_size": "crystals per batch",
    "seed": "head weights, split, batches",
}
GAN_HELP = {
    "noise_ratio": "position noise of the generator's input / shortest edge (paper: 0.2)",
    "real_noise": "noise on real crystals shown to the discriminator / shortest edge",
    "species_mask": "probability of masking every atom of one species",
    "mask_fraction": "fraction of atoms masked otherwise",
    "adv_weight": "w_W: weight of the adversarial term (paper: 0.1)",
    "pos_weight": "w_pos: weight of the position MSE",
    "lr_g": "generator Adam learning rate (paper: 1e-4)",
    "lr_d": "discriminator Adam learning rate (paper: 1e-5)",
    "d_every": "generator steps per discriminator step",
    "epochs": "epochs",
    "batch_size": "crystals per batch",
    "seed": "batches, corruptions",
}


def _options(cls_name: str, help: dict[str, str]) -> Any:
    def setup(p: argparse.ArgumentParser) -> None:
        from topogen.models.ssl import settings

        add_options(p, getattr(settings, cls_name), help)
        gpus_option(p)
        threads_option(p)

    return setup


def _crystals(table: str, backbone: dict[str, Any]) -> tuple[list, list]:
    """The table's crystals (the graph of ``backbone``'s settings) and records; the ones
    without a graph are logged, skipped."""
    from topogen.io.tables import read_records
    from topogen.models.ssl.crystals import table_crystals

    cutoff, most = backbone["cutoff"], backbone["max_neighbors"]
    items, records, bad = table_crystals(read_records(table), cutoff, most)
    for rid, reason in bad:
        log(f"ssl: {table}: {rid} skipped: {reason}")
    return items, records


def _train_run(args: argparse.Namespace, inputs: list[str], train: Any) -> None:
    """Run ``train(items, records)`` in a stage and copy the work folder's model to --out."""
    from topogen.models.ssl.train import FINAL
    from topogen.runtime import accelerator_devices

    args.accelerator, _ = accelerator_devices(args.gpus)
    with stage(args, inputs=[args.table, *inputs]) as run:
        train(run)
        shutil.copyfile(Path(args.workdir) / FINAL, run.output(args.out))
    log(f"ssl: -> {args.out}")


def _pretrain(args: argparse.Namespace) -> int:
    from topogen.models.ssl.settings import PretrainSettings
    from topogen.models.ssl.train import pretrain

    s = read_options(args, PretrainSettings)

    def train(run: Any) -> None:
        items, _ = _crystals(args.table, s.hparams()["backbone"])
        pretrain(items, args.workdir, s, val_fraction=args.val_fraction, threads=args.threads,
                 accelerator=args.accelerator, log=log)  # fmt: skip

    _train_run(args, [], train)
    return 0


def _finetune(args: argparse.Namespace) -> int:
    import math

    from topogen.models.ssl.model import Generator
    from topogen.models.ssl.settings import FinetuneSettings
    from topogen.models.ssl.train import finetune, load

    s = read_options(args, FinetuneSettings)

    def train(run: Any) -> None:
        pretrained = load(args.pretrained, Generator)
        h = pretrained.hparams
        items, records = _crystals(args.table, h.backbone)
        for c, r in zip(items, records, strict=True):
            value = r.properties.get(s.property)
            c.label = s.label(float(value) if value is not None else math.nan)
        _, metrics = finetune(items, pretrained, args.workdir, s, threads=args.threads,
                              accelerator=args.accelerator, log=log)  # fmt: skip
        metrics = {"task": s.task, "property": s.property, "threshold": s.threshold,
                   "positive": s.positive, **metrics}  # fmt: skip
        run.write_json(args.metrics, metrics)
        log(f"ssl finetune: held out {metrics}")

    _train_run(args, [args.pretrained], train)
    return 0


def _gan(args: argparse.Namespace) -> int:
    from topogen.models.ssl.model import Generator, PropertyModel
    from topogen.models.ssl.settings import GanSettings
    from topogen.models.ssl.train import load, train_gan

    s = read_options(args, GanSettings)

    def train(run: Any) -> None:
        generator = load(args.generator, Generator)
        classifier = load(args.classifier, PropertyModel)
        h = generator.hparams
        items, _ = _crystals(args.table, h.backbone)
        train_gan(items, generator, classifier, args.workdir, s, val_fraction=args.val_fraction,
                  threads=args.threads, accelerator=args.accelerator, log=log)  # fmt: skip

    _train_run(args, [args.generator, args.classifier], train)
    return 0


def _metrics(args: argparse.Namespace) -> int:
    import pandas as pd

    from topogen.models.ssl.evaluate import NOISES, Training, metrics_table, plot_metrics
    from topogen.models.ssl.model import Generator
    from topogen.models.ssl.train import SPLIT_SEED, load, split
    from topogen.runtime import set_threads
    from topogen.screen.validity import composition_problem

    set_threads(args.threads)
    named = dict(item.split("=", 1) for item in args.models)
    with stage(args, inputs=[args.table, *named.values()]) as run:
        models = {name: load(path, Generator) for name, path in named.items()}
        h = next(iter(models.values())).hparams
        items, records = _crystals(args.table, h.backbone)
        train_idx, held = split(len(items), args.val_fraction, SPLIT_SEED)
        test = [items[k] for k in held][: args.n] if args.n else [items[k] for k in held]
        training = Training([records[k].structure for k in train_idx])
        rows = metrics_table(models, test, training, seed=args.seed, noises=args.noises or NOISES,
                             composition_ok=lambda comp: composition_problem(comp) is None,
                             log=log)  # fmt: skip
        pd.DataFrame(rows).to_csv(run.output(args.out), index=False)
        if args.plot:
            plot_metrics(rows, run.output(args.plot), f"{len(test)} held-out crystals of "
                         f"{Path(args.table).name}")  # fmt: skip
    log(f"ssl metrics: {len(rows)} rows on {len(test)} held-out crystals -> {args.out}")
    return 0


def _sample(args: argparse.Namespace) -> int:
    from topogen.io.tables import read_records
    from topogen.models.ssl.sampling import sample_ssl
    from topogen.runtime import set_threads

    set_threads(args.threads)
    with stage(args, inputs=[args.model, args.table]) as run:
        parents = read_records(args.table)
        result = sample_ssl(args.model, parents, args.n, args.seed, noise=args.noise,
                            temperature=args.temperature,
                            min_distance=args.min_distance)  # fmt: skip
        run.save_records(result, args.out, f"ssl: {args.n} samples from {len(parents)} parents,")
    return 0


def _table_model_args(p: argparse.ArgumentParser, out: str, *models: tuple[str, str]) -> None:
    p.add_argument("--table", required=True, metavar="TABLE", help="structure table")
    for flag, what in models:
        p.add_argument(flag, required=True, metavar="CKPT", help=what)
    p.add_argument("--out", required=True, metavar="CKPT", help=out)
    p.add_argument("--workdir", required=True, metavar="DIR", help="checkpoints and logs")


def register(stages: Subparsers) -> None:
    """Add ``topogen ssl ...``."""
    cmds = group(stages, "ssl", "self-supervised crystal generator (Liu et al. 2024)", "step",
                 "STEP")  # fmt: skip
    held = "fraction of the table held out (the same crystals in every step)"
    p = command(
        cmds,
        "pretrain",
        _pretrain,
        "masked-species + denoising pretraining of the equivariant generator",
        "Corrupts every crystal of --table (one species or a fraction of the atoms masked,\n"
        "positions perturbed) and trains the network to give back the species (NLL) and the\n"
        "displacements (MSE); an interrupted run resumes from --workdir.",
    )
    _table_model_args(p, "the pretrained generator")
    p.add_argument("--val-fraction", type=float, default=0.1, help=held)
    later(p, _options("PretrainSettings", PRETRAIN_HELP))
    p = command(
        cmds,
        "finetune",
        _finetune,
        "a classification or regression head on the pretrained backbone",
        "Class 1 (e.g. stable: energy above hull <= threshold) or the standardised value of\n"
        "--property; --metrics: held-out accuracy (or MAE) next to the majority class (or\n"
        "the mean). The classifier is the GAN's starting discriminator.",
    )
    _table_model_args(p, "the fine-tuned model", ("--pretrained", "`topogen ssl pretrain`"))
    p.add_argument("--metrics", required=True, metavar="JSON", help="held-out metrics")
    later(p, _options("FinetuneSettings", FINETUNE_HELP))
    p = command(
        cmds,
        "gan",
        _gan,
        "the GAN stage: pretrained generator vs fine-tuned classifier",
        "Generator loss: w_W x L1(softmax D(fake), real) + species NLL + w_pos x position\n"
        "MSE; discriminator loss: L1 between its softmax and the one-hot real/fake label.",
    )
    _table_model_args(
        p,
        "the GAN (its generator samples)",
        ("--generator", "`topogen ssl pretrain` output"),
        ("--classifier", "`topogen ssl finetune` classification output"),
    )
    p.add_argument("--val-fraction", type=float, default=0.1, help=held)
    later(p, _options("GanSettings", GAN_HELP))
    p = command(
        cmds,
        "metrics",
        _metrics,
        "validity, similarity and novelty of reconstructions, per mask type and noise",
        "On the held-out crystals of --table: structural and compositional validity, species\n"
        "recovery, compositional and structural similarity, novelty, for masks (one species,\n"
        "15%, 30%) x noise ratios, for every --models NAME=CKPT (see\n"
        "topogen.models.ssl.evaluate).",
    )
    p.add_argument("--table", required=True, metavar="TABLE", help="structure table")
    p.add_argument("--models", required=True, nargs="+", metavar="NAME=CKPT",
                   help="generators (pretrain or gan outputs)")  # fmt: skip
    p.add_argument("--out", required=True, metavar="CSV", help="the metrics table")
    p.add_argument("--plot", metavar="PNG", help="the metrics against the noise ratio")
    p.add_argument("--val-fraction", type=float, default=0.1, help=held)
    p.add_argument("--n", type=int, default=0, help="at most N held-out crystals (0: all)")
    p.add_argument("--noises", type=float, nargs="+", help="noise ratios (0.1 0.2 0.4)")
    p.add_argument("--seed", type=int, default=0, help="crystal k is corrupted with (SEED, k)")
    threads_option(p)
    p = command(
        cmds,
        "sample",
        _sample,
        "candidates: one species of a table crystal replaced and positions re-made",
        "Sample i (seed (SEED, i)) masks every atom of one species of a random crystal of\n"
        "--table, perturbs the positions, and lets the generator fill in one new element and\n"
        "the displacements; rows record parent, replaced and new element, seed and model.",
    )
    p.add_argument("--model", required=True, metavar="CKPT", help="a generator (gan/pretrain)")
    p.add_argument("--table", required=True, metavar="TABLE", help="parent crystals")
    p.add_argument("--n", type=int, default=100, help="samples")
    p.add_argument("--seed", type=int, default=0, help="sample i uses seed (SEED, i)")
    p.add_argument("--noise", type=float, default=0.1, help="position noise / shortest edge")
    p.add_argument("--temperature", type=float, default=1.0, help="element draw (0: the best)")
    p.add_argument("--min-distance", type=float, default=0.5, help="A: closer atoms reject")
    p.add_argument("--out", required=True, metavar="TABLE", help="candidate table (.parquet)")
    threads_option(p)
