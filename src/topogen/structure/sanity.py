"""Physical sanity checks of a structure: the one :func:`structure_problem` of every stage.

Always checked, in order, each failure with its own one-line reason: atoms present,
elements in the supported set (``max_z``; CHGNet, the funnel's force field, knows H..Pu),
finite lattice and coordinates, a cell that is not degenerate (volume >= ``min_volume``),
then, with ``limits`` (the stricter checks of generated crystals, :class:`CellLimits`):
lattice vectors at most ``max_length`` long, angles in [``min_angle``, ``max_angle``] and a
density that a solid can have (slabs: area per atom; bulk: volume per atom), and last the
distances: no two atoms, periodic images included, closer than ``min_distance``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from topogen.structure.slabs import is_2d

MIN_DISTANCE = 0.5  # Angstrom; the papers' structural-validity threshold
MAX_Z = 94  # the elements CHGNet (the funnel's force field) was trained on: H..Pu
MIN_VOLUME = 1e-3  # Angstrom^3; below this a cell is degenerate
MAX_LENGTH = 100.0  # Angstrom
MIN_ANGLE, MAX_ANGLE = 15.0, 165.0  # degrees
AREA_PER_ATOM = (1.0, 40.0)  # Angstrom^2, slabs
VOLUME_PER_ATOM = (1.5, 200.0)  # Angstrom^3, bulk


@dataclass(frozen=True)
class CellLimits:
    """Cell shape and density a generated crystal must have (CDVAE-style validity)."""

    max_length: float = MAX_LENGTH
    min_angle: float = MIN_ANGLE
    max_angle: float = MAX_ANGLE
    area_per_atom: tuple[float, float] = AREA_PER_ATOM
    volume_per_atom: tuple[float, float] = VOLUME_PER_ATOM


def structure_problem(
    structure: Any,
    min_distance: float = MIN_DISTANCE,
    *,
    max_z: int | None = MAX_Z,
    min_volume: float = MIN_VOLUME,
    limits: CellLimits | None = None,
) -> str | None:
    """A one-line reason why ``structure`` (Structure or Molecule) is unusable, or None.

    ``max_z=None`` skips the element check; ``limits`` adds the cell shape and density
    checks (module docstring)."""
    n = len(structure)
    if n == 0:
        return "no atoms"
    if max_z is not None:
        for el in structure.composition.elements:
            z = getattr(el, "Z", None)
            if z is None or not 1 <= z <= max_z:
                return f"element {el} outside the supported set (Z = 1..{max_z})"
    lattice = getattr(structure, "lattice", None)
    matrix = None if lattice is None else np.asarray(lattice.matrix, dtype=float)
    if matrix is not None and not np.isfinite(matrix).all():
        return "non-finite lattice vectors"
    coords = np.asarray(structure.cart_coords if matrix is None else structure.frac_coords)
    if not np.isfinite(coords).all():
        bad = int(np.flatnonzero(~np.isfinite(coords).all(axis=1))[0])
        return f"non-finite coordinates (site {bad})"
    if matrix is not None:
        volume = abs(float(np.linalg.det(matrix)))
        if volume < min_volume:
            return f"degenerate cell: volume {volume:.3g} A^3 < {min_volume:g} A^3"
        if limits is not None:
            problem = _cell_problem(structure, matrix, volume, limits)
            if problem:
                return problem
    return _overlap(structure, min_distance)


def _cell_problem(structure: Any, matrix: np.ndarray, volume: float, o: CellLimits) -> str | None:
    n = len(structure)
    lengths = np.linalg.norm(matrix, axis=1)
    if lengths.max() > o.max_length:
        return f"cell vector {lengths.max():.1f} A longer than {o.max_length:g} A"
    for (i, j), name in (((1, 2), "alpha"), ((0, 2), "beta"), ((0, 1), "gamma")):
        cos = float(matrix[i] @ matrix[j] / (lengths[i] * lengths[j]))
        angle = math.degrees(math.acos(min(1.0, max(-1.0, cos))))
        if not o.min_angle <= angle <= o.max_angle:
            return (
                f"squashed cell: {name} = {angle:.1f} deg outside "
                f"[{o.min_angle:g}, {o.max_angle:g}] deg"
            )
    if is_2d(structure):
        area = float(np.linalg.norm(np.cross(matrix[0], matrix[1]))) / n
        lo, hi = o.area_per_atom
        if not lo <= area <= hi:
            kind = "squashed" if area < lo else "sparse"
            return f"{kind} cell: area per atom {area:.2f} A^2 outside [{lo:g}, {hi:g}] A^2"
    else:
        vpa = volume / n
        lo, hi = o.volume_per_atom
        if not lo <= vpa <= hi:
            kind = "squashed" if vpa < lo else "sparse"
            return f"{kind} cell: volume per atom {vpa:.2f} A^3 outside [{lo:g}, {hi:g}] A^3"
    return None


def _overlap(structure: Any, min_distance: float) -> str | None:
    """Closest pair below ``min_distance`` (periodic images included), or None."""
    if getattr(structure, "lattice", None) is None:  # a molecule
        if len(structure) < 2:
            return None
        dmat = np.asarray(structure.distance_matrix, dtype=float)
        np.fill_diagonal(dmat, np.inf)
        a, b = np.unravel_index(int(dmat.argmin()), dmat.shape)
        d = np.array([dmat[a, b]])
        i, j, k = np.array([a]), np.array([b]), 0
    else:
        i, j, _, d = structure.get_neighbor_list(min_distance, numerical_tol=1e-8)
        close = d < min_distance
        if not close.any():
            return None
        k = int(np.argmin(np.where(close, d, np.inf)))
    if not d[k] < min_distance:
        return None
    a, b = int(i[k]), int(j[k])
    what = "its own periodic image" if a == b else f"{structure[b].species_string}{b}"
    return (
        f"overlapping atoms: {structure[a].species_string}{a} and {what} "
        f"at {d[k]:.3f} A < {min_distance:g} A"
    )
