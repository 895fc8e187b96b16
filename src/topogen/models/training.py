"""One way to build a Lightning Trainer for every model: quiet, checkpointed, resumable.

``accelerator="auto"`` takes a GPU when the job has one; mixed precision is used there
(bf16 where supported, else fp16) and full precision on CPU. Checkpoints go to
``<dir>/checkpoints`` with ``last.ckpt`` refreshed every epoch, so an interrupted run resumes
from its last completed epoch with :func:`resume_path`.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import lightning as L
import torch


def set_threads(threads: int) -> None:
    """Pin torch to the rule's threads (OMP_NUM_THREADS alone is read too late)."""
    os.environ["OMP_NUM_THREADS"] = str(threads)
    torch.set_num_threads(threads)


def precision_for(accelerator: str) -> str:
    if accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available()):
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    return "32-true"


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
    last = ModelCheckpoint(dirpath=workdir / "checkpoints", save_last=True, save_top_k=0)
    return L.Trainer(
        default_root_dir=workdir,
        max_epochs=max_epochs,
        accelerator=accelerator,
        devices=devices,
        precision=precision_for(accelerator),
        logger=CSVLogger(workdir, name="logs"),  # a new version_N per (resumed) run
        callbacks=[last, *(callbacks or [])],
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
