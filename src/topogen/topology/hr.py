"""Tight-binding models: the Wannier90 ``_hr.dat`` format and the Bloch Hamiltonian H(k).

Conventions (those of Wannier90): ``hoppings[r, m, n] = <m, 0|H|n, R_r>`` and

    H(k)_mn = sum_R exp(2 pi i k.R) hoppings[R]_mn,

with k in fractional (reduced) reciprocal coordinates. This is the periodic gauge,
H(k + G) = H(k); orbital positions do not enter H(k), only the Wilson loops
(:func:`topogen.topology.invariants.wannier_centres`).

File layout of ``_hr.dat``: a header line, ``num_wann``, ``nrpts``, the ``nrpts`` Wigner-Seitz
degeneracies 15 per line, then ``nrpts * num_wann**2`` lines ``R1 R2 R3 m n Re Im`` (m, n
1-based). The file holds ``ndegen(R) * H(R)``; :func:`read_hr` divides by the degeneracy.
:func:`apply_ws_distance` applies Wannier90's minimal-image correction (``_wsvec.dat``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from topogen.errors import TopogenError
from topogen.io.atomic import atomic_open

__all__ = [
    "HamiltonianLike",
    "TBModel",
    "apply_ws_distance",
    "as_hamiltonian",
    "hamiltonian",
    "read_hr",
    "write_hr",
]


@dataclass(frozen=True)
class TBModel:
    """A tight-binding model: hoppings ``(nR, nw, nw)`` at lattice vectors ``(nR, 3)``.

    ``hoppings`` are already divided by ``degeneracies`` (kept only to write the file back).
    ``positions``: optional orbital centres ``(nw, 3)`` in reduced coordinates, used as the
    gauge of Wilson loops. ``source`` names where the model came from, for error messages.
    """

    r_vectors: np.ndarray
    hoppings: np.ndarray
    positions: np.ndarray | None = None
    degeneracies: np.ndarray | None = None
    source: str = "<model>"
    header: str = field(default="written by topogen", compare=False)

    def __post_init__(self) -> None:
        r = np.asarray(self.r_vectors, dtype=np.int64).reshape(-1, 3)
        h = np.asarray(self.hoppings, dtype=np.complex128)
        if h.ndim != 3 or h.shape[0] != r.shape[0] or h.shape[1] != h.shape[2]:
            raise TopogenError(
                f"{self.source}: hoppings must have shape (nR, nw, nw) matching {r.shape[0]} "
                f"R vectors, got {h.shape}"
            )
        object.__setattr__(self, "r_vectors", r)
        object.__setattr__(self, "hoppings", h)
        if self.positions is not None:
            pos = np.asarray(self.positions, dtype=float)
            if pos.shape != (h.shape[1], 3):
                raise TopogenError(
                    f"{self.source}: positions must have shape ({h.shape[1]}, 3), got {pos.shape}"
                )
            object.__setattr__(self, "positions", pos)
        if self.degeneracies is not None:
            deg = np.asarray(self.degeneracies, dtype=np.int64)
            if deg.shape != (r.shape[0],) or (deg < 1).any():
                raise TopogenError(
                    f"{self.source}: degeneracies must be {r.shape[0]} integers >= 1"
                )
            object.__setattr__(self, "degeneracies", deg)

    @property
    def num_wann(self) -> int:
        return int(self.hoppings.shape[1])


def hamiltonian(model: TBModel, k: np.ndarray, hermitian_tol: float = 1e-4) -> np.ndarray:
    """H(k) for k points ``(..., 3)`` (or ``(..., 2)``, k3 = 0) in reduced coordinates.

    Returns ``(..., nw, nw)``. Raises :class:`TopogenError` if H(k) is not hermitian within
    ``hermitian_tol`` (absolute; ``_hr.dat`` files hold 6 decimals, so round-off is ~1e-6).
    """
    k = np.asarray(k, dtype=float)
    if k.shape[-1] == 2:
        k = np.concatenate([k, np.zeros((*k.shape[:-1], 1))], axis=-1)
    if k.shape[-1] != 3:
        raise TopogenError(f"{model.source}: k points must have 2 or 3 components, got {k.shape}")
    phases = np.exp(2j * np.pi * (k.reshape(-1, 3) @ model.r_vectors.T))
    nw = model.num_wann
    h = (phases @ model.hoppings.reshape(len(model.r_vectors), nw * nw)).reshape(-1, nw, nw)
    error = np.abs(h - h.conj().swapaxes(-1, -2)).max(initial=0.0)
    if error > hermitian_tol:
        raise TopogenError(
            f"{model.source}: H(k) is not hermitian (max |H - H^+| = {error:.3g} > "
            f"{hermitian_tol:g}); hoppings must satisfy t(-R) = t(R)^+"
        )
    return h.reshape(*k.shape[:-1], nw, nw)


def _fail(path: Path, line: int, reason: str) -> TopogenError:
    return TopogenError(f"{path}: line {line}: {reason}")


def _int(path: Path, line: int, text: str, what: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise _fail(path, line, f"{what} must be an integer, got {text!r}") from None


def read_hr(path: str | os.PathLike[str], positions: np.ndarray | None = None) -> TBModel:
    """Read a Wannier90 ``_hr.dat`` file; errors name the file, the line and the reason."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise TopogenError(f"{path}: cannot read _hr.dat: {exc}") from None
    if len(lines) < 3:
        raise TopogenError(f"{path}: not a _hr.dat file: fewer than 3 lines")
    num_wann = _int(path, 2, lines[1].strip(), "num_wann")
    nrpts = _int(path, 3, lines[2].strip(), "nrpts")
    if num_wann < 1 or nrpts < 1:
        raise _fail(path, 2 if num_wann < 1 else 3, "num_wann and nrpts must be positive")

    n_deg_lines = -(-nrpts // 15)
    deg: list[int] = []
    for i in range(3, 3 + n_deg_lines):
        if i >= len(lines):
            raise _fail(path, i + 1, f"file ends inside the degeneracy list ({nrpts} expected)")
        deg += [_int(path, i + 1, tok, "degeneracy") for tok in lines[i].split()]
    if len(deg) != nrpts:
        raise _fail(path, 3 + n_deg_lines, f"expected {nrpts} degeneracies, found {len(deg)}")
    if min(deg) < 1:
        raise _fail(path, 4 + deg.index(min(deg)) // 15, "degeneracies must be >= 1")

    start = 3 + n_deg_lines
    n_lines = nrpts * num_wann**2
    body = lines[start : start + n_lines]
    if len(body) < n_lines:
        raise _fail(
            path,
            len(lines) + 1,
            f"file ends early: {n_lines} hopping lines expected, {len(body)} found",
        )
    for extra, text in enumerate(lines[start + n_lines :], start=start + n_lines + 1):
        if text.strip():
            raise _fail(path, extra, f"unexpected content after {n_lines} hopping lines")
    table = _parse_body(path, body, start)

    ints = table[:, :5].astype(np.int64)
    values = table[:, 5] + 1j * table[:, 6]
    mn = ints[:, 3:5]
    bad = np.flatnonzero(((mn < 1) | (mn > num_wann)).any(axis=1))
    if bad.size:
        raise _fail(path, start + bad[0] + 1, f"orbital index out of range 1..{num_wann}")
    r_all = ints[:, :3]
    r_unique, first, inverse = np.unique(r_all, axis=0, return_index=True, return_inverse=True)
    if len(r_unique) != nrpts:
        raise TopogenError(f"{path}: {len(r_unique)} distinct R vectors, but nrpts = {nrpts}")
    order = np.argsort(first)  # keep R in the order of first appearance (matches degeneracies)
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    slot = (rank[inverse.ravel()] * num_wann + mn[:, 0] - 1) * num_wann + mn[:, 1] - 1
    _, first_of_slot = np.unique(slot, return_index=True)
    if len(first_of_slot) != n_lines:
        dup = np.setdiff1d(np.arange(n_lines), first_of_slot).min()
        raise _fail(path, start + dup + 1, "duplicate (R, m, n) entry")
    hop = np.zeros(n_lines, dtype=np.complex128)
    hop[slot] = values
    degeneracies = np.asarray(deg, dtype=np.int64)
    hoppings = hop.reshape(nrpts, num_wann, num_wann) / degeneracies[:, None, None]
    return TBModel(
        r_vectors=r_unique[order],
        hoppings=hoppings,
        positions=positions,
        degeneracies=degeneracies,
        source=str(path),
        header=lines[0].strip(),
    )


def _parse_body(path: Path, body: list[str], start: int) -> np.ndarray:
    """Parse the hopping lines into a float table ``(n, 7)``; on failure find the bad line."""
    try:
        table = np.array(" ".join(body).split(), dtype=float)
        if table.size == 7 * len(body):
            table = table.reshape(-1, 7)
            if np.isfinite(table).all() and (table[:, :5] == np.round(table[:, :5])).all():
                return table
    except ValueError:
        pass
    for i, text in enumerate(body, start=start + 1):
        tokens = text.split()
        if len(tokens) != 7:
            raise _fail(path, i, f"expected 7 fields 'R1 R2 R3 m n Re Im', got {len(tokens)}")
        for tok in tokens[:5]:
            _int(path, i, tok, "R and orbital indices")
        for tok in tokens[5:]:
            try:
                if not np.isfinite(float(tok)):
                    raise ValueError
            except ValueError:
                raise _fail(path, i, f"hopping must be a finite number, got {tok!r}") from None
    raise TopogenError(f"{path}: cannot parse the hopping lines")  # pragma: no cover


def write_hr(model: TBModel, path: str | os.PathLike[str], decimals: int = 10) -> None:
    """Atomically write ``model`` as a Wannier90 ``_hr.dat`` (values times degeneracy)."""
    nw, nr = model.num_wann, len(model.r_vectors)
    deg = model.degeneracies if model.degeneracies is not None else np.ones(nr, dtype=np.int64)
    out = [model.header.replace("\n", " "), f"{nw:12d}", f"{nr:12d}"]
    out += ["".join(f"{d:5d}" for d in deg[i : i + 15]) for i in range(0, nr, 15)]
    m, n = np.meshgrid(np.arange(nw), np.arange(nw), indexing="xy")  # m runs fastest
    width = decimals + 6
    values = np.round(model.hoppings * deg[:, None, None], decimals) + 0.0  # no "-0.000"
    for r, h in zip(model.r_vectors, values, strict=True):
        prefix = f"{r[0]:5d}{r[1]:5d}{r[2]:5d}"
        out += [
            f"{prefix}{a + 1:5d}{b + 1:5d}{h[a, b].real:{width}.{decimals}f}"
            f"{h[a, b].imag:{width}.{decimals}f}"
            for a, b in zip(m.ravel(), n.ravel(), strict=True)
        ]
    with atomic_open(path) as fh:
        fh.write("\n".join(out) + "\n")


HamiltonianLike = TBModel | Callable[[np.ndarray], np.ndarray]


def as_hamiltonian(hk: HamiltonianLike) -> Callable[[np.ndarray], np.ndarray]:
    """A callable ``k (..., 3) -> H (..., nw, nw)`` from a :class:`TBModel` or such a callable.

    A callable is checked on one batch: it must return one square matrix per k point.
    """
    if isinstance(hk, TBModel):
        return lambda k: hamiltonian(hk, k)
    if not callable(hk):
        raise TopogenError(f"expected a TBModel or a callable k -> H(k), got {type(hk).__name__}")

    def checked(k: np.ndarray) -> np.ndarray:
        k = np.asarray(k, dtype=float)
        h = np.asarray(hk(k.reshape(-1, 3)), dtype=np.complex128)
        if h.ndim != 3 or h.shape[0] != k.reshape(-1, 3).shape[0] or h.shape[1] != h.shape[2]:
            raise TopogenError(
                f"H(k) callable must map k points (N, 3) to (N, nw, nw), got {h.shape} for N = "
                f"{k.reshape(-1, 3).shape[0]}"
            )
        return h.reshape(*k.shape[:-1], *h.shape[1:])

    return checked


def apply_ws_distance(model: TBModel, wsvec: str | os.PathLike[str]) -> TBModel:
    """The model with Wannier90's ``use_ws_distance`` correction from ``<seed>_wsvec.dat``:
    each hopping H_mn(R) is spread equally over the shortest images R + T of the pair."""
    path = Path(wsvec)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()[1:]
    except OSError as exc:
        raise TopogenError(f"{path}: cannot read: {exc}") from None
    index = {tuple(r): i for i, r in enumerate(model.r_vectors.tolist())}
    acc: dict[tuple[int, ...], np.ndarray] = {}
    i = 0
    nw = model.num_wann
    try:
        while i < len(lines):
            head = lines[i].split()
            if not head:
                i += 1
                continue
            r, m, n = tuple(int(x) for x in head[:3]), int(head[3]) - 1, int(head[4]) - 1
            nt = int(lines[i + 1])
            shifts = [[int(x) for x in lines[i + 2 + j].split()[:3]] for j in range(nt)]
            i += 2 + nt
            h = model.hoppings[index[r], m, n] / nt
            for t in shifts:
                key = (r[0] + t[0], r[1] + t[1], r[2] + t[2])
                acc.setdefault(key, np.zeros((nw, nw), dtype=complex))[m, n] += h
    except (ValueError, IndexError, KeyError) as exc:
        raise TopogenError(f"{path}: line {i + 2}: cannot read ({exc!r})") from None
    return TBModel(
        np.array(list(acc)),
        np.array(list(acc.values())),
        positions=model.positions,
        source=f"{model.source} + {path.name}",
    )
