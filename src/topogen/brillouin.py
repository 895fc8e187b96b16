"""High-symmetry paths through the Brillouin zone of a 2D cell (in-plane vectors a, b).

Hexagonal cells (|a| = |b| within 1%, angle 60 or 120 degrees within 1 degree) get
Gamma-M-K-Gamma; every other cell Gamma-X-S-Y-Gamma (X = b1/2, S = (b1 + b2)/2, Y = b2/2),
exact for rectangular cells and a fair overview of oblique ones. Points are reduced
coordinates of the reciprocal vectors b1, b2 (k3 = 0); distances along the path are
Cartesian (1/Angstrom, without the 2 pi), so that bands of different cells are comparable.
Used by the phonon dispersion of the candidates and the DFT-vs-Wannier band figure.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

import numpy as np

__all__ = ["KPath", "path_2d"]


@dataclass(frozen=True)
class KPath:
    kpoints: np.ndarray  # (n, 3) reduced
    distance: np.ndarray  # (n,) cumulative, 1/Angstrom
    ticks: tuple[float, ...]  # distance of each corner
    labels: tuple[str, ...]  # its name (G for Gamma)


def _corners(cell: np.ndarray) -> tuple[list[str], list[tuple[float, float]]]:
    a, b = cell[0], cell[1]
    la, lb = np.linalg.norm(a), np.linalg.norm(b)
    angle = np.degrees(np.arccos(np.clip(a @ b / (la * lb), -1.0, 1.0)))
    if abs(la - lb) < 0.01 * la and (abs(angle - 120) < 1 or abs(angle - 60) < 1):
        k = (1 / 3, 1 / 3) if angle > 90 else (2 / 3, 1 / 3)
        return ["G", "M", "K", "G"], [(0, 0), (0.5, 0), k, (0, 0)]
    return ["G", "X", "S", "Y", "G"], [(0, 0), (0.5, 0), (0.5, 0.5), (0, 0.5), (0, 0)]


def path_2d(cell: np.ndarray, n: int = 90) -> KPath:
    """About ``n`` points along the path of ``cell`` (3 x 3, rows a, b, c), spaced evenly in
    Cartesian distance, every corner included."""
    cell = np.asarray(cell, dtype=float)
    recip = np.linalg.inv(cell).T  # rows b1, b2, b3 without 2 pi
    labels, corners = _corners(cell)
    reduced = [np.array([x, y, 0.0]) for x, y in corners]
    lengths = [np.linalg.norm((q - p) @ recip) for p, q in pairwise(reduced)]
    step = sum(lengths) / max(n, len(lengths) + 1)
    points, distance, ticks = [reduced[0]], [0.0], [0.0]
    for (p, q), length in zip(pairwise(reduced), lengths, strict=True):
        m = max(1, round(length / step))
        for t in np.arange(1, m + 1) / m:
            points.append(p + t * (q - p))
            distance.append(ticks[-1] + t * length)
        ticks.append(ticks[-1] + length)
    return KPath(np.array(points), np.array(distance), tuple(ticks), tuple(labels))
