"""Train the self-supervised generator's networks and load them back.

Each function trains one network with the house's resumable, fingerprinted Trainer on
:class:`~topogen.models.ssl.crystals.Crystal` lists, holds out a fraction for the
validation curve, and writes ``<outdir>/model.ckpt`` (weights + hyper-parameters, read back
with ``weights_only=True``):

- :func:`pretrain`: the masked/denoising :class:`~topogen.models.ssl.model.Generator`;
- :func:`finetune`: a :class:`~topogen.models.ssl.model.PropertyModel` whose backbone
  starts from a pretrained generator's;
- :func:`train_gan`: :class:`~topogen.models.ssl.model.SSLGAN` from a pretrained generator
  and a fine-tuned classifier.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch

from topogen.encode import EncodingError
from topogen.models.ssl.crystals import Crystal, collate
from topogen.models.ssl.model import SSLGAN, Generator, PropertyModel
from topogen.models.ssl.settings import FinetuneSettings, GanSettings, PretrainSettings
from topogen.models.training import fingerprint, make_trainer, quiet_lightning, resume_path
from topogen.runtime import set_threads

FINAL = "model.ckpt"
SPLIT_SEED = 0  # pretraining, GAN and metrics hold out the same crystals of a table


def split(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, held-out) indices: a seeded permutation, at least one of each when n >= 2."""
    order = np.random.default_rng(seed).permutation(n)
    k = min(n - 1, max(1, round(fraction * n))) if n >= 2 and fraction > 0 else 0
    return np.sort(order[k:]), np.sort(order[:k])


def _loader(items: Sequence[Crystal], batch_size: int, seed: int, shuffle: bool) -> Any:
    gen = torch.Generator().manual_seed(seed)
    return torch.utils.data.DataLoader(
        list(items), batch_size=batch_size, shuffle=shuffle, collate_fn=collate, generator=gen
    )


def _fit(
    model: L.LightningModule,
    train: Sequence[Crystal],
    valid: Sequence[Crystal],
    outdir: str | os.PathLike[str],
    epochs: int,
    batch_size: int,
    seed: int,
    *,
    accelerator: str,
    log: Any,
    **extra: Any,
) -> L.LightningModule:
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    data = [(c.species, c.positions, c.cell, c.label) for c in [*train, *valid]]
    stamp = fingerprint(model, data, batch_size=batch_size, n_valid=len(valid), **extra)
    ckpt = resume_path(outdir, stamp, epochs, log)
    with quiet_lightning():
        trainer = make_trainer(outdir, epochs, accelerator=accelerator, devices=1)
        trainer.fit(
            model,
            _loader(train, batch_size, seed, shuffle=True),
            _loader(valid, batch_size, seed, shuffle=False) if valid else None,
            ckpt_path=ckpt,
        )
        trainer.save_checkpoint(outdir / FINAL, weights_only=True)
    return model.eval()


def pretrain(
    items: Sequence[Crystal],
    outdir: str | os.PathLike[str],
    settings: PretrainSettings | None = None,
    *,
    val_fraction: float = 0.1,
    threads: int | None = None,
    accelerator: str = "auto",
    log: Any = print,
) -> Generator:
    """Masked-species + denoising pretraining on ``items``."""
    settings = settings or PretrainSettings()
    set_threads(threads)
    L.seed_everything(settings.seed, verbose=False)
    model = Generator(**settings.hparams())
    tr, va = split(len(items), val_fraction, SPLIT_SEED)
    log(f"ssl pretrain: {len(tr)} crystals ({len(va)} held out), {settings.epochs} epochs")
    return _fit(model, [items[k] for k in tr], [items[k] for k in va], outdir,
                settings.epochs, settings.batch_size, settings.seed, accelerator=accelerator,
                log=log)  # type: ignore[return-value]  # fmt: skip


