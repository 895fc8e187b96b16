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

from topogen.runtime import duration, precision_for


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


class EpochProgress(L.Callback):
    """One line per training epoch on stderr: epoch k of n, its time, an estimate of the time
    left, and the epoch's logged scalars (a few, rounded); plain text, no control
    characters, so a SLURM log reads like a terminal. Resumed runs count from where they
    resume."""

    SHOWN = 6  # logged values per line

    def __init__(self, label: str) -> None:
        self.label = label
        self.start: float | None = None
        self.first_epoch = 0

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        import time

        self.start = time.monotonic()
        self.first_epoch = trainer.current_epoch

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        import sys
        import time

        if trainer.sanity_checking or not trainer.is_global_zero or self.start is None:
            return
        done = trainer.current_epoch + 1
        elapsed = time.monotonic() - self.start
        per_epoch = elapsed / max(1, done - self.first_epoch)
        left = per_epoch * max(0, trainer.max_epochs - done)
        values = []
        for name, value in trainer.callback_metrics.items():
            if len(values) < self.SHOWN and getattr(value, "numel", lambda: 0)() == 1:
                values.append(f"{name} {float(value):.4g}")
        print(
            f"{self.label}: epoch {done}/{trainer.max_epochs} ({per_epoch:.2g} s/epoch, "
            f"~{duration(left)} left)" + (f": {', '.join(values)}" if values else ""),
            file=sys.stderr,
            flush=True,
        )


def make_trainer(
    workdir: str | os.PathLike[str],
    max_epochs: int,
    accelerator: str = "auto",
    devices: int | str = "auto",
    callbacks: list[Any] | None = None,
    *,
    precision: str | None = None,
    last: str | os.PathLike[str] | None = None,
    progress: str | None = None,
    **kwargs: Any,
) -> L.Trainer:
    """The Trainer of every model: CSV logs in ``<workdir>/logs``, ``last`` (default
    ``<workdir>/checkpoints/last.ckpt``) written every epoch, ``precision`` by default
    :func:`~topogen.runtime.precision_for` the accelerator, no progress bar but one line per
    epoch (:class:`EpochProgress`, labelled ``progress``, default the work folder's name);
    ``kwargs`` (any ``L.Trainer`` argument) override these settings."""
    from lightning.fabric.utilities.warnings import PossibleUserWarning
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.loggers import CSVLogger

    warnings.filterwarnings("ignore", category=PossibleUserWarning)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    workdir = Path(workdir)
    every_epoch = LastCheckpoint(
        last if last is not None else workdir / "checkpoints" / "last.ckpt"
    )
    options: dict[str, Any] = {
        "default_root_dir": workdir,
        "max_epochs": max_epochs,
        "accelerator": accelerator,
        "devices": devices,
        "precision": precision or precision_for(accelerator),
        "logger": CSVLogger(workdir, name="logs", flush_logs_every_n_steps=1),  # version_N per run
        "callbacks": [every_epoch, EpochProgress(progress or str(workdir)), *(callbacks or [])],
        # Lightning's own ModelCheckpoint only where the caller asks for one (best epoch)
        "enable_checkpointing": any(isinstance(c, ModelCheckpoint) for c in callbacks or []),
        "enable_model_summary": False,
        "enable_progress_bar": False,
        "log_every_n_steps": 1,
    }
    return L.Trainer(**{**options, **kwargs})


FINGERPRINT = "fingerprint.json"  # in a work folder: what its checkpoint was trained with
NOT_FINGERPRINTED = ("epochs",)  # more epochs go on from a checkpoint


def data_digest(*items: Any) -> str:
    """sha256 of tensors, arrays, graphs, dataclasses, mappings and sequences of them (in
    order), and of plain values by their repr: what a run trains on and starts from."""
    import dataclasses
    import hashlib

    import numpy as np
    import torch

    h = hashlib.sha256()

    def walk(x: Any) -> None:
        if isinstance(x, torch.Tensor):
            t = x.detach().cpu().contiguous()
            h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
        elif isinstance(x, np.ndarray):
            h.update(f"A{x.dtype}{x.shape}".encode() + np.ascontiguousarray(x).tobytes())
        elif dataclasses.is_dataclass(x) and not isinstance(x, type):
            walk({f.name: getattr(x, f.name) for f in dataclasses.fields(x)})
        elif isinstance(x, dict):
            for k in sorted(x, key=str):
                h.update(f"K{k}".encode())
                walk(x[k])
        elif isinstance(x, list | tuple):
            h.update(f"L{len(x)}".encode())
            for v in x:
                walk(v)
        elif hasattr(x, "to_dict") and hasattr(x, "edge_index"):  # a torch_geometric Data
            walk(x.to_dict())
        else:
            h.update(f"V{x!r}".encode())

    walk(list(items))
    return h.hexdigest()


