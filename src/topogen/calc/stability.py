"""Dynamical stability from phonon frequencies on a q mesh, and a stability score.

Dynamical stability
    Frequencies f (THz; imaginary ones negative) on the irreducible q mesh. A mode is
    imaginary when ``f < -tol`` (``tol`` = 0.05 THz), or, for the three acoustic modes (those
    whose eigenvectors overlap most with rigid translations: :func:`acoustic_modes`) within
    ``gamma_radius`` (0.06 1/A, crystallographic convention without 2 pi; about a sixth of
    MoS2's zone) of Gamma, when ``f < -gamma_tol`` (1.0 THz). An optical mode gets no
    allowance: one at -0.5 THz at Gamma is an instability. The structure is dynamically
    stable when no mode is imaginary. Why the allowance near Gamma: the acoustic branches
    there, and for slabs the quadratic flexural ZA branch, come out slightly negative from
    finite supercells and the violated rotational sum rules, not from a real instability.
    Measured with CHGNet on
    relaxed monolayers (0.01 A displacements, 6x6x1 or larger, float32 or float64 alike):
    MoS2 -0.03, graphene -0.34, hBN -0.62, Ti2C -0.78 THz within 0.05 1/A of Gamma, all
    positive further out (a 0.3 THz allowance would reject graphene and hBN). Real
    instabilities seen so far reach further into the zone (planar silicene -5.9 THz at K,
    1T-NbSe2 -2.3 THz, a squashed MoS2 cell -12 THz).

Stability score, in [0, 1]
    ``score = (1 - w) * exp(-x / f0)`` with ``w`` the fraction of modes that are imaginary
    (modes weighted by their q point's multiplicity in the full mesh), ``x`` the largest
    excess ``-f - tol_q`` over all imaginary modes (THz; ``tol_q`` is ``tol`` or
    ``gamma_tol`` as above) and ``f0`` = 1 THz. 1 exactly when stable; a cell with
    imaginary modes of several THz everywhere scores ~0; a single slightly soft mode scores
    just below 1.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

TOL = 0.05  # THz
GAMMA_TOL = 1.0  # THz
GAMMA_RADIUS = 0.06  # 1/Angstrom, without 2 pi
SCORE_SCALE = 1.0  # THz
# THz between DOS points: phonopy's default (200 points over the range) under-resolves the
# acoustic/optical gap; its integral moved by 3% with the sampling (MoS2: 9.19 vs 3N = 9),
# at 0.02 THz it agrees with 0.01 THz to 0.2%.
DOS_PITCH = 0.02
# ``dos`` of :func:`analyse` (and of the phonon calculators): True, False, or "stable": the
# DOS of dynamically stable structures only (the funnel keeps no other; the tetrahedron DOS
# is ~7% of a 6x6x1 phonon run on one thread)
Dos = bool | Literal["stable"]


@dataclass
class Stability:
    """Verdict of :func:`stability` (frequencies in THz)."""

    stable: bool
    score: float
    min_frequency: float  # over the whole mesh
    min_frequency_off_gamma: float  # outside gamma_radius (inf if no such q point)
    imaginary_fraction: float  # weighted fraction of imaginary modes
    worst_q: tuple[float, float, float]  # reduced q of the most imaginary excess
    excess: float = 0.0  # THz: the largest -f - tol_q (0 when stable)


def stability(
    frequencies: np.ndarray,
    qpoints: np.ndarray,
    weights: np.ndarray,
    reciprocal: np.ndarray,
    *,
    tol: float = TOL,
    gamma_tol: float = GAMMA_TOL,
    gamma_radius: float = GAMMA_RADIUS,
    scale: float = SCORE_SCALE,
    acoustic: np.ndarray | None = None,
) -> Stability:
    """Stability verdict and score (module docstring) from frequencies on a q mesh.

    ``frequencies`` (n_q, n_modes) THz; ``qpoints`` (n_q, 3) reduced; ``weights`` (n_q,)
    multiplicities; ``reciprocal`` rows are the reciprocal lattice vectors (1/A, no 2 pi).
    ``acoustic`` (n_q, n_modes) bool marks the acoustic modes, the only ones that get the
    ``gamma_tol`` allowance near Gamma (:func:`acoustic_modes`); None: the three lowest
    modes at each q (right only when no optical mode lies below the acoustic ones).
    """
    freqs = np.asarray(frequencies, dtype=float)
    q = np.asarray(qpoints, dtype=float)
    w = np.asarray(weights, dtype=float)
    q_wrapped = q - np.rint(q)
    qlen = np.linalg.norm(q_wrapped @ np.asarray(reciprocal, dtype=float), axis=1)
    near = qlen <= gamma_radius
    if acoustic is None:
        acoustic = np.zeros(freqs.shape, dtype=bool)
        lowest = np.argsort(freqs, axis=1)[:, :3]
        np.put_along_axis(acoustic, lowest, True, axis=1)
    allowed = near[:, None] & np.asarray(acoustic, dtype=bool)
    tol_q = np.where(allowed, gamma_tol, tol)
    excess = np.maximum(-freqs - tol_q, 0.0)
    imaginary = excess > 0
    frac = float((imaginary * w[:, None]).sum() / (w.sum() * freqs.shape[1]))
    worst = float(excess.max()) if excess.size else 0.0
    k = int(np.unravel_index(int(excess.argmax()), excess.shape)[0]) if worst > 0 else 0
    off = freqs[~near]
    score = (1.0 - frac) * math.exp(-worst / scale)
    return Stability(
        stable=not bool(imaginary.any()),
        score=float(min(max(score, 0.0), 1.0)),
        min_frequency=float(freqs.min()),
        min_frequency_off_gamma=float(off.min()) if off.size else math.inf,
        imaginary_fraction=frac,
        worst_q=tuple(float(x) for x in q[k]),  # type: ignore[arg-type]
        excess=worst,
    )


def acoustic_modes(ph: Any, qpoints: np.ndarray) -> np.ndarray:
    """(n_q, n_modes) bool: at each q (near Gamma), the three modes whose mass-weighted
    eigenvectors overlap most with rigid translations of the whole cell (at Gamma exactly
    the acoustic modes; for slabs they include the flexural ZA mode)."""
    ph.run_qpoints(np.asarray(qpoints, dtype=float), with_eigenvectors=True)
    vecs = np.asarray(ph.qpoints.eigenvectors)  # (n_q, 3N, 3N), columns = modes
    masses = np.asarray(ph.primitive.masses, dtype=float)
    n = len(masses)
    trans = np.zeros((3, 3 * n))
    for axis in range(3):
        trans[axis, axis::3] = np.sqrt(masses)
    trans /= np.linalg.norm(trans, axis=1, keepdims=True)
    overlap = (np.abs(np.einsum("ak,qkm->qam", trans, vecs)) ** 2).sum(axis=1)
    out = np.zeros(overlap.shape, dtype=bool)
    np.put_along_axis(out, np.argsort(-overlap, axis=1)[:, :3], True, axis=1)
    return out


def analyse(
    ph: Any,
    mesh: Sequence[int],
    *,
    tol: float = TOL,
    gamma_tol: float = GAMMA_TOL,
    gamma_radius: float = GAMMA_RADIUS,
    dos: Dos = True,
) -> tuple[Stability, np.ndarray, np.ndarray]:
    """Stability and total DOS of a phonopy object whose force constants are set. The
    acoustic modes near Gamma (the only ones with the ``gamma_tol`` allowance) are found
    from the eigenvectors there (:func:`acoustic_modes`)."""
    ph.run_mesh(list(mesh), is_gamma_center=True, with_eigenvectors=False)
    mesh_result = ph.mesh
    reciprocal = np.linalg.inv(np.array(ph.primitive.cell)).T
    qpoints = np.asarray(mesh_result.qpoints, dtype=float)
    freqs = np.asarray(mesh_result.frequencies, dtype=float)
    qlen = np.linalg.norm((qpoints - np.rint(qpoints)) @ reciprocal, axis=1)
    near = np.flatnonzero(qlen <= gamma_radius)
    acoustic = np.zeros(freqs.shape, dtype=bool)
    if near.size:
        acoustic[near] = acoustic_modes(ph, qpoints[near])
    stab = stability(
        freqs,
        qpoints,
        mesh_result.weights,
        reciprocal,
        tol=tol,
        gamma_tol=gamma_tol,
        gamma_radius=gamma_radius,
        acoustic=acoustic,
    )
    if not dos or (dos == "stable" and not stab.stable):
        return stab, np.zeros(0), np.zeros(0)
    return (stab, *total_dos(ph))


def total_dos(ph: Any, mesh: Sequence[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(frequencies THz, states / THz / cell) of a phonopy object whose force constants are
    set, on ``mesh`` (Gamma-centred; None: the mesh last run)."""
    if mesh is not None:
        ph.run_mesh(list(mesh), is_gamma_center=True, with_eigenvectors=False)
    ph.run_total_dos(freq_pitch=DOS_PITCH)
    return np.asarray(ph.total_dos.frequency_points), np.asarray(ph.total_dos.dos)