def finetune(
    items: Sequence[Crystal],
    pretrained: Generator,
    outdir: str | os.PathLike[str],
    settings: FinetuneSettings | None = None,
    *,
    threads: int | None = None,
    accelerator: str = "auto",
    log: Any = print,
) -> tuple[PropertyModel, dict[str, Any]]:
    """Fine-tune a head (and the backbone) on the labelled ``items`` (``Crystal.label``);
    returns the model and its held-out metrics next to the trivial predictor's (majority
    class or the training mean)."""
    s = settings or FinetuneSettings()
    set_threads(threads)
    L.seed_everything(s.seed, verbose=False)
    labelled = [c for c in items if np.isfinite(c.label)]
    if len(labelled) < 4:
        raise EncodingError(f"{len(labelled)} labelled crystals: too few to fine-tune on")
    tr, va = split(len(labelled), s.held_out, s.seed)
    train, valid = [labelled[k] for k in tr], [labelled[k] for k in va]
    y = np.array([c.label for c in train])
    mean, std = (float(y.mean()), float(y.std()) or 1.0) if s.task == "regression" else (0, 1)
    model = PropertyModel(dict(pretrained.hparams.backbone), task=s.task, head=s.hidden,
                          lr=s.lr, seed=s.seed, mean=mean, std=std)  # fmt: skip
    model.backbone.load_state_dict(pretrained.backbone.state_dict())
    log(f"ssl finetune ({s.task} of {s.property}): {len(train)} crystals, {len(valid)} held out")
    _fit(model, train, valid, outdir, s.epochs, s.batch_size, s.seed, accelerator=accelerator,
         log=log, settings=asdict(s))  # fmt: skip
    return model, property_metrics(model, valid, train)


@torch.no_grad()
def property_metrics(
    model: PropertyModel, valid: Sequence[Crystal], train: Sequence[Crystal]
) -> dict[str, Any]:
    """Held-out accuracy (classification) or MAE (regression), and the trivial predictor's."""
    model.eval()
    y = np.array([c.label for c in valid])
    y_train = np.array([c.label for c in train])
    pred = np.concatenate([
        model.predict(collate(valid[k:k + 64]).to("cpu", torch.float32)).numpy()
        for k in range(0, len(valid), 64)
    ]) if valid else np.zeros(0)  # fmt: skip
    if model.hparams.task == "classification":
        majority = float(np.mean(y_train) >= 0.5)
        return {"n_held_out": len(y), "accuracy": float(np.mean((pred >= 0.5) == y)),
                "majority_accuracy": float(np.mean(y == majority)),
                "positive_fraction": float(np.mean(y))}  # fmt: skip
    return {"n_held_out": len(y), "mae": float(np.mean(np.abs(pred - y))),
            "mean_predictor_mae": float(np.mean(np.abs(y_train.mean() - y)))}  # fmt: skip


def train_gan(
    items: Sequence[Crystal],
    generator: Generator,
    classifier: PropertyModel,
    outdir: str | os.PathLike[str],
    settings: GanSettings | None = None,
    *,
    val_fraction: float = 0.1,
    threads: int | None = None,
    accelerator: str = "auto",
    log: Any = print,
) -> SSLGAN:
    """The GAN stage from a pretrained generator and a fine-tuned classifier."""
    s = settings or GanSettings()
    set_threads(threads)
    if classifier.hparams.task != "classification":
        raise EncodingError("the GAN's discriminator starts from a classifier, not a regressor")
    L.seed_everything(s.seed, verbose=False)
    model = SSLGAN(dict(generator.hparams), dict(classifier.hparams), **s.hparams())
    model.generator.load_state_dict(generator.state_dict())
    model.discriminator.load_state_dict(classifier.state_dict())
    tr, va = split(len(items), val_fraction, SPLIT_SEED)
    log(f"ssl gan: {len(tr)} crystals ({len(va)} held out), {s.epochs} epochs")
    return _fit(model, [items[k] for k in tr], [items[k] for k in va], outdir, s.epochs,
                s.batch_size, s.seed, accelerator=accelerator,
                log=log)  # type: ignore[return-value]  # fmt: skip


def load(path: str | os.PathLike[str], kind: type[L.LightningModule]) -> Any:
    """A trained module of class ``kind`` from a ``.ckpt`` (``weights_only=True``); a GAN
    checkpoint also serves as a Generator (its generator)."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        hp = dict(ckpt["hyper_parameters"])
        cls = SSLGAN if "discriminator" in hp else PropertyModel if "task" in hp else Generator
        model = cls(**hp)
        model.load_state_dict(ckpt["state_dict"])
    except (OSError, RuntimeError, KeyError, TypeError, ValueError, EOFError,
            pickle.UnpicklingError) as exc:  # fmt: skip
        raise EncodingError(f"{path}: not a self-supervised generator checkpoint ({exc})") from exc
    if isinstance(model, SSLGAN) and kind is Generator:
        model = model.generator
    if not isinstance(model, kind):
        raise EncodingError(f"{path}: a {type(model).__name__}, not a {kind.__name__}")
    return model.eval()
