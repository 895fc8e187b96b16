"""LoGAN's networks: :class:`CoordinateGenerator` (noise -> fractional coordinates of N
atoms) and :class:`AtomicCritic` (local descriptor of an atom -> score).

The critic is one MLP per centre element (Behler-Parrinello style): the power spectrum
describes the neighbours' species but not the centre's, so a single MLP could not tell a C
environment from an O one with the same neighbours. The paper's description ("a per-atom
MLP") leaves this open; per-element networks are our reading.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
from torch import nn


def mlp(sizes: Sequence[int], slope: float = 0.2) -> nn.Sequential:
    """Linear layers of ``sizes`` with leaky ReLU between them (none after the last)."""
    layers: list[nn.Module] = []
    for k, (a, b) in enumerate(itertools.pairwise(sizes)):
        layers.append(nn.Linear(a, b))
        if k < len(sizes) - 2:
            layers.append(nn.LeakyReLU(slope))
    return nn.Sequential(*layers)


class CoordinateGenerator(nn.Module):
    """Noise (B, latent) -> fractional coordinates (B, n_atoms, 3) in (0, 1) (sigmoid)."""

    def __init__(self, latent_dim: int, n_atoms: int, hidden: Sequence[int]) -> None:
        super().__init__()
        self.n_atoms = n_atoms
        self.net = mlp([latent_dim, *hidden, 3 * n_atoms])

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.net(z)).view(len(z), self.n_atoms, 3)


class AtomicCritic(nn.Module):
    """(descriptors (M, dim), centre atomic numbers (M,)) -> per-atom scores (M,)."""

    def __init__(self, species: Sequence[int], dim: int, hidden: Sequence[int]) -> None:
        super().__init__()
        self.species = [int(z) for z in species]
        self.nets = nn.ModuleDict({str(z): mlp([dim, *hidden, 1]) for z in self.species})

    def forward(self, desc: torch.Tensor, numbers: torch.Tensor) -> torch.Tensor:
        out = desc.new_zeros(len(desc))
        for z in self.species:
            where = numbers == z
            if bool(where.any()):
                out = out.index_put(
                    (torch.nonzero(where).flatten(),), self.nets[str(z)](desc[where]).squeeze(-1)
                )
        return out
