"""Candidates from a trained generator: images -> crystal-image decoder -> structure table.

Every candidate records the generator checkpoint and its sha256, the stage and its own seed
(:func:`sample_seeds`), so any one of them can be regenerated alone.
Images that do not decode to a structure (no site above the peak threshold, a lattice
outside the box, ...) are returned as rejected rows with the reason. Validity, novelty and
stability are the screening funnel's business (:mod:`topogen.screen`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from topogen.encode import EncodingError
from topogen.io.provenance import sha256
from topogen.io.tables import LoadResult, Record
from topogen.models.gan3.gan import CrystalGAN, load_gan


def sample_seeds(seed: int, n: int) -> list[int]:
    """Sample i is drawn from ``torch.Generator().manual_seed(seed + i)``: any one sample can
    be regenerated alone."""
    return [int(seed) + i for i in range(n)]


@torch.no_grad()
def generate(model: CrystalGAN, seeds: Sequence[int], batch_size: int = 256) -> torch.Tensor:
    """One image per seed (generator in eval mode)."""
    model.eval()
    out = []
    for k in range(0, len(seeds), batch_size):
        z = torch.cat([model.noise(1, s) for s in seeds[k : k + batch_size]])
        out.append(model.generator(z).float().cpu())
    return torch.cat(out) if out else torch.zeros(0, *model.hparams.image_shape)


def sample_candidates(
    generator: str | os.PathLike[str],
    autoencoder: str | os.PathLike[str],
    n: int,
    seed: int,
    *,
    prefix: str = "gan",
    source: str = "gan",
) -> LoadResult:
    """``n`` decoded samples of ``generator`` (ids ``<prefix>-<seed of the sample>``)."""
    from topogen.encode.voxels import devoxelize
    from topogen.models.autoencoder.train import load_autoencoder

    gan = load_gan(generator)
    decoder = load_autoencoder(autoencoder)
    digest = sha256(generator)
    seeds = sample_seeds(seed, n)
    images = generate(gan, seeds)
    voxels = decoder.decode_voxels(images.numpy())
    result = LoadResult()
    for i, (s, vox) in enumerate(zip(seeds, voxels, strict=True)):
        rid = f"{prefix}-{s}"
        try:
            structure = devoxelize(vox)
        except EncodingError as exc:
            result.admit(str(generator), str(i), rid, f"undecodable image: {exc}", None)
            continue
        props: dict[str, Any] = {
            "generator": "three-stage GAN",
            "stage": int(gan.hparams.stage),
            "checkpoint": str(Path(generator)),
            "checkpoint_sha256": digest,
            "seed": s,
            "sample": i,
        }
        result.admit(str(generator), str(i), rid, None, Record(rid, source, structure, props))
    return result
