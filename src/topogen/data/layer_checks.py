"""Checks of a relaxed 2D prototype layer: still one bonded piece, same thickness, same
space group, not collapsed (:func:`relaxed_problem`), used by :mod:`topogen.data.prototypes`."""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from topogen.structure.sanity import structure_problem
from topogen.structure.slabs import layer_thickness

MIN_DISTANCE = 0.7  # Angstrom; closer atoms after relaxation reject a structure
MAX_THICKENING = 3.0  # Angstrom; a layer that grows thicker than this is rejected
COLLAPSE_THICKENING = 1.0  # Angstrom; with COLLAPSE_SHRINK, a high-buckled collapse
COLLAPSE_SHRINK = 0.15  # fraction of the in-plane area
SYMPREC = 0.1  # Angstrom; spglib tolerance when comparing space groups
BOND_FACTOR = 1.3  # atoms closer than 1.3 x (sum of covalent radii) are bonded


def covalent_radius(symbol: str) -> float:
    from ase.data import atomic_numbers, covalent_radii

    return float(covalent_radii[atomic_numbers[symbol]])


def n_fragments(structure: Any, factor: float = BOND_FACTOR) -> int:
    """Number of bonded pieces (bond: closer than ``factor`` x the covalent radii sum)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    radii = np.array([covalent_radius(s.specie.symbol) for s in structure])
    cutoff = float(factor * 2 * radii.max())
    i, j, _, dist = structure.get_neighbor_list(cutoff)
    keep = dist < factor * (radii[i] + radii[j])
    n = len(structure)
    graph = coo_matrix((np.ones(int(keep.sum())), (i[keep], j[keep])), shape=(n, n))
    return int(connected_components(graph, directed=False)[0])


def space_group(structure: Any, symprec: float = SYMPREC) -> str:
    """International symbol and number, e.g. ``P-6m2 (187)``."""
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    with warnings.catch_warnings():  # spglib's notice about its error handling
        warnings.simplefilter("ignore", DeprecationWarning)
        sga = SpacegroupAnalyzer(structure, symprec=symprec)
        return f"{sga.get_space_group_symbol()} ({sga.get_space_group_number()})"


def in_plane_area(structure: Any) -> float:
    return float(abs(np.linalg.det(structure.lattice.matrix[:2, :2])))


def relaxed_problem(ideal: Any, after: Any, energy: float | None) -> str | None:
    """Why a relaxed 2D structure is unusable, or None.

    ``ideal`` is the unrattled starting cell of the prototype. Checks, in order: finite energy,
    no atoms closer than :data:`MIN_DISTANCE`, c (and so the vacuum) unchanged, no atom left
    the layer (thickness), one bonded piece, same space group as the prototype (a structure
    that distorted or rearranged is no longer that prototype, and its literature label would
    not apply), and no high-buckled collapse (thicker by > 1 A while the area shrinks > 15%:
    CHGNet has no low-buckled minimum for Ge/Sn/Pb honeycombs and pulls them into a dense
    high-buckled layer without necessarily changing the space group).
    """
    if energy is None or not math.isfinite(energy):
        return "non-finite energy"
    problem = structure_problem(after, MIN_DISTANCE)
    if problem:
        return problem
    if abs(after.lattice.c - ideal.lattice.c) > 1e-3:
        return f"c changed from {ideal.lattice.c:.2f} to {after.lattice.c:.2f} A"
    t0, t1 = layer_thickness(ideal), layer_thickness(after)
    if t1 > t0 + MAX_THICKENING:
        return f"layer thickness grew from {t0:.2f} to {t1:.2f} A (atoms left the layer)"
    pieces = n_fragments(after)
    if pieces > 1:
        return f"fell apart into {pieces} bonded pieces"
    g0, g1 = space_group(ideal), space_group(after)
    if g0 != g1:
        return f"left its prototype: space group {g0} -> {g1}"
    shrink = 1 - in_plane_area(after) / in_plane_area(ideal)
    if t1 - t0 > COLLAPSE_THICKENING and shrink > COLLAPSE_SHRINK:
        return (
            f"left its prototype: collapsed (area -{100 * shrink:.0f}%, "
            f"thickness {t0:.2f} -> {t1:.2f} A)"
        )
    return None
