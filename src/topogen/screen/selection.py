"""Diverse selection for DFT (LoGAN's filter, Kovacs et al. 2024): descriptors -> PCA ->
k-means with k = number of DFT slots -> the member closest to each centroid.

Descriptor (:func:`element_power_spectra`): the local power spectrum of every atom
(:class:`topogen.encode.descriptors.PowerSpectrum`, SOAP-like, with one species-blind
neighbour density so that its width does not grow with the number of elements; unit length
per atom), averaged over the atoms of each element and weighted by that element's atomic
fraction; the blocks of all elements present in the set are concatenated (zeros for absent
elements). Two structures are close when they have similar compositions with similar local
environments per element. Width: ``n_elements * (l_max + 1) * n_max (n_max + 1) / 2``.

PCA: centred, SVD; enough components for ``variance`` (95%) of the variance, at most
``max_components`` (32). k-means: k-means++ seeding and Lloyd iterations, ``n_init`` (10)
seeded restarts, the lowest inertia kept; an empty cluster is re-seeded with the point
farthest from its centroid. numpy only (no scikit-learn). The same structures, k and seed
give the same selection.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass
class Selection:
    indices: list[int]  # selected structures, one per cluster, ascending
    labels: np.ndarray  # cluster of every structure
    components: np.ndarray  # PCA coordinates (n, n_components)
    explained_variance_ratio: np.ndarray
    inertia: float


def element_power_spectra(
    structures: Sequence[Any],
    *,
    r_cut: float = 5.0,
    n_max: int = 6,
    l_max: int = 4,
    elements: Sequence[int] | None = None,
    batch_size: int = 64,
) -> tuple[np.ndarray, list[int]]:
    """(descriptors (n, width), element atomic numbers in block order); module docstring."""
    import torch

    from topogen.encode.descriptors import PowerSpectrum
    from topogen.encode.graphs import structure_arrays

    arrays = [structure_arrays(s) for s in structures]
    zs = sorted({int(z) for a in arrays for z in a[2]}) if elements is None else list(elements)
    col = {z: k for k, z in enumerate(zs)}
    ps = PowerSpectrum([1], r_cut=r_cut, n_max=n_max, l_max=l_max, normalize=True)
    width = ps.dim
    out = np.zeros((len(arrays), len(zs) * width))
    for start in range(0, len(arrays), batch_size):
        part = arrays[start : start + batch_size]
        pos = torch.as_tensor(np.concatenate([a[1] for a in part]), dtype=torch.float64)
        n_at = [len(a[2]) for a in part]
        cell = torch.as_tensor(
            np.stack([np.zeros((3, 3)) if a[0] is None else a[0] for a in part]),
            dtype=torch.float64,
        )
        pbc = torch.as_tensor(np.stack([a[3] for a in part]))
        batch = torch.repeat_interleave(torch.arange(len(part)), torch.as_tensor(n_at))
        with torch.no_grad():
            p = ps(pos, torch.ones(pos.shape[0], dtype=torch.long), cell, batch, pbc).numpy()
        offset = 0
        for k, a in enumerate(part):
            numbers = a[2]
            block = p[offset : offset + len(numbers)]
            offset += len(numbers)
            for z in np.unique(numbers):
                mask = numbers == z
                c = col[int(z)]
                weight = mask.sum() / len(numbers)
                out[start + k, c * width : (c + 1) * width] = weight * block[mask].mean(axis=0)
    return out, zs


def pca(
    x: np.ndarray, *, variance: float = 0.95, max_components: int = 32
) -> tuple[np.ndarray, np.ndarray]:
    """(coordinates on the leading principal components, their explained variance ratios)."""
    x = np.asarray(x, dtype=float)
    centred = x - x.mean(axis=0)
    u, s, _ = np.linalg.svd(centred, full_matrices=False)
    var = s**2
    total = var.sum()
    if total <= 0:
        return np.zeros((len(x), 1)), np.ones(1)
    ratio = var / total
    n = int(np.searchsorted(np.cumsum(ratio), variance) + 1)
    n = max(1, min(n, max_components, len(s)))
    # sign convention: the largest loading of each component positive (deterministic)
    signs = np.sign(u[np.abs(u).argmax(axis=0), range(u.shape[1])])
    signs[signs == 0] = 1
    return (u * s * signs)[:, :n], ratio[:n]


def _sqdist(x: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Squared distances (n, m) without an (n, m, d) temporary."""
    d2 = (x**2).sum(1)[:, None] - 2.0 * x @ c.T + (c**2).sum(1)[None, :]
    return np.maximum(d2, 0.0)


