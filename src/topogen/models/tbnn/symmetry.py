"""The two wallpaper groups of the tight-binding network: p6 (hexagonal) and p4 (square).

Units: lattice constant a = 1, energies in E0 = hbar^2 / (2 m a^2), so the kinetic energy of
a plane wave is |q|^2 (q in 1/a, with the 2 pi). Rotations act actively, (C psi)(r) =
psi(C^-1 r); a plane wave exp(i q.r) goes to exp(i (C q).r) and an orbital of angular
momentum m (real pair cos m theta, sin m theta) is rotated by the matrix of angle m alpha.
The symmetry label of a band at a high-symmetry point k* (fixed by C^p up to a reciprocal
vector) is the integer j of its eigenvalue exp(2 pi i j / order) of C^p, order = N / p
(p6: C6 at Gamma, C3 at K, C2 at M; p4: C4 at Gamma and M, C2 at X). Bands of a degenerate
group get the group's labels in ascending order, so labels compare band by band.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np

__all__ = ["LATTICES", "Lattice", "group_labels", "wedge_grid"]


@dataclass(frozen=True)
class Lattice:
    """A 2D Bravais lattice with an N-fold rotation about the origin and its high-symmetry
    points: ``points`` maps a name to (reduced k, power p of the rotation C_N that fixes it)."""

    name: str
    order: int  # N
    vectors: tuple[tuple[float, float], tuple[float, float]]  # rows a1, a2
    points: dict[str, tuple[tuple[float, float], int]]

    @cached_property
    def cell(self) -> np.ndarray:
        return np.array(self.vectors, dtype=float)

    @cached_property
    def reciprocal(self) -> np.ndarray:
        """Rows b1, b2 with a_i . b_j = 2 pi delta_ij."""
        return 2 * math.pi * np.linalg.inv(self.cell).T

    def rotation(self, power: int = 1) -> np.ndarray:
        """Cartesian matrix of C_N^power."""
        angle = 2 * math.pi * power / self.order
        c, s = math.cos(angle), math.sin(angle)
        return np.array([[c, -s], [s, c]])

    def rotation_frac(self, power: int = 1) -> np.ndarray:
        """Integer matrix of C_N^power on fractional real-space coordinates (columns)."""
        m = np.linalg.inv(self.cell.T) @ self.rotation(power) @ self.cell.T
        return np.rint(m).astype(int)

    def rotation_recip(self, power: int = 1) -> np.ndarray:
        """Integer matrix of C_N^power on reduced reciprocal coordinates (columns)."""
        b = self.reciprocal
        m = np.linalg.inv(b.T) @ self.rotation(power) @ b.T
        return np.rint(m).astype(int)

    def cartesian_k(self, reduced: np.ndarray) -> np.ndarray:
        return np.asarray(reduced, dtype=float) @ self.reciprocal

    def point_order(self, name: str) -> int:
        """Order of the rotation that fixes ``name``."""
        return self.order // self.points[name][1]

    def shells(self, radius: float) -> list[np.ndarray]:
        """Orbits under C_N of the lattice vectors 0 < |R| <= radius (fractional, integer),
        nearest first; each orbit is (N, 2), row j = C_N^j R0."""
        n = math.ceil(radius * 2) + 1
        rot = self.rotation_frac()
        seen: set[tuple[int, int]] = set()
        orbits = []
        grid = [(i, j) for i in range(-n, n + 1) for j in range(-n, n + 1) if (i, j) != (0, 0)]
        grid.sort(key=lambda r: (round(float(np.linalg.norm(np.array(r) @ self.cell)), 9), r))
        for r in grid:
            if r in seen or np.linalg.norm(np.array(r) @ self.cell) > radius + 1e-9:
                continue
            orbit = [np.array(r)]
            for _ in range(self.order - 1):
                orbit.append(rot @ orbit[-1])
            seen.update(tuple(int(x) for x in o) for o in orbit)
            orbits.append(np.array(orbit))
        return orbits


HEXAGONAL = Lattice(
    "p6",
    6,
    ((1.0, 0.0), (0.5, math.sqrt(3) / 2)),
    {"G": ((0.0, 0.0), 1), "K": ((2 / 3, 1 / 3), 2), "M": ((0.5, 0.0), 3)},
)
SQUARE = Lattice(
    "p4",
    4,
    ((1.0, 0.0), (0.0, 1.0)),
    {"G": ((0.0, 0.0), 1), "M": ((0.5, 0.5), 1), "X": ((0.5, 0.0), 2)},
)
LATTICES = {lat.name: lat for lat in (HEXAGONAL, SQUARE)}


def wedge_grid(lattice: Lattice, n: int) -> np.ndarray:
    """Reduced k points of the irreducible wedge (one N-th of the zone: the triangle Gamma-
    K-K' of p6, the square Gamma-X-M-X' quarter of p4) on a grid of n intervals per side,
    corners included; for even n the grid holds every high-symmetry point."""
    pts = []
    if lattice.name == "p6":
        k1, k2 = np.array([2 / 3, 1 / 3]), np.array([1 / 3, -1 / 3])  # adjacent K points
        pts = [(i * k1 + j * k2) / n for i in range(n + 1) for j in range(n + 1 - i)]
    else:
        pts = [(i / (2 * n), j / (2 * n)) for i in range(n + 1) for j in range(n + 1)]
    return np.array(pts, dtype=float)


def group_labels(
    energies: np.ndarray, vectors: np.ndarray, rep: np.ndarray, order: int, tol: float
) -> np.ndarray:
    """Symmetry labels of bands with ``energies (n,)`` (ascending) and ``vectors (dim, n)``
    under the unitary ``rep (dim, dim)`` of the point's rotation (of ``order``): bands closer
    than ``tol`` form a group; its rotation eigenvalues exp(2 pi i j / order) give labels j,
    ascending within the group."""
    labels = np.zeros(len(energies), dtype=np.int64)
    start = 0
    while start < len(energies):
        stop = start + 1
        while stop < len(energies) and energies[stop] - energies[stop - 1] < tol:
            stop += 1
        v = vectors[:, start:stop]
        phases = np.angle(np.linalg.eigvals(v.conj().T @ rep @ v))
        j = np.mod(np.rint(phases * order / (2 * math.pi)), order).astype(np.int64)
        labels[start:stop] = np.sort(j)
        start = stop
    return labels
