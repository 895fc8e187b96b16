"""Training CrystalBERT with the one Trainer factory: one Lightning module per task
(classification: cross-entropy; regression: MSE on standardised targets), AdamW with a
linear warm-up and cosine decay, pretrained weights carried into fine-tuning."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader

from topogen.io.atomic import atomic_path
from topogen.models.crystalbert.data import CLASS_NAMES, LATTICE, ExampleSet
from topogen.models.crystalbert.model import CrystalBert, Example, collate
from topogen.models.crystalbert.settings import CrystalBertSettings
from topogen.models.training import fingerprint, make_trainer, quiet_lightning, resume_path

CLASSIFICATION, REGRESSION = "classification", "regression"


class CrystalBertTask(L.LightningModule):
    """CrystalBERT with one head trained: ``task`` of ``kind`` with ``outputs`` classes or
    regression targets. Regression targets are standardised with ``target_mean``/
    ``target_std`` (kept in the checkpoint); ``graph_params`` are the graph settings of
    :func:`topogen.encode.graphs.structure_graph` the model was trained with;
    ``class_names`` label the classes."""

    def __init__(
        self,
        settings: dict[str, Any],
        task: str,
        kind: str,
        outputs: int,
        graph_dims: tuple[int, int] | None = None,
        graph_params: dict[str, Any] | None = None,
        target_mean: list[float] | None = None,
        target_std: list[float] | None = None,
        class_names: list[str] | None = None,
    ) -> None:
        super().__init__()
        if kind not in (CLASSIFICATION, REGRESSION):
            raise ValueError(f"kind must be {CLASSIFICATION!r} or {REGRESSION!r}, not {kind!r}")
        self.save_hyperparameters()
        dims = tuple(graph_dims) if graph_dims is not None else None
        with torch.random.fork_rng():  # initial weights from the settings' seed alone
            torch.manual_seed(int(settings.get("seed", 0)))
            self.model = CrystalBert(CrystalBertSettings(**settings), {task: outputs}, dims)  # type: ignore[arg-type]
        if kind == REGRESSION:
            self.register_buffer("mean", torch.tensor(target_mean or [0.0] * outputs))
            self.register_buffer("std", torch.tensor(target_std or [1.0] * outputs))

    def forward(self, batch: dict[str, Any]) -> torch.Tensor:
        """Logits (classification) or standardised predictions (regression)."""
        return self.model(batch, self.hparams.task)

    def _loss(self, batch: dict[str, Any]) -> torch.Tensor:
        out = self(batch)
        if self.hparams.kind == CLASSIFICATION:
            return torch.nn.functional.cross_entropy(out, batch["target"].long())
        return torch.nn.functional.mse_loss(out, (batch["target"] - self.mean) / self.std)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        loss = self._loss(batch)
        n = batch["token_ids"].shape[0]
        self.log("train_loss", loss, batch_size=n, on_epoch=True, on_step=False)
        return loss

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        n = batch["token_ids"].shape[0]
        self.log("val_loss", self._loss(batch), batch_size=n, on_epoch=True, on_step=False)

    def configure_optimizers(self) -> Any:
        s = self.model.settings
        opt = torch.optim.AdamW(self.parameters(), lr=s.lr, weight_decay=s.weight_decay)
        total = max(1, int(self.trainer.estimated_stepping_batches))
        warm = min(total - 1, round(total * s.warmup / max(1, s.epochs)))

        def factor(step: int) -> float:
            if step < warm:
                return (step + 1) / (warm + 1)
            return 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm)))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    @torch.no_grad()
    def predict(self, examples: Sequence[Example], batch_size: int = 256) -> np.ndarray:
        """Class probabilities (N, classes) or predictions in the target's units (N, T)."""
        self.eval()
        outs = []
        for start in range(0, len(examples), batch_size):
            batch = collate(examples[start : start + batch_size])
            batch = {k: (v.to(self.device) if v is not None else None) for k, v in batch.items()}
            out = self(batch).float()
            outs.append(out.softmax(-1) if self.hparams.kind == CLASSIFICATION else out)
        pred = torch.cat(outs).cpu()
        if self.hparams.kind == REGRESSION:
            pred = pred * self.std.cpu() + self.mean.cpu()
        return pred.numpy()


