"""Composition-aware resampling of real local environments (LoGAN's trick for compositions
absent from the training data).

Every atom of every training structure (and of ``copies`` Gaussian-rattled copies of each)
contributes its local descriptor to a pool grouped by centre element. A "real" batch for a
target composition is drawn element by element: a structure with ``c_e`` atoms of element
``e`` gets ``c_e`` environments drawn uniformly from pool ``e``, so the critic compares the
generator's atoms with real atoms of the same elements in the same proportions, whatever
compositions the training structures had. The target's elements must all be in the pool.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from topogen.encode import EncodingError
from topogen.encode.descriptors import PowerSpectrum
from topogen.encode.graphs import structure_arrays


@dataclass
class EnvironmentPool:
    """Real descriptors by centre element: ``pools[z]`` is (M_z, dim)."""

    pools: dict[int, torch.Tensor]

    def check(self, numbers: Sequence[int]) -> None:
        """EncodingError naming the target elements that no training structure holds."""
        missing = sorted({int(z) for z in numbers} - set(self.pools))
        if missing:
            raise EncodingError(
                f"no training environment for element(s) Z = {missing}: LoGAN resamples real "
                f"environments by centre element (the training set has {sorted(self.pools)})"
            )

    def draw(self, numbers: torch.Tensor, batch: int, generator: torch.Generator) -> torch.Tensor:
        """(batch * N, dim) real environments for ``batch`` structures of atoms ``numbers``
        (N,), in the same atom order as the generated batch."""
        flat = numbers.repeat(batch)
        out = None
        for z in torch.unique(numbers).tolist():
            where = torch.nonzero(flat == z).flatten()
            pool = self.pools[int(z)]
            pick = torch.randint(len(pool), (len(where),), generator=generator)
            if out is None:
                out = pool.new_empty(len(flat), pool.shape[1])
            out[where] = pool[pick]
        assert out is not None
        return out


def rattled(structure: Any, sigma: float, rng: np.random.Generator) -> Any:
    """A copy with every Cartesian coordinate moved by N(0, sigma^2) Angstrom."""
    lattice, pos, numbers, pbc = structure_arrays(structure)
    moved = pos + rng.normal(0.0, sigma, pos.shape)
    if lattice is None:
        from pymatgen.core import Molecule

        return Molecule(numbers.tolist(), moved)
    from pymatgen.core import Lattice, Structure

    return Structure(
        Lattice(lattice, pbc=tuple(bool(p) for p in pbc)),
        numbers.tolist(),
        moved,
        coords_are_cartesian=True,
    )


def extract_environments(
    structures: Sequence[Any],
    descriptor: PowerSpectrum,
    *,
    rattle: float = 0.0,
    copies: int = 0,
    seed: int = 0,
    batch_size: int = 64,
) -> EnvironmentPool:
    """The pool of ``structures`` and ``copies`` rattled copies of each (module docstring)."""
    rng = np.random.default_rng(seed)
    every = list(structures)
    every += [rattled(s, rattle, rng) for _ in range(copies) for s in structures]
    parts: dict[int, list[torch.Tensor]] = {}
    for start in range(0, len(every), batch_size):
        chunk = every[start : start + batch_size]
        desc, _ = descriptor.encode(chunk, dtype=torch.float32)
        numbers = np.concatenate([structure_arrays(s)[2] for s in chunk])
        for z in np.unique(numbers):
            parts.setdefault(int(z), []).append(desc[torch.as_tensor(numbers == z)])
    if not parts:
        raise EncodingError("LoGAN needs at least one training structure")
    return EnvironmentPool({z: torch.cat(p) for z, p in sorted(parts.items())})
