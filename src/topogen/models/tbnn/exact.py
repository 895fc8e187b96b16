"""Exact band structures of -laplacian + V(r) (units of :mod:`.symmetry`): a plane-wave
solver (dense ``eigh``), which labels the data, and the paper's baseline, finite differences
on a real-space grid with a sparse Lanczos solver (``scipy.sparse.linalg.eigsh``).

The plane-wave basis holds every G with |k + G|^2 <= ``ecut`` (a C_N-invariant set at a
high-symmetry point, so the rotation permutes it); the potential enters as its Fourier
coefficients (:func:`~.potentials.fourier_coefficients`, zero beyond the image's disc).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from topogen.errors import TopogenError
from topogen.models.tbnn.potentials import fourier_coefficients
from topogen.models.tbnn.symmetry import Lattice, group_labels

__all__ = ["Bands", "PlaneWaves", "fd_bands"]

DEGENERATE = 1e-6  # E0: bands closer than this at a high-symmetry point form one group


@dataclass
class Bands:
    energies: np.ndarray  # (n_k, n_bands), E0
    labels: dict[str, np.ndarray]  # high-symmetry point -> (n_bands,) labels
    points: dict[str, np.ndarray]  # high-symmetry point -> (n_bands,) energies


class PlaneWaves:
    """Plane-wave solver of one lattice at cut-off ``ecut`` (E0)."""

    def __init__(self, lattice: Lattice, ecut: float = 1200.0) -> None:
        self.lattice = lattice
        self.ecut = ecut
        nmax = math.ceil(math.sqrt(ecut) / min(np.linalg.norm(lattice.reciprocal, axis=1)))
        n = np.arange(-2 * nmax - 2, 2 * nmax + 3)
        n1, n2 = np.meshgrid(n, n, indexing="ij")
        self._pool = np.stack([n1.ravel(), n2.ravel()], axis=1)  # candidate G (reduced)

    def basis(self, k: np.ndarray) -> np.ndarray:
        """Reduced G (m, 2) with |k + G|^2 <= ecut."""
        q = self.lattice.cartesian_k(self._pool + k)
        return self._pool[np.einsum("ij,ij->i", q, q) <= self.ecut]

    def hamiltonian(self, coeffs: np.ndarray, k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """H (m, m) at reduced ``k`` for potential coefficients ``coeffs`` (L, L), and its
        basis."""
        g = self.basis(k)
        size = coeffs.shape[0]
        diff = g[:, None, :] - g[None, :, :]
        inside = np.all(np.abs(diff) < size // 2, axis=-1)  # beyond: zero (see potentials)
        h = np.where(inside, coeffs[diff[..., 0] % size, diff[..., 1] % size], 0.0)
        q = self.lattice.cartesian_k(g + k)
        h[np.diag_indices_from(h)] += np.einsum("ij,ij->i", q, q)
        return h, g

    def rotation(self, g: np.ndarray, k: np.ndarray, power: int) -> np.ndarray:
        """Matrix of C_N^power on the plane waves of basis ``g`` at a point ``k`` it fixes."""
        rot = self.lattice.rotation_recip(power)
        image = (rot @ (g + k).T).T - k  # C(k + G) = k + G'
        if not np.allclose(image, np.rint(image), atol=1e-8):
            raise TopogenError(f"k = {k} is not fixed by C{self.lattice.order}^{power}")
        index = {tuple(x): i for i, x in enumerate(g.tolist())}
        rows = [index[tuple(int(v) for v in x)] for x in np.rint(image)]
        m = np.zeros((len(g), len(g)))
        m[rows, np.arange(len(g))] = 1.0
        return m

    def bands(self, image: np.ndarray, kpoints: np.ndarray, n_bands: int) -> Bands:
        """Lowest ``n_bands`` at every reduced k point, and the symmetry labels at the
        lattice's high-symmetry points."""
        coeffs = fourier_coefficients(self.lattice, image)
        energies = np.empty((len(kpoints), n_bands))
        for i, k in enumerate(kpoints):
            h, _ = self.hamiltonian(coeffs, k)
            energies[i] = np.linalg.eigvalsh(h)[:n_bands]
        labels, points = {}, {}
        for name, (k, power) in self.lattice.points.items():
            k = np.array(k)
            h, g = self.hamiltonian(coeffs, k)
            values, vectors = np.linalg.eigh(h)
            rep = self.rotation(g, k, power)
            # one band beyond, so that a degenerate group at the edge is complete
            top = n_bands
            while top < len(values) and values[top] - values[top - 1] < DEGENERATE:
                top += 1
            lab = group_labels(
                values[:top], vectors[:, :top], rep, self.lattice.point_order(name), DEGENERATE
            )
            labels[name] = lab[:n_bands]
            points[name] = values[:n_bands]
        return Bands(energies, labels, points)


def _fd_neighbours(lattice: Lattice) -> list[tuple[int, int]]:
    if lattice.name == "p6":  # a1, a2 at 60 degrees: a1, a2, a2 - a1
        return [(1, 0), (0, 1), (-1, 1)]
    return [(1, 0), (0, 1)]


def fd_bands(
    lattice: Lattice, image: np.ndarray, kpoints: np.ndarray, n_bands: int, grid: int = 100
) -> np.ndarray:
    """The baseline: lowest ``n_bands`` (n_k, n_bands) from a ``grid`` x ``grid`` finite-
    difference Laplacian (6-point stencil on the triangular grid of p6, 5-point on p4) with
    Bloch boundary conditions, by shift-invert Lanczos; the potential is the same
    interpolating polynomial as the plane-wave solver's, sampled on the grid."""
    coeffs = fourier_coefficients(lattice, image)
    size = image.shape[0]
    big = np.zeros((grid, grid), dtype=complex)
    half = size // 2
    idx = np.r_[0:half, grid - half : grid]
    src = np.r_[0:half, size - half : size]
    big[np.ix_(idx, idx)] = coeffs[np.ix_(src, src)]
    v = np.real(np.fft.ifft2(big) * grid * grid).ravel()
    h = 1.0 / grid
    nbrs = _fd_neighbours(lattice)
    weight = (2.0 / (3.0 * h * h)) if lattice.name == "p6" else 1.0 / (h * h)
    n = grid * grid
    i1, i2 = np.meshgrid(np.arange(grid), np.arange(grid), indexing="ij")
    site = (i1 * grid + i2).ravel()
    out = np.empty((len(kpoints), n_bands))
    for ik, k in enumerate(kpoints):
        rows, cols, vals = [site], [site], [v + 2 * len(nbrs) * weight]
        for d1, d2 in nbrs:
            j1, j2 = i1 + d1, i2 + d2
            wrap = np.exp(2j * math.pi * (k[0] * (j1 // grid) + k[1] * (j2 // grid)))
            target = ((j1 % grid) * grid + (j2 % grid)).ravel()
            val = (-weight * wrap).ravel()
            rows += [site, target]
            cols += [target, site]
            vals += [val, val.conj()]
        mat = sp.csc_matrix(
            (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n)
        )
        values = spla.eigsh(mat, k=n_bands, sigma=-1.0, which="LM", return_eigenvectors=False)
        out[ik] = np.sort(values.real)
    return out
