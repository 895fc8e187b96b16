"""Textbook tight-binding models (Haldane, Kane-Mele, BHZ) as :class:`TBModel` controls.

All spinful models order their basis as Wannier90 spinors do by default: orbital-major with
spin interleaved, ``(orb1 up, orb1 down, orb2 up, ...)``, i.e. ``kron(orbital, spin)``.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from topogen.topology.hr import TBModel

__all__ = ["bhz", "bhz_pair", "haldane", "kane_mele"]

_SX = np.array([[0, 1], [1, 0]], dtype=complex)
_SY = np.array([[0, -1j], [1j, 0]], dtype=complex)
_SZ = np.array([[1, 0], [0, -1]], dtype=complex)
_ID = np.eye(2, dtype=complex)

# Honeycomb: a1 = (1, 0), a2 = (1/2, sqrt(3)/2); A at (1/3, 1/3), B at (2/3, 2/3) (reduced).
_HONEYCOMB = np.array([[1.0, 0.0], [0.5, np.sqrt(3) / 2]])
_TAU = np.array([[1 / 3, 1 / 3], [2 / 3, 2 / 3]])
_NN = [(0, 0), (-1, 0), (0, -1)]  # B at tau_B + R is a nearest neighbour of A at tau_A
_NNN = [(1, 0), (0, 1), (-1, 1)]  # same-sublattice neighbours (the others are their negatives)


class _Hoppings:
    """Accumulates t(R)[m, n] = <m, 0|H|n, R> and keeps t(-R) = t(R)^+ by construction."""

    def __init__(self, nw: int) -> None:
        self.nw = nw
        self.t: dict[tuple[int, int, int], np.ndarray] = defaultdict(
            lambda: np.zeros((nw, nw), dtype=complex)
        )

    def onsite(self, block: np.ndarray) -> None:
        self.t[(0, 0, 0)] += block

    def hop(self, r: tuple[int, int], block: np.ndarray) -> None:
        """Add ``block`` to t(R) and its adjoint to t(-R) (R != 0)."""
        self.t[(r[0], r[1], 0)] += block
        self.t[(-r[0], -r[1], 0)] += block.conj().T

    def model(self, positions: np.ndarray, source: str) -> TBModel:
        keys = sorted(self.t)
        return TBModel(
            r_vectors=np.array(keys),
            hoppings=np.array([self.t[key] for key in keys]),
            positions=positions,
            source=source,
        )


def _cart(reduced: np.ndarray) -> np.ndarray:
    return np.asarray(reduced, dtype=float) @ _HONEYCOMB


def _chirality(sub: int, r: tuple[int, int]) -> int:
    """Haldane's nu = sgn(d1 x d2)_z for the hop from (sub, R) to (sub, 0) via its shared neighbour.

    d1, d2 are the two nearest-neighbour bonds traversed; nu = +1 is a left (counter-clockwise)
    turn with a1 x a2 along +z.
    """
    start, end = _cart(_TAU[sub] + r), _cart(_TAU[sub])
    other = _TAU[1 - sub]
    for shift in np.ndindex(5, 5):
        mid = _cart(other + np.array(shift) - 2)
        if np.isclose(np.linalg.norm(mid - start), 1 / np.sqrt(3)) and np.isclose(
            np.linalg.norm(end - mid), 1 / np.sqrt(3)
        ):
            d1, d2 = mid - start, end - mid
            return int(np.sign(d1[0] * d2[1] - d1[1] * d2[0]))
    raise AssertionError("no shared neighbour")  # pragma: no cover


def _positions(tau: np.ndarray, spinful: bool) -> np.ndarray:
    pos = np.column_stack([tau, np.zeros(len(tau))])
    return np.repeat(pos, 2, axis=0) if spinful else pos


def haldane(t1: float = 1.0, t2: float = 0.1, phi: float = np.pi / 2, m: float = 0.0) -> TBModel:
    """Haldane's honeycomb model, basis (A, B).

    H = t1 sum_<ij> c_i^+ c_j + t2 sum_<<ij>> exp(i nu_ij phi) c_i^+ c_j + M sum_i xi_i n_i,
    with xi = +1 on A and -1 on B, and nu_ij = sgn(d1 x d2)_z for the two bonds d1, d2 an
    electron traverses going from j to i (+1 counter-clockwise; a1 = (1, 0),
    a2 = (1/2, sqrt3/2)). Topological (|C| = 1) for |M| < 3 sqrt(3) |t2 sin(phi)|; with the
    convention of :func:`~topogen.topology.invariants.chern_number`, the lower band has
    C = -1 for 0 < phi < pi, t1 > 0, t2 > 0 and M = 0 (C = +1 for -pi < phi < 0).
    """
    acc = _Hoppings(2)
    acc.onsite(np.diag([m, -m]).astype(complex))
    for r in _NN:
        block = np.zeros((2, 2), dtype=complex)
        block[0, 1] = t1
        acc.hop(r, block)
    for r in _NNN:
        block = np.diag([t2 * np.exp(1j * phi * _chirality(s, r)) for s in (0, 1)])
        acc.hop(r, block)
    return acc.model(
        _positions(_TAU, spinful=False), f"haldane(t1={t1}, t2={t2}, phi={phi}, M={m})"
    )


def kane_mele(
    t: float = 1.0, lambda_so: float = 0.06, lambda_v: float = 0.0, lambda_r: float = 0.0
) -> TBModel:
    """Kane-Mele graphene model, basis (A up, A down, B up, B down).

    H = t sum_<ij> c_i^+ c_j + i lambda_so sum_<<ij>> nu_ij c_i^+ s_z c_j
        + i lambda_r sum_<ij> c_i^+ (s x d_ij)_z c_j + lambda_v sum_i xi_i n_i,
    with nu_ij as in :func:`haldane` and d_ij the unit bond vector from j to i. For
    lambda_r = 0 it is a Z2 insulator when lambda_v < 3 sqrt(3) lambda_so (Kane & Mele 2005:
    lambda_so = 0.06 t, lambda_r = 0.05 t, lambda_v = 0.1 t is topological, 0.4 t trivial).
    """
    acc = _Hoppings(4)
    acc.onsite(np.kron(np.diag([lambda_v, -lambda_v]), _ID).astype(complex))
    for r in _NN:
        d = _cart(_TAU[0]) - _cart(_TAU[1] + r)  # bond from B (at R) to A (at 0)
        d = d / np.linalg.norm(d)
        orbital = np.zeros((2, 2))
        orbital[0, 1] = 1.0
        spin = t * _ID + 1j * lambda_r * (_SX * d[1] - _SY * d[0])
        acc.hop(r, np.kron(orbital, spin))
    for r in _NNN:
        orbital = np.diag([_chirality(s, r) for s in (0, 1)]).astype(float)
        acc.hop(r, np.kron(orbital, 1j * lambda_so * _SZ))
    return acc.model(
        _positions(_TAU, spinful=True),
        f"kane_mele(t={t}, lambda_so={lambda_so}, lambda_v={lambda_v}, lambda_r={lambda_r})",
    )


def bhz(
    a: float = 1.0,
    b: float = 1.0,
    m: float = 1.0,
    c: float = 0.0,
    d: float = 0.0,
    delta: float = 0.0,
) -> TBModel:
    """Bernevig-Hughes-Zhang model on the square lattice, basis (E up, E down, H up, H down).

    Spin-up block h(k) = eps(k) + d(k).sigma on (E, H) with d = (A sin kx, A sin ky,
    M - 2B(2 - cos kx - cos ky)), eps = C - 2D(2 - cos kx - cos ky); spin down is h*(-k).
    ``delta`` adds the time-reversal-symmetric coupling Delta tau_y s_y that breaks S_z
    conservation. Each spin block has |C| = 1 for 0 < M/B < 4 or 4 < M/B < 8 (opposite signs),
    C = 0 for M/B < 0 or M/B > 8.
    """
    acc = _Hoppings(4)

    def spin_up_down(up: np.ndarray, down: np.ndarray) -> np.ndarray:
        """Embed 2x2 orbital blocks for spin up and down into the interleaved 4x4 basis."""
        out = np.zeros((4, 4), dtype=complex)
        out[0::2, 0::2] = up
        out[1::2, 1::2] = down
        return out

    onsite = (c - 4 * d) * np.eye(2) + (m - 4 * b) * _SZ
    acc.onsite(spin_up_down(onsite, onsite.conj()) + delta * np.kron(_SY, _SY))
    for axis, r in enumerate([(1, 0), (0, 1)]):
        pauli = _SX if axis == 0 else _SY
        # 2 cos k = e^{ik} + e^{-ik}, sin k = (e^{ik} - e^{-ik}) / 2i; hop() adds the e^{-ik} part
        up = d * np.eye(2) + b * _SZ + a * pauli / 2j
        acc.hop(r, spin_up_down(up, up.conj()))  # h*(-k): its e^{ik} coefficient is conj(up)
    pos = np.zeros((4, 3))
    return acc.model(pos, f"bhz(A={a}, B={b}, M={m}, C={c}, D={d}, delta={delta})")


def bhz_pair(
    coupling: float = 0.2, delta: float = 0.1, spin_phi: float = np.pi / 2, **bhz_args: float
) -> TBModel:
    """Two copies of :func:`bhz` (same sign of C_s each), basis ``kron(copy, bhz basis)``.

    ``coupling`` adds the time-reversal-symmetric inter-copy term g copy_y (x) 1 (x) s_x that
    breaks S_z conservation; the spins are then rotated about y so that the axis of conserved
    spin in the uncoupled model, z, becomes n = sin(spin_phi) z + cos(spin_phi) x. With the
    defaults (M = B = 1): |C_s| = 2 along n, Z2 = 0 (a quantum spin Hall phase of spin Chern
    number 2, like the paper's MnS and HTaClO2, that Z2 alone calls trivial).
    """
    single = bhz(delta=delta, **bhz_args)
    hoppings = np.array([np.kron(_ID, h) for h in single.hoppings])
    origin = [tuple(r) for r in single.r_vectors].index((0, 0, 0))
    hoppings[origin] += coupling * np.kron(_SY, np.kron(_ID, _SX))
    alpha = np.pi / 2 - spin_phi  # rotation about y taking z to n
    spin = np.cos(alpha / 2) * _ID - 1j * np.sin(alpha / 2) * _SY
    rot = np.kron(np.eye(4), spin)
    hoppings = rot @ hoppings @ rot.conj().T
    return TBModel(
        r_vectors=single.r_vectors,
        hoppings=hoppings,
        positions=np.zeros((8, 3)),
        source=f"bhz_pair(coupling={coupling}, delta={delta}, spin_phi={spin_phi}, {bhz_args})",
    )
