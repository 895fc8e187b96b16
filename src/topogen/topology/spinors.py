"""Spinor bases: spin operators, time reversal, and the Kramers checks that gate Z2 results.

Two basis orderings are supported for ``2 * n_orb`` spinor orbitals:

* ``"interleaved"`` (default; Wannier90 spinor projections): ``(o1 up, o1 down, o2 up, ...)``;
* ``"blocks"``: all spin-up orbitals first, then all spin-down ones ``(o1 up, o2 up, ...,
  o1 down, o2 down, ...)``.

Time reversal is Theta = U K with U = i s_y on each orbital (Theta^2 = -1).
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from topogen.errors import TopogenError
from topogen.topology.hr import HamiltonianLike, TBModel, as_hamiltonian

__all__ = [
    "TRIM_2D",
    "is_time_reversal_symmetric",
    "kramers_splitting",
    "spin_operator",
    "time_reversal_matrix",
]

SpinOrder = Literal["interleaved", "blocks"]
TRIM_2D = np.array([[0, 0, 0], [0.5, 0, 0], [0, 0.5, 0], [0.5, 0.5, 0]])
_PAULI = {
    "x": np.array([[0, 1], [1, 0]], dtype=complex),
    "y": np.array([[0, -1j], [1j, 0]], dtype=complex),
    "z": np.array([[1, 0], [0, -1]], dtype=complex),
}


def _embed(num_wann: int, pauli: np.ndarray, order: SpinOrder) -> np.ndarray:
    if num_wann % 2:
        raise TopogenError(f"a spinor basis needs an even number of orbitals, got {num_wann}")
    eye = np.eye(num_wann // 2)
    if order == "interleaved":
        return np.kron(eye, pauli)
    if order == "blocks":
        return np.kron(pauli, eye)
    raise TopogenError(f"unknown spin order {order!r}; use 'interleaved' or 'blocks'")


def spin_operator(num_wann: int, axis: str = "z", order: SpinOrder = "interleaved") -> np.ndarray:
    """Pauli matrix s_axis (eigenvalues +-1, no hbar/2) on ``num_wann`` spinor orbitals."""
    if axis not in _PAULI:
        raise TopogenError(f"unknown spin axis {axis!r}; use 'x', 'y' or 'z'")
    return _embed(num_wann, _PAULI[axis], order)


def time_reversal_matrix(num_wann: int, order: SpinOrder = "interleaved") -> np.ndarray:
    """U of Theta = U K: i s_y on every orbital."""
    return _embed(num_wann, 1j * _PAULI["y"], order)


def kramers_splitting(hk: HamiltonianLike, k_points: np.ndarray | None = None) -> float:
    """Largest splitting between the would-be Kramers pairs (bands 2i, 2i+1) at ``k_points``.

    ``k_points`` default to the four 2D TRIM. Basis independent: a time-reversal-symmetric
    spinful model gives ~0 whatever its Wannier gauge.
    """
    k = TRIM_2D if k_points is None else np.asarray(k_points, dtype=float).reshape(-1, 3)
    energies = np.linalg.eigvalsh(as_hamiltonian(hk)(k))
    if energies.shape[-1] % 2:
        raise TopogenError(f"Kramers pairs need an even number of bands, got {energies.shape[-1]}")
    return float(np.abs(energies[:, 1::2] - energies[:, 0::2]).max())


def is_time_reversal_symmetric(
    hk: HamiltonianLike, tol: float = 1e-6, order: SpinOrder = "interleaved"
) -> bool:
    """Whether U H(k)* U^+ = H(-k) within ``tol`` (max abs), U from :func:`time_reversal_matrix`.

    For a :class:`TBModel` this is checked exactly on the hoppings (U t(R)* U^+ = t(R));
    for a callable, on a grid of k points. It tests the symmetry in the given basis, so a model
    whose orbitals are not time-reversal pairs in ``order`` fails; :func:`kramers_splitting` is
    the basis-independent (necessary, not sufficient) check.
    """
    if isinstance(hk, TBModel):
        u = time_reversal_matrix(hk.num_wann, order)
        mapped = u @ hk.hoppings.conj() @ u.conj().T
        return bool(np.abs(mapped - hk.hoppings).max() <= tol)
    grid = (np.stack(np.meshgrid(*[np.arange(5) / 5 + 0.013] * 2, indexing="ij"), -1)).reshape(
        -1, 2
    )
    k = np.column_stack([grid, np.zeros(len(grid))])
    h = as_hamiltonian(hk)
    plus, minus = h(k), h(-k)
    u = time_reversal_matrix(plus.shape[-1], order)
    return bool(np.abs(u @ plus.conj() @ u.conj().T - minus).max() <= tol)
