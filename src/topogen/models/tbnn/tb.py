"""The symmetry-enhanced tight-binding model (the paper's Sec. III): orbitals at the rotation
centre (Wyckoff 1a) carrying irreps of C_N, hoppings to shells of neighbours with the
wallpaper group's rotation (and, for class AI, time reversal) imposed by construction.

Orbitals are real functions of angular momentum m: ``s`` (m = 0), ``p`` (1), ``d`` (2),
``f`` (3 on p6; 2 is the B irrep of p4, written ``b``); 0 < m < N/2 gives a pair (cos, sin).
The hopping matrix of a representative R0 of each shell is a linear combination of an
orthonormal basis of the matrices allowed by its constraints (hermiticity within the orbit,
D^(N/2) X D^(-N/2) = X^dagger, and real entries under spinless time reversal), and the rest
of the orbit follows as t(C^j R0) = D^j t(R0) D^-j; on-site: D X D^-1 = X = X^dagger. Every
parameter is therefore independent and every H(k) the network produces has the symmetry, its
essential degeneracies exact.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import scipy.linalg
import torch

from topogen.errors import TopogenError
from topogen.models.tbnn.symmetry import Lattice
from topogen.topology.batched import bloch_hamiltonian, eigh

__all__ = ["TBModel", "angular_momenta"]

_M = {"s": 0, "p": 1, "d": 2, "f": 3, "b": None}


def angular_momenta(lattice: Lattice, orbitals: str) -> list[int]:
    """Angular momentum of each orbital of a spec such as ``"s s p p d d f"``."""
    out = []
    for name in orbitals.split():
        if name not in _M:
            raise TopogenError(f"unknown orbital {name!r} (expected s, p, d, f or b)")
        m = lattice.order // 2 if name == "b" else _M[name]
        if m is None or 2 * m > lattice.order:
            raise TopogenError(f"orbital {name!r} is not an irrep of C{lattice.order}")
        out.append(m)
    return out


def _rep(lattice: Lattice, ms: list[int], power: int = 1) -> np.ndarray:
    """Real orthogonal matrix of C_N^power on the orbitals."""
    blocks = []
    for m in ms:
        angle = 2 * math.pi * m * power / lattice.order
        c, s = math.cos(angle), math.sin(angle)
        blocks.append(
            np.array([[c]]) if 2 * m in (0, lattice.order) else np.array([[c, -s], [s, c]])
        )
    return scipy.linalg.block_diag(*blocks)


def _sectors(lattice: Lattice, ms: list[int], power: int) -> tuple[np.ndarray, np.ndarray]:
    """Unitary U whose columns diagonalise C_N^power on the orbitals, and their labels j
    (eigenvalue exp(2 pi i j / order), the convention of :func:`.symmetry.group_labels`)."""
    order = lattice.order // power
    cols, labels, start = [], [], 0
    dim = sum(1 if 2 * m in (0, lattice.order) else 2 for m in ms)
    for m in ms:
        if 2 * m in (0, lattice.order):
            v = np.zeros(dim, complex)
            v[start] = 1.0
            cols.append(v)
            labels.append(m % order)
            start += 1
            continue
        for sign in (1, -1):  # (1, -i sign)/sqrt2: eigenvalue exp(i sign m alpha power)
            v = np.zeros(dim, complex)
            v[start], v[start + 1] = 1 / math.sqrt(2), -1j * sign / math.sqrt(2)
            cols.append(v)
            labels.append((sign * m) % order)
        start += 2
    return np.array(cols).T, np.array(labels)


def _allowed(constraints: list, n: int, complex_entries: bool) -> list[np.ndarray]:
    """Orthonormal basis of the real-linear space of n x n matrices X with f(X) = 0 for
    every linear f in ``constraints``."""
    dof = 2 * n * n if complex_entries else n * n

    def matrix(x: np.ndarray) -> np.ndarray:
        return (x[: n * n] + 1j * x[n * n :] if complex_entries else x + 0j).reshape(n, n)

    columns = []
    for i in range(dof):
        x = np.zeros(dof)
        x[i] = 1.0
        out = np.concatenate([f(matrix(x)).ravel() for f in constraints])
        columns.append(np.concatenate([out.real, out.imag]))
    space = scipy.linalg.null_space(np.array(columns).T)
    return [matrix(space[:, j]) for j in range(space.shape[1])]


@dataclass
class TBModel:
    """A symmetric TB model of ``lattice`` with ``orbitals`` at 1a and hoppings up to
    ``radius`` (units of a); ``time_reversal``: spinless TRS (class AI, real hoppings),
    else class A/D (complex hoppings)."""

    lattice: Lattice
    orbitals: str = "s s p p d d f"
    radius: float = 2.0
    time_reversal: bool = True
    ms: list[int] = field(init=False)
    r_vectors: np.ndarray = field(init=False)  # (nR, 3) fractional, R = 0 first
    basis: np.ndarray = field(init=False)  # (P, nR, n, n) complex: t(R) = sum_p c_p basis[p]
    shell_of: np.ndarray = field(init=False)  # (P,) shell index of each parameter (0: on-site)
    shell_rows: list[slice] = field(init=False)  # rows of r_vectors of each shell (0: R = 0)
    # per device: (parameters, rows, basis block) of each shell (see _shell_blocks)
    _blocks: dict[str, list[tuple[torch.Tensor, slice, torch.Tensor]]] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        self.ms = angular_momenta(self.lattice, self.orbitals)
        d = _rep(self.lattice, self.ms)
        n = d.shape[0]
        half = np.linalg.matrix_power(d, self.lattice.order // 2)
        cplx = not self.time_reversal
        shells = self.lattice.shells(self.radius)
        self.r_vectors = np.zeros((1 + sum(len(s) for s in shells), 3))
        onsite = _allowed([lambda x: d @ x @ d.T - x, lambda x: x - x.conj().T], n, cplx)
        per_shell = [onsite]
        hermitian = _allowed([lambda x: half @ x @ half.T - x.conj().T], n, cplx)
        per_shell += [hermitian] * len(shells)
        total = sum(len(b) for b in per_shell)
        self.basis = np.zeros((total, len(self.r_vectors), n, n), complex)
        self.shell_of = np.zeros(total, dtype=np.int64)
        self.shell_rows = [slice(0, 1)]
        p, row = 0, 1
        for b in onsite:
            self.basis[p, 0] = b
            p += 1
        for s, (orbit, mats) in enumerate(zip(shells, per_shell[1:], strict=True), start=1):
            self.r_vectors[row : row + len(orbit), :2] = orbit
            for b in mats:
                dj = np.eye(n)
                for j in range(len(orbit)):
                    self.basis[p, row + j] = dj @ b @ dj.T
                    dj = d @ dj
                self.shell_of[p] = s
                p += 1
            self.shell_rows.append(slice(row, row + len(orbit)))
            row += len(orbit)

    @property
    def n_orbitals(self) -> int:
        return self.basis.shape[-1]

    @property
    def n_params(self) -> int:
        return self.basis.shape[0]

    def rep(self, power: int = 1) -> np.ndarray:
        return _rep(self.lattice, self.ms, power)

    def sectors(self, point: str) -> tuple[np.ndarray, np.ndarray]:
        """(U, labels) of the rotation that fixes a high-symmetry point."""
        return _sectors(self.lattice, self.ms, self.lattice.points[point][1])

    def _shell_blocks(self, device: torch.device) -> list[tuple[torch.Tensor, slice, torch.Tensor]]:
        """Per shell: its parameters, its rows of ``r_vectors`` and its basis matrices
        ``(P_s, nR_s * n * n)`` (real under time reversal), on ``device``."""
        key = str(device)
        if key not in self._blocks:
            blocks = []
            for s, rows in enumerate(self.shell_rows):
                p = np.flatnonzero(self.shell_of == s)
                b = self.basis[p][:, rows].reshape(len(p), -1)
                b = b.real if self.time_reversal else b
                blocks.append(
                    (torch.as_tensor(p, device=device), rows, torch.as_tensor(b, device=device))
                )
            self._blocks[key] = blocks
        return self._blocks[key]

    def hoppings(self, params: torch.Tensor) -> torch.Tensor:
        """t(R) ``(..., nR, n, n)`` of parameters ``(..., P)``: one product per shell (a
        parameter moves only the hoppings of its own shell; 7x faster than one dense product
        over all shells for the p4 model of the Chern case, forward and backward)."""
        lead, n = params.shape[:-1], self.n_orbitals
        x = params.reshape(-1, self.n_params).to(torch.float64)
        dtype = torch.float64 if self.time_reversal else torch.complex128
        out = x.new_zeros(len(x), len(self.r_vectors), n, n, dtype=dtype)
        for p, rows, block in self._shell_blocks(params.device):
            xs = x[:, p]
            part = (
                xs @ block
                if self.time_reversal
                else torch.complex(xs @ block.real, xs @ block.imag)
            )
            out[:, rows] = part.reshape(len(x), -1, n, n)
        return out.reshape(*lead, len(self.r_vectors), n, n)

    def hamiltonian(self, params: torch.Tensor, k: np.ndarray | torch.Tensor) -> torch.Tensor:
        """H(k) ``(..., n_k, n, n)`` at reduced ``k (n_k, 2)``."""
        k = torch.as_tensor(np.asarray(k, dtype=float), device=params.device)
        k3 = torch.cat([k, torch.zeros_like(k[:, :1])], dim=1)
        r = torch.as_tensor(self.r_vectors, device=params.device)
        return bloch_hamiltonian(r, self.hoppings(params), k3)

    def bands(self, params: torch.Tensor, k: np.ndarray | torch.Tensor) -> torch.Tensor:
        """All eigenvalues ``(..., n_k, n)``, differentiable (degenerate-safe ``eigh``)."""
        return eigh(self.hamiltonian(params, k))[0]

    def sector_energies(
        self, params: torch.Tensor, point: str, h: torch.Tensor | None = None
    ) -> dict[int, torch.Tensor]:
        """Eigenvalues of H at a high-symmetry point in each rotation sector (label j ->
        ``(..., dim_j)`` ascending); ``h``: H ``(..., n, n)`` at the point when computed
        already (then ``params`` is not used)."""
        u, labels = self.sectors(point)
        if h is None:
            k = np.array([self.lattice.points[point][0]])
            h = self.hamiltonian(params, k)[..., 0, :, :]
        ut = torch.as_tensor(u, dtype=h.dtype, device=h.device)
        h = ut.mH @ h @ ut
        out = {}
        for j in np.unique(labels):
            idx = torch.as_tensor(np.flatnonzero(labels == j), device=h.device)
            out[int(j)] = eigh(h[..., idx[:, None], idx[None, :]])[0]
        return out
