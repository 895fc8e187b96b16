"""One way to build a Lightning Trainer for every model: quiet, checkpointed, resumable.

``accelerator="auto"`` takes a GPU when the job has one; mixed precision is used there
(bf16 where supported, else fp16) and full precision on CPU. Checkpoints go to
``<dir>/checkpoints`` with ``last.ckpt`` refreshed every epoch, so an interrupted run resumes
from its last completed epoch with :func:`resume_path`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from pathlib import Path
from typing import Any

import lightning as L
import torch


def precision_for(accelerator: str) -> str:
    if accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available()):
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    return "32-true"


def accelerator_devices(gpus: str | int | None) -> tuple[str, int]:
    """Lightning (accelerator, devices) for a rule's ``gpu`` resource: ``auto`` (or None)
    takes one GPU when there is one, else the CPU; 0 forces the CPU; N > 0 asks for N GPUs
    and fails clearly when torch sees fewer."""
    if gpus in (None, "auto", ""):
        return ("gpu", 1) if torch.cuda.is_available() else ("cpu", 1)
    n = int(gpus)
    if n <= 0:
        return "cpu", 1
    if torch.cuda.device_count() < n:
        raise RuntimeError(f"{n} GPU(s) requested, torch sees {torch.cuda.device_count()}")
    return "gpu", n


class LastCheckpoint(L.Callback):
    """Write ``path`` (atomically: a ``.part`` file, then a rename) at the end of every
    training epoch. Lightning's ``ModelCheckpoint(save_last=True, save_top_k=0)`` writes
    ``last.ckpt`` only when it also saved a top-k checkpoint, i.e. only at the very end.
    Lightning logs an epoch's metrics just after this hook; the CSV loggers here flush at
    every log call, so a run killed after its checkpoint has lost at most that moment."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        part = self.path.with_name(self.path.name + ".part")
        trainer.save_checkpoint(part)
        if trainer.is_global_zero:
            os.replace(part, self.path)


def make_trainer(
    workdir: str | os.PathLike[str],
    max_epochs: int,
    accelerator: str = "auto",
    devices: int | str = "auto",
    callbacks: list[Any] | None = None,
    **kwargs: Any,
) -> L.Trainer:
    from lightning.fabric.utilities.warnings import PossibleUserWarning
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.loggers import CSVLogger

    warnings.filterwarnings("ignore", category=PossibleUserWarning)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    workdir = Path(workdir)
    last = LastCheckpoint(workdir / "checkpoints" / "last.ckpt")
    return L.Trainer(
        default_root_dir=workdir,
        max_epochs=max_epochs,
        accelerator=accelerator,
        devices=devices,
        precision=precision_for(accelerator),
        logger=CSVLogger(workdir, name="logs", flush_logs_every_n_steps=1),  # version_N per run
        callbacks=[last, *(callbacks or [])],
        # Lightning's own ModelCheckpoint only where the caller asks for one (best epoch)
        enable_checkpointing=any(isinstance(c, ModelCheckpoint) for c in callbacks or []),
        enable_model_summary=False,
        enable_progress_bar=False,
        log_every_n_steps=1,
        **kwargs,
    )


def resume_path(workdir: str | os.PathLike[str]) -> str | None:
    """``last.ckpt`` of an earlier, interrupted run in ``workdir``, if any."""
    last = Path(workdir) / "checkpoints" / "last.ckpt"
    return str(last) if last.exists() else None


def read_metrics(workdir: str | os.PathLike[str]) -> Any:
    """Per-epoch metrics of every run in ``workdir`` (a resumed run logs to a new version),
    one row per epoch with the columns logged that epoch; the latest value wins."""
    import pandas as pd

    files = sorted(
        (Path(workdir) / "logs").glob("version_*/metrics.csv"),
        key=lambda p: int(p.parent.name.removeprefix("version_")),
    )
    if not files:
        return pd.DataFrame()
    rows = pd.concat([pd.read_csv(f) for f in files], ignore_index=True)
    rows = rows.drop(columns=[c for c in ("step",) if c in rows])
    return rows.groupby("epoch", as_index=False).last()


@contextlib.contextmanager
def quiet_lightning() -> Any:
    """Silence Lightning's banners and hints (GPU/TPU lines, tips, worker and SLURM hints)
    for the duration of a fit; warnings and errors that matter still come through."""
    logger = logging.getLogger("lightning.pytorch")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            for pattern in (
                ".*does not have many workers.*",
                ".*smaller than the logging interval.*",
                ".*`srun` command is available.*",
                ".*no `val_dataloader`.*",
                ".*LeafSpec.*",
            ):
                warnings.filterwarnings("ignore", pattern)
            yield
    finally:
        logger.setLevel(level)