def fingerprint(module: L.LightningModule, data: Any, **extra: Any) -> dict[str, Any]:
    """What a checkpoint in a work folder must have been trained with to be resumed: the
    module's hyper-parameters (but its epochs), a digest of its initial weights (seed,
    initial or pretrained model), of ``data`` (what it trains on), and ``extra`` (batch
    size, loader seed, digests of other inputs)."""
    import json

    hp = {k: v for k, v in dict(module.hparams).items() if k not in NOT_FINGERPRINTED}
    return json.loads(
        json.dumps(
            {
                "hparams": hp,
                "initial_weights": data_digest(module.state_dict()),
                "data": data_digest(data),
                **extra,
            },
            sort_keys=True,
            default=str,
        )
    )


def resume_path(
    workdir: str | os.PathLike[str],
    fingerprint: dict[str, Any] | None = None,
    epochs: int | None = None,
    log: Any = None,
    last: str | os.PathLike[str] | None = None,
) -> str | None:
    """``last.ckpt`` of an earlier, interrupted run in ``workdir``, if any, to resume from
    (``last``: its path when not ``<workdir>/checkpoints/last.ckpt``, inside ``workdir``).

    With ``fingerprint`` (:func:`fingerprint`): a checkpoint trained with anything else (a
    changed setting, other data, another initial model) is not resumed: the whole work
    folder moves aside to ``<workdir>.stale-N`` (nothing is deleted), ``log`` says so, and
    training starts afresh; the fingerprint is written for the next call. With ``epochs``: a
    checkpoint that already holds more epochs than asked for is a clear error, not a
    Lightning one."""
    import json

    from topogen.errors import TopogenError
    from topogen.io.atomic import write_text

    workdir = Path(workdir)
    last = Path(last) if last is not None else workdir / "checkpoints" / "last.ckpt"
    if fingerprint is not None:
        stamp = workdir / FINGERPRINT
        try:
            old = json.loads(stamp.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            old = None
        if last.exists() and old != fingerprint:
            n = 1
            while workdir.with_name(f"{workdir.name}.stale-{n}").exists():
                n += 1
            stale = workdir.with_name(f"{workdir.name}.stale-{n}")
            os.replace(workdir, stale)
            changed = _differences(old, fingerprint)
            (log or print)(
                f"{workdir}: its checkpoint was trained with other {changed}; moved to {stale}, "
                "training starts afresh"
            )
        workdir.mkdir(parents=True, exist_ok=True)
        write_text(stamp, json.dumps(fingerprint, indent=1, sort_keys=True) + "\n")
    if not last.exists():
        return None
    if epochs is not None:
        import torch

        done = int(torch.load(last, map_location="cpu", weights_only=True).get("epoch", -1)) + 1
        if done > epochs:
            raise TopogenError(
                f"{last} already holds {done} epochs, more than the {epochs} asked for: ask "
                f"for at least {done}, or move {workdir} aside to train afresh"
            )
    return str(last)


def _differences(old: dict[str, Any] | None, new: dict[str, Any]) -> str:
    """Which parts of two fingerprints differ, in words."""
    if old is None:
        return "settings (no fingerprint recorded)"
    hp_old, hp_new = old.get("hparams", {}), new.get("hparams", {})
    keys = sorted(k for k in hp_old.keys() | hp_new.keys() if hp_old.get(k) != hp_new.get(k))
    parts = [f"settings ({', '.join(keys)})"] if keys else []
    parts += [k.replace("_", " ") for k in sorted(new) if k != "hparams" and old.get(k) != new[k]]
    return ", ".join(parts) or "settings"


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
