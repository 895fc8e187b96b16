"""Topological invariants of 2D tight-binding models (numpy): Chern, Wilson loops, Z2, spin Chern.

Conventions. k points are fractional (k1, k2, 0); H(k) is in the periodic gauge (see
:mod:`topogen.topology.hr`). Berry connection A = i<u|grad u>, curvature
Omega = d1 A2 - d2 A1 and C = (1/2pi) int Omega d^2k (Vanderbilt's and PythTB's sign; it
equals the Kubo-formula Chern number and is the opposite of the raw Fukui-Hatsugai-Suzuki
sum, which uses A = <u|grad u>). The hybrid Wannier charge centre of a Wilson loop with
eigenvalues lambda is x = -arg(lambda) / 2pi mod 1 (the Berry phase over 2pi); z2pack reports
+arg(lambda) / 2pi, so its Chern number on the surface (s, t) -> (s, t, 0) is -C. Pinned by
tests: the Haldane model (:func:`topogen.topology.models.haldane`) at M = 0, phi = pi/2,
t1, t2 > 0 has C = -1 for its lower band (z2pack: +1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from topogen.errors import TopogenError
from topogen.topology.hr import HamiltonianLike, TBModel, as_hamiltonian
from topogen.topology.spinors import (
    SpinOrder,
    is_time_reversal_symmetric,
    kramers_splitting,
    spin_operator,
)

__all__ = [
    "SpinChern",
    "Z2Result",
    "chern_number",
    "fhs_chern",
    "is_time_reversal_symmetric",
    "kramers_splitting",
    "spin_axis_operator",
    "spin_chern",
    "spin_chern_number",
    "spin_resolved_centres",
    "wannier_centres",
    "z2_invariant",
]


def _grid(n: int) -> np.ndarray:
    k1, k2 = np.meshgrid(np.arange(n) / n, np.arange(n) / n, indexing="ij")
    return np.stack([k1, k2, np.zeros_like(k1)], axis=-1)


def _occupied(hk: HamiltonianLike, k: np.ndarray, nocc: int, gap_tol: float) -> np.ndarray:
    """Eigenvectors of the lowest ``nocc`` bands at ``k (..., 3)``; fails if the gap closes."""
    energies, vectors = np.linalg.eigh(as_hamiltonian(hk)(k))
    nw = energies.shape[-1]
    if not 0 < nocc < nw:
        raise TopogenError(f"nocc must be between 1 and {nw - 1} for {nw} bands, got {nocc}")
    gap = energies[..., nocc] - energies[..., nocc - 1]
    if gap.min() < gap_tol:
        where = np.unravel_index(gap.argmin(), gap.shape)
        raise TopogenError(
            f"bands {nocc} and {nocc + 1} touch (gap {gap.min():.3g} < {gap_tol:g} at k = "
            f"{np.round(k[where], 4).tolist()}): the invariant is undefined"
        )
    return vectors[..., :nocc]


def fhs_chern(states: np.ndarray) -> float:
    """Fukui-Hatsugai-Suzuki Chern number of states ``(n, n, nw, m)`` on a periodic grid."""

    def link(axis: int) -> np.ndarray:
        overlap = states.conj().swapaxes(-1, -2) @ np.roll(states, -1, axis=axis)
        det = np.linalg.det(overlap)
        return det / np.abs(det)

    u1, u2 = link(0), link(1)
    plaquette = u1 * np.roll(u2, -1, axis=0) * np.roll(u1, -1, axis=1).conj() * u2.conj()
    return float(-np.angle(plaquette).sum() / (2 * np.pi))


def _as_int(value: float, what: str) -> int:
    rounded = round(value)
    if abs(value - rounded) > 1e-6:  # pragma: no cover - FHS sums are integers by construction
        raise TopogenError(f"{what} is not an integer: {value}")
    return int(rounded)


def chern_number(hk: HamiltonianLike, nocc: int, n: int = 36, gap_tol: float = 1e-6) -> int:
    """Chern number of the lowest ``nocc`` bands (FHS lattice method on an n x n grid)."""
    return _as_int(fhs_chern(_occupied(hk, _grid(n), nocc, gap_tol)), "Chern number")


def spin_axis_operator(num_wann: int, phi: float, order: SpinOrder = "interleaved") -> np.ndarray:
    """n.s for n = sin(phi) z + cos(phi) x (the paper's axis; phi = pi/2 is s_z, 0 is s_x)."""
    return np.sin(phi) * spin_operator(num_wann, "z", order) + np.cos(phi) * spin_operator(
        num_wann, "x", order
    )


def _projected_spin(states: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    nw = states.shape[-2]
    if s.shape != (nw, nw):
        raise TopogenError(f"spin_op must have shape ({nw}, {nw}), got {s.shape}")
    return np.linalg.eigh(states.conj().swapaxes(-1, -2) @ s @ states)


def _split_chern(states: np.ndarray, values: np.ndarray, vectors: np.ndarray, tol: float) -> float:
    nocc = states.shape[-1]
    if np.abs(values).min() < tol:
        raise TopogenError(
            f"the spectrum of P S P closes (min |s| = {np.abs(values).min():.3g} < "
            f"{tol:g}): the spin Chern number is undefined"
        )
    n_minus = (values < 0).sum(axis=-1)
    if (n_minus != n_minus.flat[0]).any() or not 0 < n_minus.flat[0] < nocc:
        raise TopogenError("P S P has no fixed split into +/- subspaces over the Brillouin zone")
    m = int(n_minus.flat[0])
    minus = fhs_chern(states @ vectors[..., :m])
    plus = fhs_chern(states @ vectors[..., m:])
    return (_as_int(plus, "C+") - _as_int(minus, "C-")) / 2


def spin_chern_number(
    hk: HamiltonianLike,
    nocc: int,
    spin_op: np.ndarray | None = None,
    axis: str = "z",
    order: SpinOrder = "interleaved",
    n: int = 36,
    gap_tol: float = 1e-6,
    spin_gap_tol: float = 1e-3,
) -> float:
    """Spin Chern number C_s = (C+ - C-)/2 from the spectrum of P S P (Prodan's definition).

    The occupied space is split into the +/- eigen-subspaces of P S P, where S is
    ``spin_op`` or the Pauli matrix along ``axis`` in the spinor ``order`` of
    :mod:`topogen.topology.spinors` (default: Wannier90's interleaved up/down per orbital).
    Fails if the P S P spectrum closes at 0 (``spin_gap_tol``), where C_s is undefined.
    """
    states = _occupied(hk, _grid(n), nocc, gap_tol)
    nw = states.shape[-2]
    s = spin_operator(nw, axis, order) if spin_op is None else np.asarray(spin_op, dtype=complex)
    return _split_chern(states, *_projected_spin(states, s), spin_gap_tol)


# The candidate axes of :func:`spin_chern`: phi = 0, pi/8, ..., 7 pi/8 (pi/8: the paper's,
# pi/2: s_z); n and -n give opposite C_s, so half a turn covers the x-z plane.
SPIN_PHIS = tuple(np.arange(8) * np.pi / 8)


@dataclass(frozen=True)
class SpinChern:
    """C_s along n = sin(phi) z + cos(phi) x, chosen where the spin gap (min |eig P S P|
    over the k grid) is largest; ``value`` None (and ``error``) where it is undefined."""

    value: float | None
    phi: float
    spin_gap: float
    gaps: dict[float, float]  # spin gap of every axis tried
    error: str | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "spin_chern": self.value,
            "spin_phi_deg": round(float(np.degrees(self.phi)), 4),
            "spin_gap": self.spin_gap,
            "spin_gaps_by_phi_deg": {f"{np.degrees(p):g}": g for p, g in sorted(self.gaps.items())},
            **({"spin_chern_error": self.error} if self.error else {}),
        }


def spin_chern(
    hk: HamiltonianLike,
    nocc: int,
    phis: tuple[float, ...] | float = SPIN_PHIS,
    order: SpinOrder = "interleaved",
    n: int = 36,
    gap_tol: float = 1e-6,
    spin_gap_tol: float = 1e-3,
) -> SpinChern:
    """The spin Chern number along the axis of ``phis`` (radians; one value: that axis) with the
    largest spin gap. Raises only if the occupied bands touch the empty ones."""
    states = _occupied(hk, _grid(n), nocc, gap_tol)
    nw = states.shape[-2]
    spectra = {
        float(p): _projected_spin(states, spin_axis_operator(nw, p, order))
        for p in np.atleast_1d(phis)
    }
    gaps = {p: float(np.abs(v).min()) for p, (v, _) in spectra.items()}
    phi = max(gaps, key=lambda p: gaps[p])
    try:
        value: float | None = _split_chern(states, *spectra[phi], spin_gap_tol)
        error = None
    except TopogenError as exc:
        value, error = None, str(exc)
    return SpinChern(value, phi, gaps[phi], gaps, error)


def _wcc_lines(
    hk: HamiltonianLike,
    nocc: int,
    n_k: int,
    direction: int,
    pump: np.ndarray,
    positions: np.ndarray | None,
    gap_tol: float,
    sector: tuple[np.ndarray, int] | None = None,
) -> np.ndarray:
    """Sorted WCCs ``(len(pump), n)`` of Wilson loops along k_direction at k_other = pump;
    n = nocc, or with ``sector`` = (S, +1 or -1) the size of that eigen-subspace of P S P."""
    k = np.zeros((len(pump), n_k, 3))
    k[:, :, direction] = np.arange(n_k) / n_k
    k[:, :, 1 - direction] = np.asarray(pump)[:, None]
    states = _occupied(hk, k, nocc, gap_tol)  # (lines, n_k, nw, nocc)
    if sector is not None:
        values, vectors = _projected_spin(states, sector[0])
        n_minus = (values < 0).sum(axis=-1)
        if (n_minus != n_minus.flat[0]).any():
            raise TopogenError("P S P has no fixed split into +/- subspaces along the loops")
        m = int(n_minus.flat[0])
        states = states @ (vectors[..., m:] if sector[1] > 0 else vectors[..., :m])
    closing = states[:, 0]
    if positions is not None:  # Bloch-sum gauge: u = exp(-2 pi i k.tau) psi, closed with G
        states = np.exp(-2j * np.pi * k @ positions.T)[..., None] * states
        closing = np.exp(-2j * np.pi * positions[:, direction])[None, :, None] * states[:, 0]
    ahead = np.concatenate([states[:, 1:], closing[:, None]], axis=1)
    links = states.conj().swapaxes(-1, -2) @ ahead  # (lines, n_k, n, n): <u_j|u_j+1>
    while links.shape[1] > 1:  # the ordered product M_0 M_1 ... by pairs: log2(n_k) steps
        odd = links[:, -1:] if links.shape[1] % 2 else links[:, :0]
        links = np.concatenate([links[:, 0:-1:2] @ links[:, 1::2], odd], axis=1)
    wilson = links[:, 0]
    return np.sort(-np.angle(np.linalg.eigvals(wilson)) / (2 * np.pi) % 1.0, axis=-1)


def wannier_centres(
    hk: HamiltonianLike,
    nocc: int,
    n_k: int = 48,
    n_loop: int = 25,
    direction: int = 0,
    pump_range: tuple[float, float] = (0.0, 0.5),
    positions: np.ndarray | None = None,
    gap_tol: float = 1e-6,
) -> tuple[np.ndarray, np.ndarray]:
    """Hybrid Wannier charge centres of Wilson loops along reciprocal ``direction`` (0 or 1).

    Returns the pumping parameter (the other reduced coordinate, ``n_loop`` values over
    ``pump_range``) and the sorted WCCs in [0, 1), shape ``(n_loop, nocc)``. ``positions``
    (reduced orbital centres; default the model's own) set the gauge: they shift the WCCs but
    not their winding.
    """
    if direction not in (0, 1):
        raise TopogenError(f"direction must be 0 or 1, got {direction}")
    if positions is None and isinstance(hk, TBModel):
        positions = hk.positions
    pump = np.linspace(*pump_range, n_loop)
    return pump, _wcc_lines(hk, nocc, n_k, direction, pump, positions, gap_tol)


def spin_resolved_centres(
    hk: HamiltonianLike,
    nocc: int,
    phi: float = np.pi / 2,
    order: SpinOrder = "interleaved",
    n_k: int = 48,
    n_loop: int = 41,
    direction: int = 0,
    positions: np.ndarray | None = None,
    gap_tol: float = 1e-6,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The Wannier-centre flow of each spin sector: Wilson loops within the + and - eigen-
    subspaces of P S P (S along ``phi``, as :func:`spin_chern`) over the whole zone. The net
    windings of the sectors' centres against k2 are -C+ and -C- (loops along b1; the
    orientation of :func:`chern_number`), so C_s = (C+ - C-)/2 is minus half their
    difference. Returns the pumping parameter and the sorted centres of the + and the -
    sector."""
    if positions is None and isinstance(hk, TBModel):
        positions = hk.positions
    pump = np.linspace(0.0, 1.0, n_loop)
    nw = _occupied(hk, np.zeros((1, 3)), nocc, gap_tol).shape[-2]
    s = spin_axis_operator(nw, phi, order)
    plus, minus = (
        _wcc_lines(hk, nocc, n_k, direction, pump, positions, gap_tol, (s, sign))
        for sign in (1, -1)
    )
    return pump, plus, minus


def _largest_gap(wcc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Midpoint and size of the largest gap between sorted WCCs on the circle, per line."""
    gaps = np.diff(np.concatenate([wcc, wcc[:, :1] + 1], axis=1), axis=1)
    i = gaps.argmax(axis=1)
    rows = np.arange(len(wcc))
    return (wcc[rows, i] + gaps[rows, i] / 2) % 1.0, gaps[rows, i]


def _moves(wcc: np.ndarray) -> np.ndarray:
    """Largest WCC movement between each pair of neighbouring lines of sorted sets on the
    circle, with the best cyclic matching: ``(lines - 1,)``."""
    a, b = wcc[:-1], wcc[1:]
    best = np.full(len(a), np.inf)
    for shift in range(wcc.shape[1]):
        d = np.abs(a - np.roll(b, shift, axis=1))
        best = np.minimum(best, np.minimum(d, 1 - d).max(axis=1))
    return best


@dataclass(frozen=True)
class Z2Result:
    """Z2 from both loop directions (0: loops along k1 pumped in k2; 1: the reverse)."""

    by_direction: tuple[int, int]
    converged: tuple[bool, bool]
    n_lines: tuple[int, int]
    min_gap: float  # smallest largest-gap of the WCCs along the pump (small: unreliable)

    @property
    def z2(self) -> int:
        """The Z2 index; raises if the two directions disagree or a direction did not converge."""
        if not all(self.converged):
            raise TopogenError(f"Z2 did not converge (lines per direction: {self.n_lines})")
        if self.by_direction[0] != self.by_direction[1]:
            raise TopogenError(
                f"Z2 differs between loop directions {self.by_direction}: the model is broken "
                "or the k meshes too coarse"
            )
        return self.by_direction[0]


def _z2_direction(
    hk: HamiltonianLike,
    nocc: int,
    n_k: int,
    n_loop: int,
    direction: int,
    positions: np.ndarray | None,
    gap_tol: float,
    move_tol: float,
    max_lines: int,
) -> tuple[int, bool, int, float]:
    """Largest-gap rule with refinement between lines whose WCCs move too far (as z2pack)."""
    pump = np.linspace(0.0, 0.5, n_loop)
    wcc = _wcc_lines(hk, nocc, n_k, direction, pump, positions, gap_tol)
    while True:
        _, size = _largest_gap(wcc)
        far = _moves(wcc) > move_tol * np.minimum(size[:-1], size[1:])
        bad = np.flatnonzero(far & (np.diff(pump) > 1e-4)).tolist()
        if not bad or len(pump) + len(bad) > max_lines:
            break
        extra = (pump[bad] + pump[np.array(bad) + 1]) / 2
        new = _wcc_lines(hk, nocc, n_k, direction, extra, positions, gap_tol)
        order = np.argsort(np.concatenate([pump, extra]), kind="stable")
        pump, wcc = np.concatenate([pump, extra])[order], np.concatenate([wcc, new])[order]
    mid, size = _largest_gap(wcc)
    lo, hi = np.minimum(mid[:-1], mid[1:]), np.maximum(mid[:-1], mid[1:])
    crossings = ((wcc[1:] > lo[:, None]) & (wcc[1:] < hi[:, None])).sum()
    return int(crossings % 2), not bad, len(pump), float(size.min())


def z2_invariant(
    hk: HamiltonianLike,
    nocc: int,
    n_k: int = 48,
    n_loop: int = 21,
    positions: np.ndarray | None = None,
    kramers_tol: float | None = 1e-4,
    gap_tol: float = 1e-6,
    move_tol: float = 0.3,
    max_lines: int = 400,
) -> Z2Result:
    """Z2 index by the largest-gap rule (Soluyanov & Vanderbilt 2011), in both loop directions.

    Counts, as the pumping parameter goes 0 -> 1/2, the WCCs crossed by the midpoint of the
    largest gap; lines are added where WCCs move more than ``move_tol`` times the gap.
    Refuses a model whose Kramers splitting at the TRIM exceeds ``kramers_tol`` (``None``:
    no check), since Z2 is undefined without time reversal.
    """
    if kramers_tol is not None:
        split = kramers_splitting(hk)
        if split > kramers_tol:
            raise TopogenError(
                f"the model breaks time reversal (Kramers splitting {split:.3g} at the TRIM > "
                f"{kramers_tol:g}): Z2 is undefined"
            )
    if positions is None and isinstance(hk, TBModel):
        positions = hk.positions
    results = [
        _z2_direction(hk, nocc, n_k, n_loop, d, positions, gap_tol, move_tol, max_lines)
        for d in (0, 1)
    ]
    return Z2Result(
        by_direction=(results[0][0], results[1][0]),
        converged=(results[0][1], results[1][1]),
        n_lines=(results[0][2], results[1][2]),
        min_gap=min(r[3] for r in results),
    )
