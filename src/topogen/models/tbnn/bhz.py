"""The Chern case: a two-component BHZ metamaterial (p4, class D).

Microscopically, one spin block of the BHZ model (the Qi-Wu-Zhang lattice model) on the
sites of an L x L unit cell: on-site m(r) sigma_z, hoppings (sigma_z - i sigma_x)/2 along x
and (sigma_z - i sigma_y)/2 along y (t = 1), so that a uniform mass gives H(k) = sin kx
sigma_x + sin ky sigma_y + (m + cos kx + cos ky) sigma_z (Chern number of the lower band
nonzero for 0 < |m| < 2). The metamaterial's design variable is the mass landscape m(r): a
C4-symmetric Gaussian random field digitised to two masses (default -1, topological, and
3, trivial). C4 about the origin site acts on the two components as U = diag(1, i), which
maps the x hopping to the y hopping; there is no time reversal (class D).

Exact data: the lowest bands of the 2 L^2-band supercell Hamiltonian on the wedge grid, the
C4/C2 labels at Gamma, M, X, and the Fukui-Hatsugai-Suzuki Chern number of the lowest b
bands for every b whose upper gap stays open on the grid (NaN otherwise).
"""

from __future__ import annotations

import math

import numpy as np

from topogen.models.tbnn.symmetry import LATTICES, Lattice, group_labels
from topogen.topology.invariants import fhs_chern

__all__ = ["BHZ_SQUARE", "mass_map", "supercell_bands"]

BHZ_SQUARE: Lattice = LATTICES["p4"]
U = np.diag([1.0, 1j])  # C4 on the two components
HOP = {
    (1, 0): np.array([[1, -1j], [-1j, -1]]) / 2,  # (sigma_z - i sigma_x) / 2
    (0, 1): np.array([[1, -1], [1, -1]]) / 2,  # (sigma_z - i sigma_y) / 2
}
DEGENERATE = 1e-8
CHERN_GAP = 1e-3  # units of t: a smaller gap on the grid leaves the Chern number undefined


def mass_map(image: np.ndarray, masses: tuple[float, float]) -> np.ndarray:
    """Masses of the sites: ``masses[1]`` where the image is 1, ``masses[0]`` where 0."""
    return np.where(image > 0.5, masses[1], masses[0])


class Supercell:
    """The QWZ supercell of one mass map (L x L sites, two components each)."""

    def __init__(self, masses: np.ndarray) -> None:
        self.size = masses.shape[0]
        n = self.size
        idx = np.arange(n * n).reshape(n, n)
        self.onsite = np.kron(np.diag(masses.ravel()), np.diag([1.0, -1.0])).astype(complex)
        self.bonds = []  # (hop matrix, site i, site j, wrap vector)
        for (dx, dy), hop in HOP.items():
            i1, i2 = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
            j1, j2 = i1 + dx, i2 + dy
            wrap = np.stack([j1 // n, j2 // n], axis=-1).reshape(-1, 2)
            self.bonds.append((hop, idx.ravel(), idx[j1 % n, j2 % n].ravel(), wrap))

    def hamiltonian(self, k: np.ndarray) -> np.ndarray:
        """H at reduced k ``(..., >= 2)`` of the supercell (its reciprocal vectors); a third
        component is ignored (the topology package passes k as 3-vectors)."""
        k = np.asarray(k, dtype=float)
        flat = k.reshape(-1, k.shape[-1])[:, :2]
        h = np.repeat(self.onsite[None], len(flat), axis=0)
        for hop, i, j, wrap in self.bonds:
            phase = np.exp(2j * math.pi * flat @ wrap.T)  # (nk, n_sites)
            for a in range(2):
                for b in range(2):
                    value = hop[a, b] * phase
                    np.add.at(h, (slice(None), 2 * i + a, 2 * j + b), value)
                    np.add.at(h, (slice(None), 2 * j + b, 2 * i + a), value.conj())
        return h.reshape(*k.shape[:-1], *h.shape[1:])

    def rotation(self, k: np.ndarray, power: int) -> np.ndarray:
        """C4^power on the Bloch basis at a point k it fixes (see the module docstring)."""
        n = self.size
        rot = BHZ_SQUARE.rotation_frac(power)
        krot = BHZ_SQUARE.rotation_recip(power) @ np.asarray(k, dtype=float)
        u = np.linalg.matrix_power(U, power)
        m = np.zeros((2 * n * n, 2 * n * n), complex)
        for i1 in range(n):
            for i2 in range(n):
                image = rot @ np.array([i1, i2])
                shift = image // n
                j = (image[0] % n) * n + image[1] % n
                phase = np.exp(-2j * math.pi * krot @ shift)
                m[2 * j : 2 * j + 2, 2 * (i1 * n + i2) : 2 * (i1 * n + i2) + 2] = u * phase
        return m


def supercell_bands(
    masses: np.ndarray, kpoints: np.ndarray, n_bands: int, chern_grid: int = 12
) -> dict[str, np.ndarray]:
    """Lowest ``n_bands`` on ``kpoints``, labels and energies at Gamma, M, X, and the
    Chern number of the lowest b bands (b = 1..n_bands; NaN where band b + 1 touches)."""
    cell = Supercell(masses)
    energies = np.linalg.eigvalsh(cell.hamiltonian(kpoints))[:, :n_bands]
    out: dict[str, np.ndarray] = {"energies": energies}
    for name, (k, power) in BHZ_SQUARE.points.items():
        values, vectors = np.linalg.eigh(cell.hamiltonian(np.array(k)))
        top = n_bands
        while top < len(values) and values[top] - values[top - 1] < DEGENERATE:
            top += 1
        rep = cell.rotation(np.array(k), power)
        order = BHZ_SQUARE.point_order(name)
        labels = group_labels(values[:top], vectors[:, :top], rep, order, DEGENERATE)
        out[f"labels_{name}"] = labels[:n_bands]
        out[f"energies_{name}"] = values[:n_bands]
    chern = np.full(n_bands, np.nan)
    grid = np.stack(np.meshgrid(*[np.arange(chern_grid) / chern_grid] * 2, indexing="ij"), -1)
    values, vectors = np.linalg.eigh(cell.hamiltonian(grid))
    for b in range(1, n_bands + 1):
        if np.min(values[..., b] - values[..., b - 1]) > CHERN_GAP:
            chern[b - 1] = round(fhs_chern(vectors[..., :b]))
    out["chern"] = chern
    return out
