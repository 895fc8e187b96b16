"""Structural and compositional validity of generated crystals.

Structural validity (CDVAE, Xie et al. 2022; Liu et al. 2024): every interatomic distance,
periodic images included, at least :data:`MIN_DISTANCE` (0.5 A). Checked here, in order,
each failure with its own reason: atoms present, finite coordinates and lattice, a cell that
is not degenerate (volume >= 0.1 A^3, as in CDVAE), lattice vectors at most
:data:`MAX_LENGTH` long, angles between :data:`MIN_ANGLE` and :data:`MAX_ANGLE`, a density
that a solid can have (slabs: area per atom in [1, 40] A^2; bulk: volume per atom in
[1.5, 200] A^3; the densest known solids have ~2.6 A^2 (graphene) and ~5.7 A^3 (diamond)),
then the distances.

Compositional validity: SMACT charge neutrality with the Pauling electronegativity test, as
CDVAE's ``smact_validity`` (used unchanged by Liu et al.): a composition is valid when some
assignment of known oxidation states to its elements is charge neutral and orders the
electronegativities (cations less electronegative than anions). Two cases count as valid
without that test, as in those papers: a single element, and compositions of metals only
(alloys and intermetallics, ``include_alloys=True``; SMACT's list of metals). Oxidation
states: SMACT 4's default set (ICSD 2024 occurrences) unless ``oxidation_states_set`` is
given; the papers used the older SMACT default, ``"smact14"``, which rejects some well-known
2D materials (SnF, SnI, Hf2N), so it is not the default here.
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass
from typing import Any

from topogen.structure.sanity import (
    AREA_PER_ATOM,
    MAX_ANGLE,
    MAX_LENGTH,
    MIN_ANGLE,
    MIN_DISTANCE,
    VOLUME_PER_ATOM,
    CellLimits,
    structure_problem,
)

MIN_VOLUME = 0.1  # Angstrom^3, as in CDVAE


@dataclass(frozen=True)
class ValidityOptions:
    min_distance: float = MIN_DISTANCE
    max_length: float = MAX_LENGTH
    min_angle: float = MIN_ANGLE
    max_angle: float = MAX_ANGLE
    area_per_atom: tuple[float, float] = AREA_PER_ATOM
    volume_per_atom: tuple[float, float] = VOLUME_PER_ATOM
    use_pauling_test: bool = True
    include_alloys: bool = True
    oxidation_states_set: str | None = None
    check_composition: bool = True


def crystal_problem(structure: Any, opts: ValidityOptions | None = None) -> str | None:
    """Why ``structure`` (pymatgen Structure) is not a valid generated crystal, or None:
    :func:`topogen.structure.sanity.structure_problem` with the cell limits of ``opts``."""
    o = opts or ValidityOptions()
    limits = CellLimits(o.max_length, o.min_angle, o.max_angle, o.area_per_atom, o.volume_per_atom)
    return structure_problem(
        structure, o.min_distance, max_z=None, min_volume=MIN_VOLUME, limits=limits
    )


@functools.lru_cache(maxsize=65536)
def _smact(formula: str, pauling: bool, alloys: bool, ox_set: str | None) -> bool:
    from smact.screening import smact_validity

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return bool(
            smact_validity(
                formula,
                use_pauling_test=pauling,
                include_alloys=alloys,
                oxidation_states_set=ox_set,
            )
        )


def composition_problem(composition: Any, opts: ValidityOptions | None = None) -> str | None:
    """Why a composition (pymatgen Composition or formula) fails SMACT validity, or None."""
    from pymatgen.core import Composition

    o = opts or ValidityOptions()
    comp = Composition(composition) if isinstance(composition, str) else composition
    if any(abs(v - round(v)) > 1e-6 for v in comp.values()):
        return f"partial occupancies in {comp.formula}"
    formula = comp.reduced_formula
    try:
        ok = _smact(formula, o.use_pauling_test, o.include_alloys, o.oxidation_states_set)
    except Exception as exc:  # an element SMACT has no data for
        return f"no SMACT data for {formula}: {type(exc).__name__}: {exc}"
    if ok:
        return None
    if o.use_pauling_test and _smact(formula, False, o.include_alloys, o.oxidation_states_set):
        return (
            f"{formula}: charge neutral only with oxidation states that fail the "
            "Pauling electronegativity test (SMACT)"
        )
    return f"{formula}: no charge-neutral combination of oxidation states (SMACT)"


def validity(structure: Any, opts: ValidityOptions | None = None) -> tuple[bool, str]:
    """(valid, reason): structural first, then compositional validity."""
    o = opts or ValidityOptions()
    try:
        problem = crystal_problem(structure, o)
    except Exception as exc:  # a structure pymatgen cannot even analyse
        problem = f"structure check failed: {type(exc).__name__}: {exc}"
    if problem:
        return False, f"structure: {problem}"
    if o.check_composition:
        problem = composition_problem(structure.composition, o)
        if problem:
            return False, f"composition: {problem}"
    return True, "valid structure and composition"