def load_encoder(module: CrystalBertTask, pretrained: str | os.PathLike[str]) -> list[str]:
    """Copy a pretrained checkpoint's weights (all but its heads) into ``module``; returns
    the names copied. The settings that shape the weights must match."""
    state = torch.load(Path(pretrained), map_location="cpu", weights_only=True)["state_dict"]
    own = module.state_dict()
    copied = [
        k for k, v in state.items() if ".heads." not in k and k in own and own[k].shape == v.shape
    ]
    missing = [k for k in own if ".heads." not in k and k.startswith("model.") and k not in copied]
    if missing:
        raise ValueError(
            f"pretrained model {pretrained}: does not match these settings "
            f"({len(missing)} weights missing or shaped differently, e.g. {missing[0]})"
        )
    module.load_state_dict({**own, **{k: state[k] for k in copied}})
    return copied


def new_classifier(
    settings: CrystalBertSettings,
    graph_dims: tuple[int, int] | None = None,
    graph_params: dict[str, Any] | None = None,
    pretrained: str | os.PathLike[str] | None = None,
    classes: int = len(CLASS_NAMES),
) -> CrystalBertTask:
    """An untrained topology classifier, from ``pretrained``'s encoder when given."""
    module = CrystalBertTask(
        settings.as_dict(), "topology", CLASSIFICATION, classes, graph_dims,
        graph_params if settings.graph else None,
        class_names=CLASS_NAMES if classes == len(CLASS_NAMES) else None,
    )  # fmt: skip
    if pretrained is not None:
        load_encoder(module, pretrained)
    return module


def fit(
    module: CrystalBertTask,
    train: Sequence[Example],
    workdir: str | os.PathLike[str],
    val: Sequence[Example] = (),
    out: str | os.PathLike[str] | None = None,
    accelerator: str = "auto",
    resume: bool = True,
) -> L.Trainer:
    """Train ``module`` on ``train`` (validating on ``val`` each epoch when given) and write
    the checkpoint to ``out`` (atomically) when given. Resumes from ``workdir``'s last
    checkpoint when ``resume``."""
    s = module.model.settings
    L.seed_everything(s.seed, verbose=False)
    loader = DataLoader(
        list(train),
        batch_size=s.batch_size,
        shuffle=True,
        collate_fn=collate,
        generator=torch.Generator().manual_seed(s.seed),
    )
    val_loader = DataLoader(list(val), batch_size=256, collate_fn=collate) if val else None
    ckpt = resume_path(workdir, fingerprint(module, (train, val)), s.epochs) if resume else None
    with quiet_lightning():
        trainer = make_trainer(workdir, s.epochs, accelerator=accelerator)
        trainer.fit(module, loader, val_loader, ckpt_path=ckpt)
    if out is not None:
        with atomic_path(out) as tmp:
            trainer.save_checkpoint(tmp, weights_only=True)
    return trainer


def load_task(path: str | os.PathLike[str]) -> CrystalBertTask:
    """A trained CrystalBERT task, loaded with ``weights_only=True``."""
    return CrystalBertTask.load_from_checkpoint(
        Path(path), map_location="cpu", weights_only=True
    ).eval()


def _split(n: int, held_out: float, seed: int) -> tuple[list[int], list[int]]:
    order = np.random.default_rng(seed).permutation(n).tolist()
    n_test = max(1, round(held_out * n)) if n >= 5 and held_out > 0 else 0
    return order[n_test:], order[:n_test]


