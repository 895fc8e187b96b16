"""Settings of the self-supervised generator's three trainings (each default in one place).

Departures from Liu et al. (iScience 2024), stated once here and in the README: the backbone
is a small PaiNN (Schuett et al. 2021) instead of EquiformerV2; the learning rates of the
embedded default are ours (the paper's 1e-4 is kept as the dataclass default).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from topogen.errors import TopogenError

MASK_MODES = ("mixed", "species", "fraction")
TASKS = ("classification", "regression")


@dataclass
class BackboneSettings:
    """``backbone``: the equivariant network (:data:`topogen.models.ssl.backbone.BACKBONES`);
    ``hidden``: feature width; ``layers``: message-passing blocks; ``cutoff`` (A) /
    ``max_neighbors``: the periodic graph; ``n_rbf``: radial basis functions."""

    backbone: str = "painn"
    hidden: int = 64
    layers: int = 3
    cutoff: float = 5.0
    max_neighbors: int = 24
    n_rbf: int = 16


@dataclass
class PretrainSettings(BackboneSettings):
    """Masked-species + denoising pretraining. ``species_mask``: probability of masking every
    atom of one species (else ``mask_fraction`` of the atoms); ``noise_ratio``: position noise
    sigma over the structure's shortest edge (paper: 0.1); ``pos_weight``: w_pos of the
    position MSE (A^2) against the species NLL (paper: 200); ``lr``: Adam (paper: 1e-4)."""

    species_mask: float = 0.5
    mask_fraction: float = 0.15
    noise_ratio: float = 0.1
    pos_weight: float = 200.0
    lr: float = 1e-4
    epochs: int = 20
    batch_size: int = 16
    seed: int = 0

    def hparams(self) -> dict[str, Any]:
        """The :class:`~topogen.models.ssl.model.Generator`'s arguments: the backbone's
        fields as one mapping, the rest but epochs and batch size."""
        backbone = {f.name for f in fields(BackboneSettings)}
        skip = backbone | {"epochs", "batch_size"}
        own = {k: v for k, v in asdict(self).items() if k not in skip}
        return {"backbone": {k: getattr(self, k) for k in sorted(backbone)}, **own}


@dataclass
class FinetuneSettings:
    """A feed-forward head on the pretrained backbone. ``task``: classification (class 1:
    ``property`` <= ``threshold``, "stable" for an energy above hull in eV/atom) or regression
    of ``property`` (standardised); ``hidden``: head width; ``held_out``: fraction of the
    labelled structures held out for the reported metric; ``lr``: Adam. ``positive``: "below"
    (class 1 when ``property`` <= ``threshold``) or "above" (class 1 when it is greater)."""

    task: str = "classification"
    property: str = "energy_above_hull"
    threshold: float = 0.1
    positive: str = "below"
    hidden: int = 64
    held_out: float = 0.1
    lr: float = 1e-4
    epochs: int = 20
    batch_size: int = 16
    seed: int = 0

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise TopogenError(f"unknown fine-tuning task {self.task!r} (expected {TASKS})")
        if self.positive not in ("below", "above"):
            raise TopogenError(f"positive must be 'below' or 'above', not {self.positive!r}")

    def label(self, value: float) -> float:
        """The training target of a property value (NaN stays NaN: unlabelled)."""
        if self.task == "regression" or value != value:
            return value
        return float((value <= self.threshold) == (self.positive == "below"))


@dataclass
class GanSettings:
    """The GAN stage. ``noise_ratio``: position noise of the generator's input (paper: 0.2);
    ``real_noise``: the tiny noise (same units) on real structures shown to the
    discriminator; ``adv_weight``: w_W of the adversarial term (paper: 0.1); ``pos_weight``:
    w_pos; ``lr_g`` / ``lr_d``: Adam (paper: 1e-4 / 1e-5); ``d_every``: generator steps per
    discriminator step (the generator is updated more often)."""

    noise_ratio: float = 0.2
    real_noise: float = 0.01
    species_mask: float = 0.5
    mask_fraction: float = 0.15
    adv_weight: float = 0.1
    pos_weight: float = 200.0
    lr_g: float = 1e-4
    lr_d: float = 1e-5
    d_every: int = 2
    epochs: int = 10
    batch_size: int = 16
    seed: int = 0

    def hparams(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k not in ("epochs", "batch_size")}