def kmeans(
    x: np.ndarray, k: int, *, seed: int = 0, n_init: int = 10, max_iter: int = 300
) -> tuple[np.ndarray, np.ndarray, float]:
    """(labels, centroids, inertia) of the best of ``n_init`` k-means++ runs."""
    x = np.asarray(x, dtype=float)
    n = len(x)
    if not 1 <= k <= n:
        raise ValueError(f"k-means: k = {k} for {n} points")
    rng = np.random.default_rng(seed)
    best: tuple[np.ndarray, np.ndarray, float] | None = None
    for _ in range(n_init):
        centres = x[[int(rng.integers(n))]]
        for _ in range(1, k):
            d2 = _sqdist(x, centres).min(axis=1)
            p = d2 / d2.sum() if d2.sum() > 0 else np.full(n, 1.0 / n)
            centres = np.vstack([centres, x[int(rng.choice(n, p=p))]])
        labels = np.zeros(n, dtype=np.int64)
        for it in range(max_iter):
            d2 = _sqdist(x, centres)
            new = d2.argmin(axis=1)
            for c in range(k):
                if not (new == c).any():  # empty: take the worst-served point
                    far = int(d2[np.arange(n), new].argmax())
                    new[far] = c
            if it > 0 and np.array_equal(new, labels):
                break
            labels = new
            centres = np.stack([x[labels == c].mean(axis=0) for c in range(k)])
        inertia = float(((x - centres[labels]) ** 2).sum())
        if best is None or inertia < best[2] - 1e-12:
            best = (labels.copy(), centres.copy(), inertia)
    assert best is not None
    return best


def select_diverse(
    structures: Sequence[Any],
    k: int,
    *,
    seed: int = 0,
    descriptors: np.ndarray | None = None,
    variance: float = 0.95,
    max_components: int = 32,
    n_init: int = 10,
    **descriptor_options: Any,
) -> Selection:
    """Pick ``k`` diverse structures (module docstring); all of them when ``k >= n``.

    ``descriptors`` (n, width) replaces :func:`element_power_spectra` (whose keyword
    arguments ``descriptor_options`` are).
    """
    n = len(structures) if descriptors is None else len(descriptors)
    if k < 1:
        raise ValueError(f"select_diverse: k must be >= 1, not {k}")
    if n == 0:
        return Selection([], np.zeros(0, dtype=np.int64), np.zeros((0, 1)), np.zeros(0), 0.0)
    x = descriptors
    if x is None:
        x, _ = element_power_spectra(structures, **descriptor_options)
    comps, ratio = pca(x, variance=variance, max_components=max_components)
    if k >= n:
        return Selection(list(range(n)), np.arange(n), comps, ratio, 0.0)
    labels, centres, inertia = kmeans(comps, k, seed=seed, n_init=n_init)
    chosen = []
    for c in range(k):
        members = np.flatnonzero(labels == c)
        d2 = ((comps[members] - centres[c]) ** 2).sum(-1)
        chosen.append(int(members[int(d2.argmin())]))
    return Selection(sorted(chosen), labels, comps, ratio, inertia)


def _finite(value: Any) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        return -np.inf
    return x if np.isfinite(x) else -np.inf


def select_file(
    table: str | os.PathLike[str],
    out: str | os.PathLike[str],
    slots: int,
    *,
    seed: int = 0,
    rank_by: str | None = None,
    **options: Any,
) -> list[Any]:
    """Select ``slots`` diverse structures of a structure table and write them (with
    ``dft_cluster`` and ``dft_cluster_size`` properties) to ``out``; returns the records.
    ``rank_by``: a property; each cluster then gives its member with the highest value
    (rows without a finite value last; ties to the one nearest the centre)."""
    from topogen.io.tables import read_records, write_records

    records = read_records(table)
    if not records:
        write_records([], out)
        return []
    sel = select_diverse([r.structure for r in records], slots, seed=seed, **options)
    sizes = np.bincount(sel.labels) if len(sel.labels) else np.zeros(0, dtype=int)
    indices = sel.indices
    if rank_by is not None and slots < len(records):
        indices = sorted(
            max(
                np.flatnonzero(sel.labels == sel.labels[i]),
                key=lambda j: (_finite(records[j].properties.get(rank_by)), j == i),
            )
            for i in sel.indices
        )
    chosen = []
    for i in indices:
        r = records[i]
        c = int(sel.labels[i])
        r.properties.update(dft_cluster=c, dft_cluster_size=int(sizes[c]))
        chosen.append(r)
    write_records(chosen, out)
    return chosen
