"""Periodic neighbour lists and crystal graphs for CGCNN and CrystalBERT.

The graphs follow CGCNN (Xie & Grossman, PRL 120, 145301, 2018): nodes are atoms with
element features, edges join each atom to its ``max_neighbors`` nearest neighbours within
``cutoff`` (periodic images included), and edge features are Gaussian-expanded distances.

Conventions shared with :mod:`topogen.encode.descriptors`: a neighbour pair ``(i, j, n)``
means atom ``j`` in the image shifted by the integer lattice vector ``n`` as seen from atom
``i``; its displacement is ``pos[j] - pos[i] + n @ lattice`` (rows of ``lattice`` are the
lattice vectors) for the coordinates exactly as given (not wrapped), which is also
pymatgen's ``Structure.get_neighbor_list`` convention.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, NamedTuple

import numpy as np
import torch
from torch_geometric.data import Batch, Data

from topogen.encode import EncodingError
from topogen.encode.elements import cgcnn_like_features, check_atomic_numbers, onehot_features

AtomFeatures = Literal["onehot", "cgcnn-like"]
_CHUNK = 2_000_000  # max (centre, neighbour, image) triples held at once in neighbor_list
_DIST_QUANTUM = 1e-10  # distances closer than this sort as ties (then by j and offset)


class NeighborList(NamedTuple):
    """Neighbour pairs sorted by centre ``i``, distance, ``j`` and offset."""

    i: np.ndarray  # (E,) int64, centre atom
    j: np.ndarray  # (E,) int64, neighbour atom
    offsets: np.ndarray  # (E, 3) int64, lattice translation of the neighbour's image
    distances: np.ndarray  # (E,) float64, in the units of the coordinates


def _image_range(lattice: np.ndarray, cutoff: float, pbc: np.ndarray) -> np.ndarray:
    """All integer image offsets that can hold a neighbour of wrapped coordinates.

    Along periodic axis k the planes of the other two lattice vectors are
    ``w_k = V / |a_l x a_m|`` apart; wrapped fractional differences lie in (-1, 1), so
    ``|n_k| <= floor(cutoff / w_k) + 1`` suffices however sheared the cell is.
    """
    volume = abs(np.linalg.det(lattice))
    reps = np.zeros(3, dtype=np.int64)
    for k in range(3):
        if pbc[k]:
            area = np.linalg.norm(np.cross(lattice[(k + 1) % 3], lattice[(k + 2) % 3]))
            reps[k] = int(np.floor(cutoff * area / volume)) + 1
    axes = [np.arange(-r, r + 1) for r in reps]
    return np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)


def _working_lattice(lattice: np.ndarray, pbc: np.ndarray) -> np.ndarray:
    """The lattice, with degenerate non-periodic rows (e.g. ASE's zero c vector of a slab)
    replaced by an orthonormal basis of the complement of the periodic rows."""
    if abs(np.linalg.det(lattice)) > 1e-12:
        return lattice
    periodic = lattice[pbc]
    _, sing, vt = np.linalg.svd(periodic)
    if sing.min() < 1e-9:
        raise EncodingError("neighbor_list: degenerate lattice vectors along periodic axes")
    work = lattice.copy()
    work[~pbc] = vt[len(periodic) :]
    return work


def _sort_and_truncate(nl: NeighborList, max_neighbors: int | None) -> NeighborList:
    dq = np.rint(nl.distances / _DIST_QUANTUM).astype(np.int64)
    o = nl.offsets
    order = np.lexsort((o[:, 2], o[:, 1], o[:, 0], nl.j, dq, nl.i))
    nl = NeighborList(*(a[order] for a in nl))
    if max_neighbors is not None:
        rank = np.arange(nl.i.size) - np.searchsorted(nl.i, nl.i, side="left")
        keep = rank < max_neighbors
        nl = NeighborList(*(a[keep] for a in nl))
    return nl


def _grouped_pairs(cart: np.ndarray, groups: np.ndarray, cutoff: float) -> NeighborList:
    """Non-periodic pairs within each group, all groups at once: O(sum of N_g^2), not N^2
    (the groups padded to the largest; padding is NaN, never within the cutoff)."""
    labels, slot = np.unique(groups, return_inverse=True)
    order = np.argsort(slot, kind="stable")
    counts = np.bincount(slot, minlength=len(labels))
    rank = np.arange(len(order)) - np.repeat(np.cumsum(counts) - counts, counts)
    padded = np.full((len(labels), int(counts.max(initial=0)), 3), np.nan)
    padded[slot[order], rank] = cart[order]
    index = np.full(padded.shape[:2], -1, dtype=np.int64)
    index[slot[order], rank] = order
    vec = padded[:, None, :, :] - padded[:, :, None, :]  # [g, a, b] = pos[b] - pos[a]
    with np.errstate(invalid="ignore"):
        mask = np.einsum("gabx,gabx->gab", vec, vec) <= cutoff * cutoff
    diag = np.arange(padded.shape[1])
    mask[:, diag, diag] = False
    g, a, b = np.nonzero(mask)
    i, j = index[g, a], index[g, b]
    return NeighborList(
        i, j, np.zeros((len(i), 3), dtype=np.int64), np.linalg.norm(cart[j] - cart[i], axis=1)
    )


def neighbor_list(
    lattice: np.ndarray | None,
    coords: np.ndarray,
    cutoff: float,
    max_neighbors: int | None = None,
    pbc: bool | Sequence[bool] = (True, True, True),
    *,
    cartesian: bool = False,
    groups: np.ndarray | None = None,
) -> NeighborList:
    """All pairs closer than ``cutoff`` (inclusive), periodic images included.

    ``coords`` are fractional unless ``cartesian``; ``lattice`` may be None when no axis is
    periodic (molecules; coordinates must then be Cartesian). In a small cell an atom
    neighbours its own images; the pair ``i == j`` at zero offset is excluded.
    ``max_neighbors`` keeps the nearest per centre (ties broken by ``j`` and offset).
    ``groups`` (N,) labels several structures sharing one lattice (e.g. a batch of
    molecules): only atoms of the same group are neighbours, so one call lists them all.
    Cost is O(N^2 x images), vectorised in chunks: meant for cells of up to a few hundred
    atoms.
    """
    pbc_arr = np.broadcast_to(np.asarray(pbc, dtype=bool), (3,)).copy()
    coords = np.asarray(coords, dtype=np.float64).reshape(-1, 3)
    if lattice is None:
        if pbc_arr.any() or not cartesian:
            raise EncodingError(
                "neighbor_list: a lattice is needed for periodic or fractional coordinates"
            )
        lattice = np.zeros((3, 3))
    lattice = np.asarray(lattice, dtype=np.float64).reshape(3, 3)
    if pbc_arr.any():
        work = _working_lattice(lattice, pbc_arr)
        cart = coords if cartesian else coords @ lattice
        frac = np.linalg.solve(work.T, cart.T).T
        shift = np.where(pbc_arr, np.floor(frac), 0.0)
        wrapped = cart - shift @ work
        images = _image_range(work, cutoff, pbc_arr)
    else:
        cart = coords if cartesian else coords @ lattice
        shift = np.zeros_like(cart)
        wrapped = cart
        images = np.zeros((1, 3), dtype=np.int64)
    n, m = len(cart), len(images)
    if groups is not None:
        groups = np.asarray(groups).reshape(-1)
        if len(groups) != n:
            raise EncodingError(f"neighbor_list: {len(groups)} group labels for {n} atoms")
        if not pbc_arr.any():
            return _sort_and_truncate(_grouped_pairs(cart, groups, cutoff), max_neighbors)
    translations = images @ lattice
    zero_image = int(np.flatnonzero((images == 0).all(axis=1))[0])
    parts: list[tuple[np.ndarray, ...]] = []
    step = max(1, _CHUNK // max(1, n * m))
    for start in range(0, n, step):
        centres = np.arange(start, min(n, start + step))
        vec = (
            wrapped[None, :, None, :]
            + translations[None, None, :, :]
            - wrapped[centres, None, None, :]
        )
        d2 = np.einsum("abcx,abcx->abc", vec, vec)
        mask = d2 <= cutoff * cutoff
        mask[np.arange(len(centres)), centres, zero_image] = False
        if groups is not None:
            mask &= (groups[centres, None] == groups[None, :])[:, :, None]
        a, j, k = np.nonzero(mask)
        parts.append((centres[a], j, k))
    i = np.concatenate([p[0] for p in parts]).astype(np.int64)
    j = np.concatenate([p[1] for p in parts]).astype(np.int64)
    k = np.concatenate([p[2] for p in parts]).astype(np.int64)
    offsets = images[k] - shift[j].astype(np.int64) + shift[i].astype(np.int64)
    distances = np.linalg.norm(cart[j] - cart[i] + offsets @ lattice, axis=1)
    return _sort_and_truncate(NeighborList(i, j, offsets, distances), max_neighbors)


def structure_arrays(
    structure: Any,
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray, np.ndarray]:
    """(lattice or None, Cartesian positions, atomic numbers, pbc) of a pymatgen Structure,
    pymatgen Molecule or ASE Atoms."""
    if hasattr(structure, "get_positions"):  # ase.Atoms
        pbc = np.asarray(structure.pbc, dtype=bool)
        cell = np.asarray(structure.get_cell()[:], dtype=np.float64)
        return (
            cell if pbc.any() else None,
            structure.get_positions(),
            check_atomic_numbers(structure.numbers),
            pbc,
        )
    if not getattr(structure, "is_ordered", True):
        raise EncodingError(
            f"{structure.composition.reduced_formula}: disordered sites "
            "(partial occupancies) cannot be encoded"
        )
    numbers = check_atomic_numbers([site.specie.Z for site in structure])
    lattice = getattr(structure, "lattice", None)
    if lattice is None:  # pymatgen Molecule
        return None, np.asarray(structure.cart_coords), numbers, np.zeros(3, dtype=bool)
    pbc = np.asarray(getattr(lattice, "pbc", (True, True, True)), dtype=bool)
    return lattice.matrix.copy(), np.asarray(structure.cart_coords), numbers, pbc


def gaussian_expansion(distances: torch.Tensor, cutoff: float, n_gaussians: int) -> torch.Tensor:
    """CGCNN edge features: ``exp(-((d - mu_k) / w)^2)``, mu_k evenly spaced on [0, cutoff],
    w their spacing (CGCNN: 0 to 8 A in steps of 0.2 A, i.e. 41 Gaussians)."""
    centres = torch.linspace(
        0.0, cutoff, n_gaussians, dtype=distances.dtype, device=distances.device
    )
    width = cutoff / max(1, n_gaussians - 1)
    return torch.exp(-(((distances[:, None] - centres) / width) ** 2))


def structure_graph(
    structure: Any,
    cutoff: float = 8.0,
    max_neighbors: int | None = 12,
    n_gaussians: int = 41,
    atom_features: AtomFeatures = "onehot",
    dtype: torch.dtype = torch.float32,
) -> Data:
    """A CGCNN crystal graph as a torch_geometric ``Data``.

    Fields: ``x`` (N, F) atom features (``onehot``: Z = 1..103; ``cgcnn-like``: see
    :func:`topogen.encode.elements.cgcnn_like_table`), ``z`` atomic numbers, ``pos``
    Cartesian positions, ``cell`` (1, 3, 3) (zeros for molecules), ``pbc`` (1, 3),
    ``edge_index`` (2, E) with row 0 the neighbour ``j`` (message source) and row 1 the
    centre ``i`` (target), ``edge_offset`` (E, 3) image offsets, ``edge_distance`` (E,) and
    ``edge_attr`` (E, n_gaussians). Each atom receives at most ``max_neighbors`` edges.
    """
    lattice, pos, numbers, pbc = structure_arrays(structure)
    nl = neighbor_list(lattice, pos, cutoff, max_neighbors, pbc, cartesian=True)
    if atom_features == "onehot":
        x = onehot_features(numbers)
    elif atom_features == "cgcnn-like":
        x = cgcnn_like_features(numbers)
    else:
        raise EncodingError(
            f"atom_features must be 'onehot' or 'cgcnn-like', not {atom_features!r}"
        )
    dist = torch.as_tensor(nl.distances, dtype=dtype)
    cell = np.zeros((3, 3)) if lattice is None else lattice
    return Data(
        x=torch.as_tensor(x, dtype=dtype),
        z=torch.as_tensor(numbers, dtype=torch.long),
        pos=torch.as_tensor(pos, dtype=dtype),
        cell=torch.as_tensor(cell, dtype=dtype).unsqueeze(0),
        pbc=torch.as_tensor(pbc).unsqueeze(0),
        edge_index=torch.as_tensor(np.stack([nl.j, nl.i]), dtype=torch.long),
        edge_offset=torch.as_tensor(nl.offsets, dtype=torch.long),
        edge_distance=dist,
        edge_attr=gaussian_expansion(dist, cutoff, n_gaussians),
        num_nodes=len(numbers),
    )


def structure_graphs(structures: Sequence[Any], **kwargs: Any) -> list[Data]:
    """:func:`structure_graph` for each structure (same keyword arguments)."""
    return [structure_graph(s, **kwargs) for s in structures]


def graph_batch(structures: Sequence[Any], **kwargs: Any) -> Batch:
    """The graphs of several structures as one torch_geometric ``Batch``."""
    return Batch.from_data_list(structure_graphs(structures, **kwargs))
