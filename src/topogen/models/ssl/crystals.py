"""Crystals as tensors for the equivariant network: species, Cartesian positions and the
periodic graph (centre i, neighbour j, the neighbour image's Cartesian translation), batched
by concatenation. Edge vectors are formed from positions in the forward pass, so the network
is differentiable in (and equivariant to rotations of) the positions. The graph is built once
on the clean structure: position noise of a few tenths of an Angstrom hardly changes who is
within the cut-off."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from topogen.encode import EncodingError
from topogen.encode.graphs import neighbor_list, structure_arrays

N_SPECIES = 118  # Z = 1 .. 118 -> index Z - 1
MASK = N_SPECIES  # the mask token's index in the input vocabulary


@dataclass
class Crystal:
    """One structure: ``species`` (N,) indices Z - 1, ``positions`` (N, 3) A, ``cell``
    (3, 3) rows, ``pbc``, edges ``i``/``j`` (E,) and ``shifts`` (E, 3) A, ``min_edge`` (A):
    the shortest edge (the noise scale); ``label``: a fine-tuning target (NaN: none)."""

    species: torch.Tensor
    positions: torch.Tensor
    cell: torch.Tensor
    pbc: tuple[bool, bool, bool]
    i: torch.Tensor
    j: torch.Tensor
    shifts: torch.Tensor
    min_edge: float
    label: float = float("nan")


def crystal(structure: Any, cutoff: float, max_neighbors: int | None = None) -> Crystal:
    """The :class:`Crystal` of a pymatgen Structure or ASE Atoms; EncodingError when it has
    no neighbour within ``cutoff``."""
    lattice, pos, numbers, pbc = structure_arrays(structure)
    if lattice is None:
        raise EncodingError("the self-supervised generator needs a periodic cell")
    nl = neighbor_list(lattice, pos, cutoff, max_neighbors, pbc, cartesian=True)
    if len(nl.i) == 0:
        raise EncodingError(f"no two atoms within the {cutoff} A cut-off")
    return Crystal(
        species=torch.as_tensor(numbers - 1, dtype=torch.long),
        positions=torch.as_tensor(pos, dtype=torch.float64),
        cell=torch.as_tensor(lattice, dtype=torch.float64),
        pbc=tuple(bool(p) for p in pbc),  # type: ignore[arg-type]
        i=torch.as_tensor(nl.i),
        j=torch.as_tensor(nl.j),
        shifts=torch.as_tensor(nl.offsets @ lattice, dtype=torch.float64),
        min_edge=float(nl.distances.min()),
    )


def crystals(
    structures: Sequence[Any], cutoff: float, max_neighbors: int | None = None
) -> tuple[list[Crystal], list[tuple[int, str]]]:
    """The crystals of ``structures`` and (index, reason) of the ones that cannot be made."""
    kept, bad = [], []
    for k, s in enumerate(structures):
        try:
            kept.append(crystal(s, cutoff, max_neighbors))
        except EncodingError as exc:
            bad.append((k, str(exc)))
    return kept, bad


@dataclass
class Batch:
    """Crystals concatenated: ``graph`` (N,) crystal of each atom, edges re-indexed."""

    species: torch.Tensor
    positions: torch.Tensor
    i: torch.Tensor
    j: torch.Tensor
    shifts: torch.Tensor
    graph: torch.Tensor
    min_edge: torch.Tensor  # (B,)
    labels: torch.Tensor  # (B,)
    crystals: list[Crystal]

    @property
    def size(self) -> int:
        return len(self.crystals)

    def to(self, device: Any, dtype: torch.dtype) -> Batch:
        return Batch(
            self.species.to(device),
            self.positions.to(device, dtype),
            self.i.to(device),
            self.j.to(device),
            self.shifts.to(device, dtype),
            self.graph.to(device),
            self.min_edge.to(device, dtype),
            self.labels.to(device, dtype),
            self.crystals,
        )


def collate(items: Sequence[Crystal]) -> Batch:
    counts = [len(c.species) for c in items]
    start = np.concatenate([[0], np.cumsum(counts)[:-1]])
    return Batch(
        species=torch.cat([c.species for c in items]),
        positions=torch.cat([c.positions for c in items]),
        i=torch.cat([c.i + int(s) for c, s in zip(items, start, strict=True)]),
        j=torch.cat([c.j + int(s) for c, s in zip(items, start, strict=True)]),
        shifts=torch.cat([c.shifts for c in items]),
        graph=torch.repeat_interleave(torch.arange(len(items)), torch.tensor(counts)),
        min_edge=torch.tensor([c.min_edge for c in items], dtype=torch.float64),
        labels=torch.tensor([c.label for c in items], dtype=torch.float64),
        crystals=list(items),
    )


def structure_of(c: Crystal, species: np.ndarray, positions: np.ndarray) -> Any:
    """A pymatgen Structure in ``c``'s cell with new species indices and positions (A)."""
    from pymatgen.core import Lattice, Structure

    lattice = Lattice(c.cell.numpy(), pbc=c.pbc)
    return Structure(lattice, (np.asarray(species) + 1).tolist(), positions,
                     coords_are_cartesian=True)  # fmt: skip


def table_crystals(
    records: Sequence[Any], cutoff: float, max_neighbors: int | None = None
) -> tuple[list[Crystal], list[Any], list[tuple[str, str]]]:
    """(crystals, their records, (id, reason) of the records that cannot be made into one)."""
    items, bad = crystals([r.structure for r in records], cutoff, max_neighbors)
    failed = {k for k, _ in bad}
    kept = [r for k, r in enumerate(records) if k not in failed]
    return items, kept, [(records[k].id, reason) for k, reason in bad]
