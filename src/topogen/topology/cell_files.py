"""The files that come with a ``_hr.dat`` model: its lattice (a plain 3 x 3 file or the
``unit_cell_cart`` block of a Wannier90 ``.win``) and its Wannier centres (``_centres.xyz``),
which give the orbital positions that set the gauge of Wilson loops.

Lattice vectors are rows, in Angstrom (a ``.win`` block may say ``bohr``). The model's plane
is that of a1 and a2 (k3 = 0), as everywhere in :mod:`topogen.topology`.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from topogen.errors import TopogenError

__all__ = ["read_centres", "read_lattice"]

BOHR = 0.529177210903  # Angstrom (CODATA 2018), Wannier90's unit "bohr"


def _floats(path: Path, line_no: int, text: str, n: int) -> list[float]:
    parts = text.split()
    try:
        values = [float(v) for v in parts[:n]]
    except ValueError:
        values = []
    if len(values) != n:
        raise TopogenError(f"{path}:{line_no}: expected {n} numbers, got {text.strip()!r}")
    return values


def _win_lattice(path: Path, lines: list[str]) -> np.ndarray:
    lower = [ln.split("!")[0].split("#")[0].strip().lower() for ln in lines]
    words = [ln.split()[:2] for ln in lower]
    try:
        start = words.index(["begin", "unit_cell_cart"])
        end = words.index(["end", "unit_cell_cart"], start)
    except ValueError:
        raise TopogenError(
            f"{path}: no complete 'begin unit_cell_cart' ... 'end unit_cell_cart' block"
        ) from None
    body = [(i, ln) for i, ln in enumerate(lower[start + 1 : end], start + 2) if ln]
    scale = 1.0
    if body and body[0][1] in ("bohr", "ang"):
        scale = BOHR if body[0][1] == "bohr" else 1.0
        body = body[1:]
    if len(body) != 3:
        raise TopogenError(f"{path}: unit_cell_cart must hold 3 lattice vectors, got {len(body)}")
    return scale * np.array([_floats(path, i, ln, 3) for i, ln in body])


def read_lattice(path: str | os.PathLike[str]) -> np.ndarray:
    """(3, 3) lattice vectors (rows, Angstrom) from a ``.win`` (its ``unit_cell_cart``) or a
    plain file of three rows of three numbers (``#`` comments allowed)."""
    p = Path(path)
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise TopogenError(f"{p}: cannot read the lattice ({exc})") from exc
    if any("unit_cell_cart" in ln.lower() for ln in lines):
        cell = _win_lattice(p, lines)
    else:
        rows = [(i, ln.split("#")[0]) for i, ln in enumerate(lines, 1) if ln.split("#")[0].strip()]
        if len(rows) != 3:
            raise TopogenError(
                f"{p}: a lattice file holds 3 rows of 3 numbers (Angstrom), found {len(rows)} rows"
            )
        cell = np.array([_floats(p, i, ln, 3) for i, ln in rows])
    if abs(np.linalg.det(cell)) < 1e-6:
        raise TopogenError(f"{p}: the lattice vectors are linearly dependent (zero volume)")
    return cell


def read_centres(path: str | os.PathLike[str], lattice: np.ndarray, num_wann: int) -> np.ndarray:
    """(num_wann, 3) reduced positions of the Wannier centres in a Wannier90
    ``_centres.xyz`` (Cartesian Angstrom, lines ``X x y z``; the atoms that follow are
    ignored)."""
    p = Path(path)
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise TopogenError(f"{p}: cannot read the Wannier centres ({exc})") from exc
    xs = [
        _floats(p, i, ln.split(None, 1)[1] if len(ln.split()) > 1 else "", 3)
        for i, ln in enumerate(lines, 1)
        if ln.split()[:1] == ["X"]
    ]
    if len(xs) != num_wann:
        raise TopogenError(
            f"{p}: {len(xs)} Wannier centres ('X' lines) for a model of {num_wann} orbitals"
        )
    return np.asarray(xs) @ np.linalg.inv(np.asarray(lattice, dtype=float))
