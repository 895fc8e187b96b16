"""Training and loading the crystal autoencoders (:class:`~topogen.models.autoencoder.crystal.
CrystalAutoencoder`) with the one Trainer factory (:func:`topogen.models.training.make_trainer`).

Checkpoints are Lightning ``.ckpt`` files written atomically (temp file + rename, see
:class:`AtomicCheckpointIO`); their hyper-parameters are plain dicts, so both resuming and
:func:`load_autoencoder` read them with ``torch.load(..., weights_only=True)``.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from topogen.encode import EncodingError
from topogen.encode.voxels import SMALL, CrystalVoxels, VoxelSpec
from topogen.io.atomic import atomic_path
from topogen.models.autoencoder.crystal import (
    CrystalAutoencoder,
    collate_voxels,
    voxelize_all,
)
from topogen.models.training import fingerprint, make_trainer, quiet_lightning, resume_path
from topogen.runtime import set_threads

LAST = "last.ckpt"
FINAL = "autoencoder.ckpt"


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoint I/O that writes atomically and reads with ``weights_only=True``."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None
    ) -> None:
        with atomic_path(path) as tmp:
            torch.save(checkpoint, tmp)

    def load_checkpoint(
        self, path: Any, map_location: Any = "cpu", weights_only: bool | None = None
    ) -> dict[str, Any]:
        return torch.load(path, map_location=map_location, weights_only=True)


def _compact(v: CrystalVoxels) -> CrystalVoxels:
    return CrystalVoxels(
        v.lattice.astype(np.float16), v.numbers, v.elements.astype(np.float16), v.spec
    )


def train_autoencoder(
    structures: Sequence[Any],
    outdir: str | os.PathLike[str],
    *,
    spec: VoxelSpec = SMALL,
    epochs: int = 40,
    batch_size: int = 8,
    val_fraction: float = 0.1,
    seed: int = 0,
    threads: int | None = None,
    accelerator: str = "auto",
    precision: str | None = None,
    resume: bool = True,
    progress: bool = False,
    **hparams: Any,
) -> CrystalAutoencoder:
    """Train a :class:`CrystalAutoencoder` on ``structures`` and return it (in eval mode);
    ``hparams``: its keyword arguments (latent_dim, presence, width, lr, ...; its defaults).

    Writes to ``outdir``: ``last.ckpt`` after every epoch (training resumes from it when
    ``resume`` and it exists), ``autoencoder.ckpt`` (weights + hyper-parameters) at the end,
    and Lightning's ``logs/version_<k>/metrics.csv`` (one version per run). Structures that
    cannot be voxelized raise EncodingError naming their index (filter them first with
    :func:`voxelize_all`).
    """
    set_threads(threads)
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    voxels, _, rejected = voxelize_all(structures, spec)
    if rejected:
        i, reason = rejected[0]
        raise EncodingError(f"structure {i}: {reason}")
    if len(voxels) < 2:
        raise EncodingError("the autoencoders need at least 2 structures to train on")
    voxels = [_compact(v) for v in voxels]
    L.seed_everything(seed, verbose=False)
    order = np.random.default_rng(seed).permutation(len(voxels))
    n_val = min(round(val_fraction * len(voxels)), len(voxels) - 2)
    val = [voxels[i] for i in order[:n_val]]
    train = [voxels[i] for i in order[n_val:]]
    loader = torch.utils.data.DataLoader(
        train,
        batch_size=batch_size,
        shuffle=True,
        drop_last=len(train) > batch_size,  # batch norm needs more than one crystal
        collate_fn=collate_voxels,
        generator=torch.Generator().manual_seed(seed),
    )
    val_loader = (
        torch.utils.data.DataLoader(val, batch_size=batch_size, collate_fn=collate_voxels)
        if val
        else None
    )
    model = CrystalAutoencoder(spec.as_dict(), **hparams)
    last = outdir / LAST
    stamp = fingerprint(model, (train, val), batch_size=batch_size, seed=seed)
    ckpt = resume_path(outdir, stamp, epochs, last=last) if resume else None
    with quiet_lightning():
        trainer = make_trainer(
            outdir,
            epochs,
            accelerator=accelerator,
            devices=1,
            precision=precision,
            last=last,
            plugins=[AtomicCheckpointIO()],
            enable_progress_bar=progress,
            log_every_n_steps=max(1, min(50, len(loader))),
            num_sanity_val_steps=0,
        )
        trainer.fit(model, loader, val_loader, ckpt_path=ckpt)
        trainer.save_checkpoint(outdir / FINAL, weights_only=True)
    return model.eval()


def load_autoencoder(path: str | os.PathLike[str], map_location: Any = "cpu") -> CrystalAutoencoder:
    """A trained :class:`CrystalAutoencoder` from a ``.ckpt`` (read with weights_only=True)."""
    path = Path(path)
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
        model = CrystalAutoencoder(**ckpt["hyper_parameters"])
        model.load_state_dict(ckpt["state_dict"])
    except (OSError, RuntimeError, KeyError, TypeError, ValueError, EOFError) as exc:
        raise EncodingError(f"{path}: not a crystal autoencoder checkpoint ({exc})") from exc
    except pickle.UnpicklingError as exc:
        raise EncodingError(f"{path}: not a crystal autoencoder checkpoint ({exc})") from exc
    return model.eval()
