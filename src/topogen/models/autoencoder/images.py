"""The crystal-image stage: train the voxel autoencoders on a structure table, measure the
round trip on a held-out part, and write every structure's crystal image.

Outputs: the autoencoder checkpoint (``autoencoder.ckpt``, needed to decode generated
images), ``images.pt`` (a :mod:`topogen.encode.store` file of kind ``images``: ids and a
stacked ``images`` tensor (N, rows, cols), params holding the spec and the checkpoint's
sha256) and a metrics JSON (held-out round trip, see :mod:`topogen.models.autoencoder.roundtrip`).
Structures that cannot be voxelized (element outside Z 1-84 or a noble gas, a cell outside
the lattice box) are returned as rejected rows.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from topogen.encode import EncodingError
from topogen.encode.store import save_encoded
from topogen.encode.voxels import VoxelSpec
from topogen.io.atomic import atomic_path
from topogen.io.provenance import sha256
from topogen.io.quarantine import Rejected
from topogen.io.tables import Record
from topogen.models.autoencoder.crystal import PRESENCE, row_rms, voxelize_all
from topogen.models.autoencoder.roundtrip import score
from topogen.models.autoencoder.train import FINAL, load_autoencoder, train_autoencoder


@dataclass
class ImageSettings:
    """Voxel grids, autoencoder size and training of the crystal images (config encode.images)."""

    grid: int = 16
    sigma: float = 0.75
    lattice_sigma: float = 2.5
    latent_dim: int = 32
    presence: float = PRESENCE
    width: int = 8
    epochs: int = 40
    batch_size: int = 8
    lr: float = 2e-3
    held_out: float = 0.2
    seed: int = 0

    def spec(self) -> VoxelSpec:
        return VoxelSpec(grid=self.grid, sigma=self.sigma, lattice_sigma=self.lattice_sigma)


def held_out_split(n: int, fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Seeded (train, held-out) indices; at least one held out when ``fraction`` > 0."""
    order = np.random.default_rng(seed).permutation(n)
    n_test = min(n - 2, max(1, round(fraction * n))) if fraction > 0 else 0
    return sorted(order[n_test:].tolist()), sorted(order[:n_test].tolist())


def presence_margin(images: np.ndarray, presence: float) -> dict[str, float]:
    """RMS of the rows of the elements present in real images (all nonzero rows), against
    the decoder's presence threshold: the smallest must lie well above it."""
    rms = row_rms(images)
    real = rms[rms > 0]
    return {
        "presence": float(presence),
        "min": float(real.min()),
        "p01": float(np.quantile(real, 0.01)),
        "median": float(np.median(real)),
        "n_below_presence": int((real <= presence).sum()),
    }


def encode_images(
    records: list[Record],
    out: str | os.PathLike[str],
    model_out: str | os.PathLike[str],
    workdir: str | os.PathLike[str],
    settings: ImageSettings,
    *,
    source: str = "",
    accelerator: str = "auto",
    log: Any = print,
) -> tuple[dict[str, Any], list[Rejected]]:
    """Train (or resume) the autoencoders in ``workdir``, copy the model to ``model_out``,
    write the images of every usable record to ``out``; returns (metrics, rejected rows)."""
    spec = settings.spec()
    structures = [r.structure for r in records]
    _, kept, bad = voxelize_all(structures, spec)
    rejected = [Rejected(str(source), str(i), records[i].id, reason) for i, reason in bad]
    if len(kept) < 3:
        raise EncodingError(f"crystal images need at least 3 usable structures; got {len(kept)}")
    train_idx, test_idx = held_out_split(len(kept), settings.held_out, settings.seed)
    log(
        f"images: {len(kept)} of {len(records)} structures usable; autoencoders on "
        f"{len(train_idx)}, {len(test_idx)} held out; {settings.epochs} epochs, "
        f"grid {spec.grid}^3"
    )
    model = train_autoencoder(
        [structures[kept[i]] for i in train_idx],
        workdir,
        spec=spec,
        latent_dim=settings.latent_dim,
        presence=settings.presence,
        width=settings.width,
        lr=settings.lr,
        epochs=settings.epochs,
        batch_size=settings.batch_size,
        seed=settings.seed,
        accelerator=accelerator,
    )
    with atomic_path(model_out) as tmp:
        shutil.copyfile(Path(workdir) / FINAL, tmp)
    model = load_autoencoder(model_out)  # what later stages will load, on the CPU
    kept_structures = [structures[i] for i in kept]
    images = model.encode_many(kept_structures)
    test = [kept_structures[i] for i in test_idx]
    decoded = model.decode_many(images[test_idx]) if test_idx else []
    margin = presence_margin(images, settings.presence)
    if margin["n_below_presence"]:
        log(
            f"images: warning: {margin['n_below_presence']} element rows of real crystals have "
            f"an RMS at or below the presence threshold {settings.presence:g} (smallest "
            f"{margin['min']:.3f}): they decode as absent; train longer or lower --presence"
        )
    metrics = {
        "held_out": score(test, decoded) if test else None,
        "n_train": len(train_idx),
        "n_encoded": len(kept),
        "n_rejected": len(rejected),
        "image_shape": list(model.image_shape),
        "element_row_rms": margin,
        "settings": settings.__dict__,
    }
    params = {
        **settings.__dict__,
        "spec": spec.as_dict(),
        "image_shape": list(model.image_shape),
        "autoencoder_sha256": sha256(model_out),
    }
    ids = [records[i].id for i in kept]
    save_encoded(out, "images", ids, {"images": torch.as_tensor(images)}, params)
    return metrics, rejected