def pretrain(
    data: ExampleSet,
    settings: CrystalBertSettings,
    workdir: str | os.PathLike[str],
    out: str | os.PathLike[str],
    graph_params: dict[str, Any] | None,
    held_out: float = 0.1,
    accelerator: str = "auto",
) -> dict[str, Any]:
    """Pretraining: regress the six lattice parameters (standardised) from the tokens (and
    graph); ``held_out`` of the crystals are kept out for the MAEs (reported next to those
    of predicting the training mean). Writes the model to ``out``."""
    if len(data.examples) < 2:
        raise ValueError(f"pretraining needs at least 2 structures; got {len(data.examples)}")
    train, test = _split(len(data.examples), held_out, settings.seed)
    y = np.stack([data.examples[i].target for i in train])
    module = CrystalBertTask(
        settings.as_dict(),
        "lattice",
        REGRESSION,
        len(LATTICE),
        data.graph_dims() if settings.graph else None,
        graph_params if settings.graph else None,
        y.mean(0).tolist(),
        np.maximum(y.std(0), 1e-3).tolist(),
    )
    fit(module, [data.examples[i] for i in train], workdir, out=out, accelerator=accelerator)
    metrics: dict[str, Any] = {"n_train": len(train), "n_held_out": len(test)}
    if test:
        truth = np.stack([data.examples[i].target for i in test])
        pred = module.predict([data.examples[i] for i in test])
        for k, name in enumerate(LATTICE):
            metrics[f"mae_{name}"] = float(np.abs(pred[:, k] - truth[:, k]).mean())
            metrics[f"mae_{name}_of_train_mean"] = float(
                np.abs(y[:, k].mean() - truth[:, k]).mean()
            )
    return metrics


def train_classifier(
    data: ExampleSet,
    settings: CrystalBertSettings,
    workdir: str | os.PathLike[str],
    out: str | os.PathLike[str],
    graph_params: dict[str, Any] | None,
    pretrained: str | os.PathLike[str] | None = None,
    folds: int = 5,
    accelerator: str = "auto",
    log: Any = print,
) -> dict[str, Any]:
    """The topology classifier: ``folds``-fold cross-validation (stratified, a (space group,
    formula) pair in one fold; fewer folds when a class has fewer crystals; none below 2)
    for the metrics, next to the majority class on the same folds, then the model of record
    trained on every crystal, written to ``out``. Starts from ``pretrained`` weights."""
    from topogen.models.crystalbert.evaluate import (
        classification_metrics,
        cross_validate,
        stratified_group_folds,
        summarise,
    )

    labels = np.array([int(e.target) for e in data.examples])
    counts = np.bincount(labels, minlength=len(CLASS_NAMES))
    if len(data.examples) < 2 or (counts > 0).sum() < 2:
        raise ValueError(
            f"the topology classifier needs crystals of both classes; got {counts.tolist()} "
            f"({', '.join(CLASS_NAMES)})"
        )
    dims = data.graph_dims() if settings.graph else None
    metrics: dict[str, Any] = {"crystals": len(labels), "class_counts": counts.tolist()}
    k = int(min(folds, counts[counts > 0].min()))
    if k >= 2:
        groups = [(e.tokens.space_group, e.tokens.formula) for e in data.examples]
        fold = stratified_group_folds(labels, groups, k, settings.seed)
        table = cross_validate(
            data.examples, fold, settings, Path(workdir) / "cv", pretrained=pretrained,
            graph_dims=dims, log=log,
        )  # fmt: skip
        majority = [
            classification_metrics(
                labels[fold == f],
                np.full((fold == f).sum(), np.bincount(labels[fold != f]).argmax()),
            )
            for f in range(k)
        ]
        table = pd.concat(
            [table.assign(model="crystalbert"), pd.DataFrame(majority).assign(model="majority")]
        )
        metrics["folds"] = k
        metrics["cross_validation"] = summarise(table).to_dict(orient="records")
    else:
        metrics["folds"] = 0
        log(f"cross-validation skipped: {counts.tolist()} crystals per class")
    module = new_classifier(settings, dims, graph_params, pretrained)
    fit(module, data.examples, Path(workdir) / "final", out=out, accelerator=accelerator)
    return metrics
