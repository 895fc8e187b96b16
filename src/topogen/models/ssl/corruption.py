"""The corruption the generator learns to undo (Liu et al.): masked species and noisy
positions.

Mask: with probability ``species_mask`` every atom of one species (drawn uniformly among the
crystal's species), otherwise ``mask_fraction`` of the atoms (at least one); mode "species"
or "fraction" forces one kind (the metrics' mask types). Noise: Gaussian on every position,
sigma = ``noise_ratio`` x the crystal's shortest edge. The position target is the
displacement back to the clean structure with its mean removed: a rigid translation of the
whole crystal cannot be predicted by a translation-invariant network, and moves nothing that
matters.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from topogen.errors import TopogenError
from topogen.models.ssl.backbone import pool
from topogen.models.ssl.crystals import MASK, N_SPECIES, Batch


@dataclass
class Corruption:
    """``masked`` (N,) bool; ``inputs`` (N, 119) species distributions shown to the network
    (one-hot, the mask token at masked atoms); ``noisy`` (N, 3) positions; ``target`` (N, 3)
    displacement back to the clean positions (mean-free per crystal)."""

    masked: torch.Tensor
    inputs: torch.Tensor
    noisy: torch.Tensor
    target: torch.Tensor


def mask_atoms(
    species: np.ndarray,
    rng: np.random.Generator,
    species_mask: float,
    mask_fraction: float,
    mode: str = "mixed",
) -> np.ndarray:
    """The masked atoms (bool) of one crystal with species indices ``species``."""
    if mode not in ("mixed", "species", "fraction"):
        raise TopogenError(f"unknown mask mode {mode!r} (mixed, species or fraction)")
    n = len(species)
    whole = mode == "species" or (mode == "mixed" and rng.random() < species_mask)
    if whole:
        return species == rng.choice(np.unique(species))
    masked = np.zeros(n, dtype=bool)
    masked[rng.choice(n, size=max(1, round(mask_fraction * n)), replace=False)] = True
    return masked


def corrupt(
    batch: Batch,
    rng: np.random.Generator,
    *,
    noise_ratio: float,
    species_mask: float = 0.5,
    mask_fraction: float = 0.15,
    mode: str = "mixed",
) -> Corruption:
    """Mask and perturb every crystal of ``batch`` (module docstring)."""
    species = batch.species.cpu().numpy()
    graph = batch.graph.cpu().numpy()
    masked = np.zeros(len(species), dtype=bool)
    noise = np.zeros((len(species), 3))
    for g in range(batch.size):
        at = np.flatnonzero(graph == g)
        masked[at] = mask_atoms(species[at], rng, species_mask, mask_fraction, mode)
        sigma = noise_ratio * float(batch.min_edge[g])
        noise[at] = rng.normal(scale=sigma, size=(len(at), 3))
    shown = np.where(masked, MASK, species)
    dev, dtype = batch.positions.device, batch.positions.dtype
    noise_t = torch.as_tensor(noise, dtype=dtype, device=dev)
    mean = pool(noise_t, batch)[batch.graph]
    return Corruption(
        masked=torch.as_tensor(masked, device=dev),
        inputs=torch.nn.functional.one_hot(torch.as_tensor(shown, device=dev), N_SPECIES + 1).to(
            dtype
        ),
        noisy=batch.positions + noise_t,
        target=-(noise_t - mean),
    )


def center(x: torch.Tensor, batch: Batch) -> torch.Tensor:
    """``x`` (N, 3) with its mean over each crystal removed."""
    return x - pool(x, batch)[batch.graph]
