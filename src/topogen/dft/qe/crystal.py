"""A periodic structure for pw.x: :class:`Crystal` and :meth:`Crystal.as_2d`, which puts
it in the frame ``assume_isolated='2D'`` needs (a and b in the xy plane, c along z and
perpendicular to them, the layer centred on z = 0); Monkhorst-Pack k grids.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from topogen.dft.qe import CandidateError, EspressoError
from topogen.structure.slabs import largest_gap

__all__ = ["Crystal", "full_kgrid", "kgrid_for_spacing"]


@dataclass(frozen=True)
class Crystal:
    """A periodic structure: ``cell`` rows in A, ``positions`` cartesian in A."""

    cell: np.ndarray
    symbols: tuple[str, ...]
    positions: np.ndarray

    def __post_init__(self) -> None:
        cell = np.asarray(self.cell, dtype=float).reshape(3, 3)
        pos = np.asarray(self.positions, dtype=float).reshape(-1, 3)
        if len(pos) != len(self.symbols) or not len(pos):
            raise EspressoError(f"{len(self.symbols)} symbols but {len(pos)} positions")
        if not (np.isfinite(cell).all() and np.isfinite(pos).all()):
            raise CandidateError("cell or positions hold NaN or infinite values")
        if abs(np.linalg.det(cell)) < 1e-6:
            raise CandidateError("the cell has zero volume")
        object.__setattr__(self, "cell", cell)
        object.__setattr__(self, "positions", pos)
        object.__setattr__(self, "symbols", tuple(str(s) for s in self.symbols))

    @classmethod
    def from_any(cls, structure: Any) -> Crystal:
        """From a :class:`Crystal`, ASE ``Atoms``, pymatgen ``Structure`` or its ``as_dict()``."""
        if isinstance(structure, Crystal):
            return structure
        if isinstance(structure, Mapping):
            from pymatgen.core import Structure

            structure = Structure.from_dict(dict(structure))
        if hasattr(structure, "get_cell") and hasattr(structure, "get_chemical_symbols"):
            return cls(
                np.array(structure.get_cell()),
                tuple(structure.get_chemical_symbols()),
                structure.get_positions(),
            )
        if hasattr(structure, "lattice") and hasattr(structure, "cart_coords"):
            if not structure.is_ordered:
                raise EspressoError("disordered structures (partial occupancies) are not supported")
            return cls(
                structure.lattice.matrix,
                tuple(site.specie.symbol for site in structure),
                structure.cart_coords,
            )
        raise EspressoError(f"cannot read a structure from {type(structure).__name__}")

    @property
    def elements(self) -> list[str]:
        return list(dict.fromkeys(self.symbols))

    @property
    def reduced(self) -> np.ndarray:
        return self.positions @ np.linalg.inv(self.cell)

    def thickness(self) -> float:
        """Extent of the layer perpendicular to the a-b plane (A), periodic images considered
        (:func:`topogen.structure.slabs.layer_thickness`)."""
        from pymatgen.core import Lattice, Structure

        from topogen.structure.slabs import layer_thickness

        structure = Structure(
            Lattice(self.cell), list(self.symbols), self.positions, coords_are_cartesian=True
        )
        return layer_thickness(structure)

    def as_2d(self, vacuum: float | None = None, min_vacuum: float = 6.0) -> Crystal:
        """The same crystal with a, b in the xy plane, c along +z, the layer centred on z = 0.

        ``vacuum`` (A) resets c to thickness + vacuum. Raises if c is not perpendicular to a and
        b, or if c is shorter than 2 * (thickness + ``min_vacuum`` / 2): the 2D Coulomb cutoff
        of pw.x needs c larger than twice the extent of the electrons.
        """
        a1, a2, a3 = self.cell
        normal = np.cross(a1, a2)
        normal /= np.linalg.norm(normal)
        cos = [abs(a3 @ v) / (np.linalg.norm(a3) * np.linalg.norm(v)) for v in (a1, a2)]
        if max(cos) > 1e-4:
            raise CandidateError(
                "a 2D crystal needs its third lattice vector perpendicular to the first two "
                f"(vacuum along c); angles differ from 90 deg by cos = {max(cos):.2g}"
            )
        reduced = self.reduced
        if a3 @ normal < 0:  # left-handed: swap a and b to keep c along +z
            a1, a2 = a2, a1
            reduced = reduced[:, [1, 0, 2]]
            normal = -normal
        e1 = a1 / np.linalg.norm(a1)
        e2 = np.cross(normal, e1)
        rot = np.stack([e1, e2, normal])
        thickness = self.thickness()
        c = np.linalg.norm(a3) if vacuum is None else thickness + vacuum
        cell = np.array([rot @ a1, rot @ a2, [0.0, 0.0, c]])
        cell[:2, 2] = 0.0
        # centre the layer: the middle of the largest empty gap goes to z = +-c/2
        z = reduced[:, 2] % 1.0
        gap, start = largest_gap(z)
        middle = (start - gap / 2) % 1.0
        zc = (z - middle) % 1.0  # layer now in (0, 1) with vacuum at the ends
        zc -= (zc.min() + zc.max()) / 2
        xy = reduced[:, :2] % 1.0
        pos = np.column_stack([xy @ cell[:2, :2], zc * np.linalg.norm(a3)])
        if c < 2 * thickness + min_vacuum:
            raise CandidateError(
                f"c = {c:.2f} A is too short for the 2D Coulomb cutoff of a layer "
                f"{thickness:.2f} A thick: use c >= 2 * thickness + {min_vacuum:g} A "
                f"(vacuum >= {thickness + min_vacuum:.2f} A)"
            )
        return Crystal(cell, self.symbols, pos)


def kgrid_for_spacing(cell: np.ndarray, spacing: float, two_d: bool = True) -> tuple[int, ...]:
    """Monkhorst-Pack divisions with reciprocal spacing <= ``spacing`` (1/A, no 2 pi)."""
    recip = np.linalg.inv(np.asarray(cell, dtype=float)).T
    n = [max(1, int(np.ceil(np.linalg.norm(b) / spacing))) for b in recip]
    if two_d:
        n[2] = 1
    return tuple(n)


def full_kgrid(grid: Sequence[int]) -> np.ndarray:
    """All points of an unshifted grid in reduced coordinates, last index fastest (kmesh.pl)."""
    n1, n2, n3 = (int(x) for x in grid)
    k = np.array(
        [[i / n1, j / n2, m / n3] for i in range(n1) for j in range(n2) for m in range(n3)]
    )
    return k
