"""Unit-cell potentials of the metamaterial: the paper's random step potentials (the six-hole
geometry of its design example is :func:`topogen.models.tbnn.design.hole_image`).

A potential is an L x L image on the fractional grid (i/L, j/L) of the cell (a1, a2). An
N-fold rotation maps that grid onto itself (its matrix on fractional coordinates is an integer
matrix), so an image built from a C_N-symmetric function is exactly C_N-symmetric. The
solver reads the potential as the trigonometric polynomial that interpolates the image
(its discrete Fourier coefficients).
"""

from __future__ import annotations

import math

import numpy as np

from topogen.models.tbnn.symmetry import Lattice

__all__ = ["VMAX", "fourier_coefficients", "random_field", "random_potential"]

VMAX = 256.0  # (16 hbar)^2 / (2 m a^2) in E0 = hbar^2 / (2 m a^2)


def _grid(lattice: Lattice, size: int) -> np.ndarray:
    """Cartesian positions (size, size, 2) of the fractional grid."""
    f = np.arange(size) / size
    f1, f2 = np.meshgrid(f, f, indexing="ij")
    return np.stack([f1, f2], axis=-1) @ lattice.cell


def random_field(
    lattice: Lattice, size: int, rng: np.random.Generator, cutoff: int = 6
) -> np.ndarray:
    """A Gaussian random field with C_N-symmetric Fourier components A_k (the same for every
    k of an orbit; real because -k is in the orbit), <|A_k|^2> ~ 1/|k|, on the orbits of
    reciprocal vectors k = n1 b1 + n2 b2 with a member within |n1|, |n2| <= cutoff."""
    rot = lattice.rotation_recip()
    seen: set[tuple[int, int]] = set()
    ks, amps = [], []
    for n1 in range(-cutoff, cutoff + 1):
        for n2 in range(-cutoff, cutoff + 1):
            if (n1, n2) == (0, 0) or (n1, n2) in seen:
                continue
            orbit = [np.array([n1, n2])]
            for _ in range(lattice.order - 1):
                orbit.append(rot @ orbit[-1])
            members = {tuple(int(x) for x in o) for o in orbit}
            seen.update(members)
            k = float(np.linalg.norm(lattice.cartesian_k(orbit[0])))
            a = rng.normal() / math.sqrt(k)
            ks.extend(members)
            amps.extend([a] * len(members))
    q = lattice.cartesian_k(np.array(ks))  # (nk, 2)
    r = _grid(lattice, size)
    return np.cos(r @ q.T) @ np.array(amps)


def random_potential(
    lattice: Lattice, size: int, rng: np.random.Generator, vmax: float = VMAX
) -> np.ndarray:
    """The paper's step potential: a random field digitised to {0, vmax} at zero."""
    return np.where(random_field(lattice, size, rng) > 0, vmax, 0.0)


def fourier_coefficients(lattice: Lattice, image: np.ndarray) -> np.ndarray:
    """V(G) of the potential an image stands for: ``c[n1 % L, n2 % L]`` is the coefficient of
    exp(i G.r), G = n1 b1 + n2 b2, from the image's discrete Fourier transform, kept within
    the largest disc |G| < G_max inside the transform's box |n1|, |n2| < L/2 (a C_N-invariant
    set, so the potential keeps the image's symmetry) and zero beyond."""
    size = image.shape[0]
    n = np.fft.fftfreq(size, 1.0 / size)
    n1, n2 = np.meshgrid(n, n, indexing="ij")
    g = np.linalg.norm(lattice.cartesian_k(np.stack([n1, n2], axis=-1)), axis=-1)
    edge = (np.abs(n1) >= size // 2) | (np.abs(n2) >= size // 2)
    return np.where(g < g[edge].min() - 1e-9, np.fft.fft2(image) / image.size, 0.0)
