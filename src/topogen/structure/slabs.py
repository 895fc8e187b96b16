"""Slab geometry: is a periodic cell a 2D layer (vacuum along c), and normalising it.

A cell is treated as two-dimensional when the atoms leave a gap of at least
:data:`MIN_VACUUM` Angstrom along c, measured perpendicular to the a-b plane (a bulk layered
crystal has van der Waals gaps of about 3 A, a slab in a 2D database 10-30 A). The layer
lies in the a-b plane; c may be tilted. Used by the phonon defaults (6x6x1 supercells for
slabs), the relaxation mask (in-plane cell only) and the slab-aware structure matcher.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

MIN_VACUUM = 7.0  # Angstrom; a gap along c at least this wide makes a cell a slab
MATCH_VACUUM = 20.0  # Angstrom; the vacuum slabs get before structure matching
VACUUM = 18.0  # Angstrom of vacuum along c in every cell built by slab()


def c_height(lattice: Any) -> float:
    """Height of the cell along the normal of the a-b plane (Angstrom)."""
    m = np.asarray(getattr(lattice, "matrix", lattice), dtype=float)
    area = float(np.linalg.norm(np.cross(m[0], m[1])))
    return float(abs(np.linalg.det(m)) / area) if area > 0 else 0.0


def largest_gap(frac_c: np.ndarray) -> tuple[float, float]:
    """(width of the largest gap between fractional c coordinates, where the layer starts)."""
    z = np.sort(np.mod(frac_c, 1.0))
    gaps = np.diff(np.concatenate([z, [z[0] + 1.0]]))
    k = int(np.argmax(gaps))
    start = z[(k + 1) % len(z)]
    return float(gaps[k]), float(start)


def vacuum_along_c(structure: Any) -> float:
    """Width of the empty region along c, perpendicular to the layer (Angstrom)."""
    if len(structure) == 0:
        return 0.0
    gap, _ = largest_gap(np.asarray(structure.frac_coords)[:, 2])
    return gap * c_height(structure.lattice)


def layer_thickness(structure: Any) -> float:
    """Extent of the atoms perpendicular to the a-b plane (Angstrom)."""
    return c_height(structure.lattice) - vacuum_along_c(structure)


def is_2d(structure: Any, min_vacuum: float = MIN_VACUUM) -> bool:
    """True for a slab: at least ``min_vacuum`` Angstrom of vacuum along c."""
    coords = np.asarray(structure.frac_coords, dtype=float)
    if len(structure) == 0 or not np.isfinite(coords).all():
        return False
    return vacuum_along_c(structure) >= min_vacuum


def orient(structure: Any) -> Any:
    """The same crystal, rotated so that a lies along x and b in the xy plane.

    Fractional coordinates are unchanged; only the Cartesian frame turns (pymatgen's
    ``Lattice.from_parameters`` convention). The strain mask that keeps a slab's vacuum
    (:data:`topogen.calc.relax.SLAB_MASK`) assumes this orientation.
    """
    from pymatgen.core import Lattice, Structure

    m = structure.lattice.matrix
    if abs(m[0, 1]) < 1e-8 and abs(m[0, 2]) < 1e-8 and abs(m[1, 2]) < 1e-8 and m[2, 2] > 0:
        return structure
    lat = structure.lattice
    new = Lattice.from_parameters(*lat.abc, *lat.angles)
    if np.linalg.det(lat.matrix) < 0:  # left-handed cell: keep it so, mirror through z
        new = Lattice(new.matrix * np.array([1.0, 1.0, -1.0]))
    return Structure(
        new,
        structure.species,
        structure.frac_coords,
        site_properties=structure.site_properties,
        properties=getattr(structure, "properties", None),
    )


def with_vacuum(structure: Any, vacuum: float = MATCH_VACUUM) -> Any:
    """The layer of a slab in a new cell with c perpendicular to it and ``vacuum`` Angstrom
    of vacuum (the layer centred along c). In-plane lattice and the atoms' relative
    positions are kept exactly."""
    from pymatgen.core import Lattice, Structure

    s = orient(structure)
    m = s.lattice.matrix
    frac = np.array(s.frac_coords, dtype=float)
    _, start = largest_gap(frac[:, 2])
    frac[:, 2] = np.mod(frac[:, 2] - start, 1.0)  # the layer now starts at 0 without a wrap
    cart = frac @ m
    normal = np.cross(m[0], m[1])
    normal /= np.linalg.norm(normal)
    height = cart @ normal
    thickness = float(height.max() - height.min())
    new_c = thickness + vacuum
    cart = cart + (vacuum / 2 - height.min()) * normal
    lattice = Lattice(np.array([m[0], m[1], new_c * normal]))
    return Structure(lattice, s.species, cart, coords_are_cartesian=True)


def slab(
    a_vec: Sequence[float],
    b_vec: Sequence[float],
    species: Sequence[str],
    frac_xy: Sequence[Sequence[float]],
    z: Sequence[float],
    vacuum: float = VACUUM,
) -> Any:
    """A layer in the xy plane, centred along c, with ``vacuum`` Angstrom above and below.

    ``frac_xy`` are fractional in-plane coordinates, ``z`` Cartesian heights (Angstrom).
    """
    from pymatgen.core import Lattice, Structure

    z = np.asarray(z, dtype=float)
    thickness = float(z.max() - z.min())
    c = thickness + vacuum
    matrix = np.array([[*a_vec[:2], 0.0], [*b_vec[:2], 0.0], [0.0, 0.0, c]])
    fz = (z - z.min() + vacuum / 2) / c
    coords = [[x, y, w] for (x, y), w in zip(frac_xy, fz, strict=True)]
    return Structure(Lattice(matrix), list(species), coords)
