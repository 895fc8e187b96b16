"""Physical sanity checks shared by every reader: finite numbers, a real cell, no overlaps."""

from __future__ import annotations

from typing import Any

import numpy as np

MIN_DISTANCE = 0.5  # Angstrom; the papers' structural-validity threshold
MAX_Z = 94  # the elements CHGNet (the funnel's force field) was trained on: H..Pu


def structure_problem(structure: Any, min_distance: float = MIN_DISTANCE) -> str | None:
    """A one-line reason why ``structure`` (Structure or Molecule) is unusable, or None."""
    if len(structure) == 0:
        return "no atoms"
    for el in structure.composition.elements:
        z = getattr(el, "Z", None)
        if z is None or not 1 <= z <= MAX_Z:
            return f"element {el} outside the supported set (Z = 1..{MAX_Z})"
    coords = np.asarray(structure.cart_coords, dtype=float)
    if not np.isfinite(coords).all():
        return "non-finite atomic coordinates"
    lattice = getattr(structure, "lattice", None)
    if lattice is not None:
        matrix = np.asarray(lattice.matrix, dtype=float)
        if not np.isfinite(matrix).all():
            return "non-finite lattice vectors"
        if abs(np.linalg.det(matrix)) < 1e-3:
            return f"degenerate cell (volume {abs(np.linalg.det(matrix)):.2e} A^3)"
    if len(structure) > 1:
        dmat = np.asarray(structure.distance_matrix, dtype=float)
        np.fill_diagonal(dmat, np.inf)
        dmin = float(dmat.min())
        if dmin < min_distance:
            i, j = np.unravel_index(int(dmat.argmin()), dmat.shape)
            return (
                f"overlapping atoms: {structure[i].species_string}{i}-"
                f"{structure[j].species_string}{j} at {dmin:.3f} A < {min_distance} A"
            )
    if lattice is not None and len(structure) >= 1:
        # An atom too close to its own periodic image (tiny cell vector).
        shortest = float(min(lattice.abc))
        if shortest < min_distance:
            return f"cell vector {shortest:.3f} A shorter than {min_distance} A"
    return None
