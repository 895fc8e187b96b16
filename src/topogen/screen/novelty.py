"""Uniqueness among candidates and novelty against a training table (StructureMatcher).

Pre-filter: two structures are compared only when they share a bucket, ``(reduced formula,
number of sites, 2D or bulk)``, so the cost grows with the bucket sizes, not with the square
of the number of candidates (1e5 candidates spread over many formulas take seconds to
bucket). A supercell of a known structure has more sites and so counts as new, as in
CDVAE's and Liu et al.'s uniqueness/novelty, which compare structures of equal size too.
Within a bucket each candidate is compared with the unique ones found so far (slabs: only
those whose area per atom is within 35%, which the tight lattice tolerance implies).

Matchers
    Bulk: pymatgen's defaults (``ltol=0.2, stol=0.3, angle_tol=5``), as in the papers.
    Slabs (:func:`topogen.structure.slabs.is_2d`): pymatgen's defaults cannot be used: ``stol``
    is relative to (V/n)^(1/3), which the vacuum inflates, and ``scale=True`` scales the
    vacuum with the layer. Each slab is first put in a cell with c perpendicular to the layer
    and :data:`topogen.structure.slabs.MATCH_VACUUM` (20 A) of vacuum, so two copies of a layer
    with different vacuum or a tilted c are equal, then compared with ``ltol=0.1,
    stol=0.1, angle_tol=3, scale=False`` (the setting of
    :func:`topogen.data.prototypes.matcher`: ~0.4 A site tolerance; it separates 2H- from
    1T-MoS2).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from topogen.structure.slabs import MATCH_VACUUM, is_2d, with_vacuum

AREA_RATIO = 1.35  # slabs whose area per atom differs more cannot match with ltol=0.1


def slab_matcher() -> Any:
    from pymatgen.analysis.structure_matcher import StructureMatcher

    return StructureMatcher(ltol=0.1, stol=0.1, angle_tol=3, scale=False)


def bulk_matcher() -> Any:
    from pymatgen.analysis.structure_matcher import StructureMatcher

    return StructureMatcher()


@dataclass
class _Entry:
    id: str
    structure: Any  # as compared (slabs: vacuum normalised)
    area: float | None  # area per atom for slabs


def bucket_key(structure: Any) -> tuple[str, int, bool]:
    """(reduced formula, number of sites, is 2D): only structures with equal keys can match."""
    return structure.composition.reduced_formula, len(structure), is_2d(structure)


def _prepared(id_: str, structure: Any, two_d: bool) -> _Entry:
    if not two_d:
        return _Entry(id_, structure, None)
    s = with_vacuum(structure, MATCH_VACUUM)
    m = s.lattice.matrix
    return _Entry(id_, s, float(np.linalg.norm(np.cross(m[0], m[1]))) / len(s))


@dataclass
class Index:
    """Structures by bucket, for repeated ``find`` calls (a training set, or uniques so far)."""

    buckets: dict[tuple[str, int, bool], list[_Entry]] = field(default_factory=dict)
    comparisons: int = 0

    def add(self, id_: str, structure: Any, key: tuple[str, int, bool] | None = None) -> None:
        key = key or bucket_key(structure)
        self.buckets.setdefault(key, []).append(_prepared(id_, structure, key[2]))

    def __len__(self) -> int:
        return sum(len(v) for v in self.buckets.values())

    def find(self, structure: Any, key: tuple[str, int, bool] | None = None) -> str | None:
        """Id of the first indexed structure that matches ``structure``, or None."""
        key = key or bucket_key(structure)
        entries = self.buckets.get(key)
        if not entries:
            return None
        probe = _prepared("", structure, key[2])
        match = slab_matcher() if key[2] else bulk_matcher()
        for e in entries:
            if probe.area is not None and e.area is not None:
                ratio = probe.area / e.area
                if not 1 / AREA_RATIO <= ratio <= AREA_RATIO:
                    continue
            self.comparisons += 1
            try:
                if match.fit(e.structure, probe.structure):
                    return e.id
            except Exception:  # pymatgen fails on some degenerate pairs: no match
                continue
        return None


def duplicates(ids: Sequence[str], structures: Sequence[Any]) -> list[str | None]:
    """For each structure, the id of an earlier equal one (it is then a duplicate) or None."""
    seen = Index()
    out: list[str | None] = []
    for id_, s in zip(ids, structures, strict=True):
        key = bucket_key(s)
        twin = seen.find(s, key)
        if twin is None:
            seen.add(id_, s, key)
        out.append(twin)
    return out


def training_index(
    records: Iterable[tuple[str, Any]] | None = None,
    *,
    path: str | os.PathLike[str] | None = None,
    formulas: Iterable[str] | None = None,
) -> Index:
    """An :class:`Index` of training structures: ``records`` as (id, Structure) pairs, or the
    rows of the structure table at ``path`` whose reduced formula is in ``formulas`` (all
    rows when None; only those rows are decoded, so a large table costs little). Molecules
    and rows that do not decode are left out."""
    index = Index()
    if records is not None:
        for id_, s in records:
            if hasattr(s, "lattice"):
                index.add(id_, s)
    if path is not None:
        from topogen.io.tables import decode_structure, read_table

        df = read_table(path)
        if formulas is not None:
            df = df[df["formula"].isin(set(formulas))]
        for id_, text in zip(df["id"], df["structure"], strict=True):
            try:
                s = decode_structure(text)
            except Exception:
                continue
            if hasattr(s, "lattice"):
                index.add(str(id_), s)
    return index


def novelty(structures: Sequence[Any], training: Index) -> list[str | None]:
    """For each structure, the id of a matching training structure (not novel) or None."""
    return [training.find(s) for s in structures]
