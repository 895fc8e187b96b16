"""Slab geometry: is a periodic cell a 2D layer (vacuum along c), and normalising it.

A cell is treated as two-dimensional when the atoms leave a gap of at least
:data:`MIN_VACUUM` Angstrom along c, measured perpendicular to the a-b plane (a bulk layered
crystal has van der Waals gaps of about 3 A, a slab in a 2D database 10-30 A). The layer
lies in the a-b plane; c may be tilted. :func:`canonical_slab` puts a slab in the one
canonical 2D frame (a along x, b in the xy plane, c along z perpendicular to the layer) that
the relaxation mask (in-plane cell only), the phonons and the DFT input all assume. Used by
the phonon defaults (6x6x1 supercells for slabs) and the slab-aware structure matcher.
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


class SlabFrameError(ValueError):
    """A cell that cannot be put in the canonical 2D frame (the message says why)."""


MIN_SIN_GAMMA = 0.05  # sin of the in-plane angle below which the a-b cell is degenerate (~3 deg)


def _rotation(a: np.ndarray, normal: np.ndarray) -> np.ndarray:
    """Rows: x along ``a``, z along ``normal``, y completing a right-handed frame."""
    e1 = a / np.linalg.norm(a)
    return np.stack([e1, np.cross(normal, e1), normal])


def orient(structure: Any) -> Any:
    """The same crystal, rigidly rotated so that a lies along x and b in the xy plane (b_y > 0).

    Lattice vectors and fractional coordinates are kept (only the Cartesian frame turns); c
    keeps any tilt. For slabs :func:`canonical_slab` also puts c along z.
    """
    from pymatgen.core import Lattice, Structure

    m = np.asarray(structure.lattice.matrix, dtype=float)
    n = np.cross(m[0], m[1])
    rot = _rotation(m[0], n / np.linalg.norm(n))
    if np.allclose(rot, np.eye(3), atol=1e-12):
        return structure
    return Structure(
        Lattice(m @ rot.T),
        structure.species,
        structure.frac_coords,
        site_properties=structure.site_properties,
        properties=getattr(structure, "properties", None),
    )


def canonical_slab(
    structure: Any, vacuum: float | None = None, *, min_vacuum: float = MIN_VACUUM
) -> Any:
    """A slab in the one canonical 2D frame: a along x, b in the xy plane, c along +z and
    perpendicular to the layer, the layer centred along c.

    c is replaced by its component along the layer normal (the height of the cell). For a
    slab that is an equivalent cell: the layer (atoms at their Cartesian positions, made
    contiguous across the cell boundary) and its in-plane lattice are unchanged; only the
    in-plane offset between periodic copies of the layer, across ``min_vacuum`` or more of
    vacuum, goes. ``vacuum=None`` keeps the vacuum; a number sets it (c = thickness +
    vacuum). Raises :class:`SlabFrameError` with the reason for a degenerate in-plane cell
    (a, b nearly parallel, or not finite) or a vacuum gap thinner than ``min_vacuum``
    (no gap at all: not a layer).
    """
    from pymatgen.core import Lattice, Structure

    m = np.asarray(structure.lattice.matrix, dtype=float)
    frac = np.array(structure.frac_coords, dtype=float)
    if len(structure) == 0 or not (np.isfinite(m).all() and np.isfinite(frac).all()):
        raise SlabFrameError("no atoms or non-finite lattice/coordinates")
    la, lb = np.linalg.norm(m[0]), np.linalg.norm(m[1])
    n = np.cross(m[0], m[1])
    if la * lb == 0 or np.linalg.norm(n) / (la * lb) < MIN_SIN_GAMMA:
        gamma = structure.lattice.gamma
        raise SlabFrameError(f"degenerate in-plane cell (gamma = {gamma:.2f} deg)")
    normal = n / np.linalg.norm(n)
    height = abs(float(m[2] @ normal))
    gap, start = largest_gap(frac[:, 2])
    if gap * height < min_vacuum:
        raise SlabFrameError(
            f"vacuum along c {gap * height:.2f} A thinner than {min_vacuum:g} A: not a 2D layer"
        )
    frac[:, 2] = np.mod(frac[:, 2] - start, 1.0)  # the layer now starts at 0 without a wrap
    h = (frac @ m) @ normal
    cart = frac @ m - np.outer(h, normal)  # in-plane parts; heights set below
    thickness = float(h.max() - h.min())
    c = height if vacuum is None else thickness + vacuum
    z = h - (h.max() + h.min()) / 2 + c / 2
    rot = _rotation(m[0], normal)
    lattice = Lattice(np.array([rot @ m[0], rot @ m[1], [0.0, 0.0, c]]))
    xyz = cart @ rot.T
    xyz[:, 2] = z
    return Structure(
        lattice,
        structure.species,
        xyz,
        coords_are_cartesian=True,
        to_unit_cell=True,
        site_properties=structure.site_properties,
        properties=getattr(structure, "properties", None),
    )


def with_vacuum(structure: Any, vacuum: float = MATCH_VACUUM) -> Any:
    """The layer of a slab in the canonical frame (:func:`canonical_slab`) with ``vacuum``
    Angstrom of vacuum. In-plane lattice and the atoms' relative positions are kept exactly."""
    return canonical_slab(structure, vacuum, min_vacuum=0.0)


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
