"""Training one stage of the three-stage GAN (:class:`~topogen.models.gan3.gan.CrystalGAN`)
with the one Trainer factory (:func:`topogen.models.training.make_trainer`): the stage's
image set, the Stage III oracle, resuming from ``last.ckpt`` and the stage's output model.

Stage III's output is its best epoch by the stage metric, and its metric of record is a
re-scoring of that model on ``rescore_samples`` fresh samples (:func:`rescore`): the best of
many noisy per-epoch estimates overstates itself."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch

from topogen.models.gan3.gan import ORACLE_KEYS, CrystalGAN, GanError, load_gan
from topogen.models.gan3.oracle import Oracle, OracleSettings
from topogen.models.gan3.settings import GanSettings


def image_set(
    images_path: str | os.PathLike[str], table_path: str | os.PathLike[str], stage: int
) -> tuple[list[str], torch.Tensor, torch.Tensor]:
    """(ids, images (N, rows, cols), labels (N,)) for a stage: every image in Stage I (label
    1), only the crystals with a ``topo2d`` label (1/0) in the table in Stages II/III."""
    import json

    from topogen.encode.store import load_encoded
    from topogen.io.tables import read_table

    store = load_encoded(images_path, "images")
    images = store["tensors"]["images"].float()
    ids = list(store["ids"])
    if stage == 1:
        return ids, images, torch.ones(len(ids))
    props = read_table(table_path).set_index("id")["properties"]
    keep, labels = [], []
    for i, rid in enumerate(ids):
        label = json.loads(props[rid]).get("topo2d") if rid in props.index else None
        if label in (0, 1):
            keep.append(i)
            labels.append(float(label))
    n_topo = int(sum(labels))
    if n_topo == 0 or n_topo == len(labels):
        raise GanError(
            f"{table_path}: Stage {stage} needs crystals labelled topological (topo2d = 1) and "
            f"trivial (0) among the encoded ones; found {n_topo} and {len(labels) - n_topo}"
        )
    return [ids[i] for i in keep], images[keep], torch.tensor(labels)


@dataclass
class StageResult:
    """A trained stage: per-epoch metrics (a DataFrame, every run of the stage merged) and,
    for Stage III, the summary of record (:func:`rescore`), else None."""

    metrics: Any
    summary: dict[str, Any] | None = None


def stage3_oracle(
    model: CrystalGAN,
    autoencoder: str | os.PathLike[str],
    band_gap_model: str | os.PathLike[str] | None = None,
    threads: int | None = None,
    topology_model: str | os.PathLike[str] | None = None,
) -> tuple[Any, Oracle]:
    """(decoder, :class:`Oracle`) for :meth:`CrystalGAN.attach_oracle`: the crystal
    autoencoder and the oracle with ``model``'s settings (and the CGCNN gap model and the
    CrystalBERT topology classifier, if given)."""
    from topogen.models.autoencoder.train import load_autoencoder
    from topogen.models.cgcnn.model import load_cgcnn
    from topogen.models.crystalbert.scorer import TopologyClassifier

    gap_model = load_cgcnn(band_gap_model) if band_gap_model is not None else None
    topology = TopologyClassifier(topology_model) if topology_model is not None else None
    oracle = Oracle(
        OracleSettings(**model.hparams.oracle), gap_model, threads=threads, topology_model=topology
    )
    return load_autoencoder(autoencoder), oracle


def rescore(
    model: CrystalGAN, n: int, history: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """The stage metric of record: ``model`` (with its oracle attached) scored on ``n``
    samples from :meth:`~CrystalGAN.rescore_seed`, a seed no epoch used; per verdict ``k``,
    ``n``, the fraction and its 90% Wilson interval; plus the epoch the model is from and the
    whole run's scorings (``history``, default the model's own :attr:`~CrystalGAN.history`:
    ``initial`` before the first epoch, then each epoch)."""
    seed = model.rescore_seed()
    _, scores = model.score(n, seed)
    own = model.history[-1] if model.history else None
    history = list(model.history if history is None else history)
    epochs = [r for r in history if r["epoch"] >= 0]
    return {
        "stage_metric": model.stage_metric,
        "rescored": {
            "seed": seed,
            "n": n,
            **{k: v for k, v in scores.summary().items() if k in ORACLE_KEYS},
            "counts": scores.counts(),
        },
        "model_epoch": own["epoch"] if own else None,
        "model_generator_sha256": own["generator_sha256"] if own else None,
        "initial": history[0] if history and history[0]["epoch"] < 0 else None,
        "epochs": epochs,
    }


def train_stage(
    stage: int,
    images_path: str | os.PathLike[str],
    table_path: str | os.PathLike[str],
    workdir: str | os.PathLike[str],
    out: str | os.PathLike[str],
    settings: GanSettings | None = None,
    *,
    init: str | os.PathLike[str] | None = None,
    autoencoder: str | os.PathLike[str] | None = None,
    band_gap_model: str | os.PathLike[str] | None = None,
    topology_model: str | os.PathLike[str] | None = None,
    accelerator: str = "cpu",
    devices: int = 1,
    threads: int | None = None,
    log: Any = print,
) -> StageResult:
    """Train one stage with ``settings`` (default :class:`GanSettings`) in ``workdir``
    (resuming from its ``last.ckpt``), write the stage's model to ``out`` (Stage III: its
    best epoch by the stage metric, then re-scored by :func:`rescore`; its oracles: CHGNet,
    and the band-gap and topology models when given)."""
    from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint

    from topogen.io.atomic import atomic_path
    from topogen.io.provenance import sha256
    from topogen.models.training import (
        fingerprint,
        make_trainer,
        quiet_lightning,
        read_metrics,
        resume_path,
    )

    settings = settings if settings is not None else GanSettings()
    seed, epochs, patience = settings.seed, settings.epochs, settings.patience
    L.seed_everything(seed, verbose=False)
    ids, images, labels = image_set(images_path, table_path, stage)
    if stage > 1 and init is None:
        raise GanError(f"Stage {stage} starts from the Stage {stage - 1} model: give init")
    model = CrystalGAN(
        stage,
        images.shape[1:],
        has_gap_model=band_gap_model is not None,
        has_topology_model=topology_model is not None,
        **settings.model_hparams(),
    )
    if init is not None:
        model.init_from(load_gan(init))
    oracle_parts = None
    if stage == 3:
        if autoencoder is None:
            raise GanError("Stage III decodes its samples: give the crystal autoencoder")
        oracle_parts = stage3_oracle(model, autoencoder, band_gap_model, threads, topology_model)
        model.attach_oracle(*oracle_parts)
    n_topo = int(labels.sum())
    log(
        f"gan stage {stage}: {len(ids)} crystal images {tuple(images.shape[1:])}"
        + (f" ({n_topo} topological, {len(ids) - n_topo} trivial)" if stage > 1 else "")
        + f", {epochs} epochs, lr {model.hparams.lr:g}, {accelerator} x{devices}"
    )
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(images, labels),
        batch_size=settings.batch_size,
        shuffle=True,
        drop_last=len(ids) > settings.batch_size,  # batch norm needs more than one image
        generator=torch.Generator().manual_seed(seed),
    )
    callbacks: list[Any] = []
    best = None
    if stage == 3:
        best = ModelCheckpoint(
            dirpath=Path(workdir) / "best", monitor="stage_metric", mode="max", save_top_k=1
        )
        callbacks.append(best)
        if patience:
            callbacks.append(
                EarlyStopping(
                    "stage_metric", mode="max", patience=patience, check_on_train_epoch_end=True
                )
            )
    oracle_files = {"autoencoder": autoencoder, "band_gap_model": band_gap_model}
    oracle_files |= {"topology_model": topology_model, "chgnet_model": settings.oracle.chgnet_model}
    oracle_files = {k: v for k, v in oracle_files.items() if v is not None and stage == 3}
    stamp = fingerprint(
        model,
        (images, labels),
        batch_size=settings.batch_size,
        seed=seed,
        oracle_files={k: sha256(v) for k, v in oracle_files.items()},
    )
    ckpt = resume_path(workdir, stamp, epochs, log)
    with quiet_lightning():
        trainer = make_trainer(
            workdir,
            epochs,
            accelerator=accelerator,
            devices=devices,
            callbacks=callbacks,
            progress=f"gan stage {stage}",
        )
        trainer.fit(model, loader, ckpt_path=ckpt)
    source = best.best_model_path if best is not None and best.best_model_path else None
    with atomic_path(out) as tmp:
        if source:
            Path(tmp).write_bytes(Path(source).read_bytes())
        else:
            trainer.save_checkpoint(tmp, weights_only=True)
    if oracle_parts is None:
        return StageResult(read_metrics(workdir))
    chosen = load_gan(out)
    chosen.attach_oracle(*oracle_parts)
    n = settings.rescore_samples
    epoch = chosen.history[-1]["epoch"]
    log(f"gan stage 3: re-scoring the model (epoch {epoch}) on {n} fresh samples")
    summary = rescore(chosen, n, model.history)
    counts = summary["rescored"]["counts"]
    log(
        "gan stage 3: re-scored "
        + ", ".join(
            f"{k} {c['k']}/{c['n']} (90% CI {c['interval'][0]:.3f}-{c['interval'][1]:.3f})"
            for k, c in counts.items()
        )
    )
    return StageResult(read_metrics(workdir), summary)
