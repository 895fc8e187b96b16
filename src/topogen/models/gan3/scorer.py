"""A topology score from the three-stage GAN: the probability of "topological" that the
topology-aware discriminator of Stage II (kept and trained on in Stage III) gives a
structure's crystal image.

A stand-in for a dedicated topology classifier (CrystalBERT, issue 16) in the screening
funnel's topology step. It is weak evidence: the discriminator was trained to tell real
topological crystals (label 1) from real trivial AND generated ones (label 0), on the few
``topo2d``-labelled crystals of the training table, so it also scores "looks like a real
topological training crystal". DFT (Z2, spin Chern number) decides.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from topogen.models.gan3.gan import GanError, load_gan


class TopologyScorer:
    """``scorer(structures) -> scores in [0, 1]``: sigmoid of the discriminator's logit on
    each structure's crystal image (the autoencoder that made the GAN's training images)."""

    def __init__(self, gan: str | os.PathLike[str], autoencoder: str | os.PathLike[str]) -> None:
        from topogen.models.autoencoder.train import load_autoencoder

        self.gan = load_gan(gan)
        if self.gan.hparams.stage < 2:
            raise GanError(
                f"{gan}: a Stage {self.gan.hparams.stage} GAN; only Stages II and III have the "
                "topology-aware discriminator"
            )
        self.autoencoder = load_autoencoder(autoencoder)
        shape = tuple(self.autoencoder.image_shape)
        if list(shape) != list(self.gan.hparams.image_shape):
            raise GanError(
                f"{autoencoder} makes images of shape {list(shape)}, the GAN {gan} expects "
                f"{list(self.gan.hparams.image_shape)}"
            )

    @torch.no_grad()
    def __call__(self, structures: Sequence[Any]) -> np.ndarray:
        images = torch.as_tensor(self.autoencoder.encode_many(list(structures))).float()
        logits = self.gan.discriminator(images).view(len(structures), -1)[:, 0]
        return torch.sigmoid(logits).numpy()
