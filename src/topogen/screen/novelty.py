"""Uniqueness among candidates and novelty against a training table (StructureMatcher).

Pre-filter: two structures are compared only when they share a bucket, ``(reduced formula,
2D or bulk)``, so the cost grows with the bucket sizes, not with the square of the number of
candidates (1e5 candidates spread over many formulas take seconds to bucket). Site counts may
differ: the matchers compare primitive cells (``primitive_cell=True``) and try supercells
(``attempt_supercell=True``), so a 2x1 supercell of a known crystal is not new (CDVAE's and
Liu et al.'s metrics compared only equal sizes and counted such supercells as new). Within a
bucket each candidate is compared with the unique ones found so far (slabs: only those whose
area per atom is within 35%, which the tight lattice tolerance implies).

A comparison that makes pymatgen raise is not "no match": :meth:`Index.lookup` returns the
error with the result, and the funnel records it as the step's reason (verdict ``failed``
when no other structure matched).

Matchers
    Bulk: pymatgen's defaults (``ltol=0.2, stol=0.3, angle_tol=5``), as in the papers.
    Slabs (:func:`topogen.structure.slabs.is_2d`): pymatgen's defaults cannot be used: ``stol``
    is relative to (V/n)^(1/3), which the vacuum inflates, and ``scale=True`` scales the
    vacuum with the layer. Each slab is first put in the canonical frame with c perpendicular
    to the layer and :data:`topogen.structure.slabs.MATCH_VACUUM` (20 A) of vacuum, so two
    copies of a layer with different vacuum or a tilted c are equal, then compared with
    ``ltol=0.1, stol=0.1, angle_tol=3, scale=False`` (the setting of
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

    return StructureMatcher(
        ltol=0.1, stol=0.1, angle_tol=3, scale=False, primitive_cell=True, attempt_supercell=True
    )


def bulk_matcher() -> Any:
    from pymatgen.analysis.structure_matcher import StructureMatcher

    return StructureMatcher(primitive_cell=True, attempt_supercell=True)


@dataclass
class _Entry:
    id: str
    structure: Any  # as compared (slabs: vacuum normalised)
    area: float | None  # area per atom for slabs


Key = tuple[str, bool]


@dataclass
class Lookup:
    """Outcome of :meth:`Index.lookup`: the matching id (or None) and, when pymatgen raised
    on some comparison, the first such error (one line)."""

    match: str | None = None
    error: str | None = None
    n_errors: int = 0

    def reason(self, what: str, after: str = "") -> tuple[str, str]:
        """(verdict, reason) of a funnel step: ``what`` names the kind of match."""
        if self.match is not None:
            return "fail", f"{what} {self.match}{after} (StructureMatcher)"
        if self.error is not None:
            return "failed", (
                f"StructureMatcher raised on {self.n_errors} comparison(s), no match "
                f"otherwise: {self.error}"
            )
        return "pass", ""


def bucket_key(structure: Any) -> Key:
    """(reduced formula, is 2D): only structures with equal keys can match."""
    return structure.composition.reduced_formula, is_2d(structure)


def _prepared(id_: str, structure: Any, two_d: bool) -> _Entry:
    if not two_d:
        return _Entry(id_, structure, None)
    s = with_vacuum(structure, MATCH_VACUUM)
    m = s.lattice.matrix
    return _Entry(id_, s, float(np.linalg.norm(np.cross(m[0], m[1]))) / len(s))


@dataclass
class Index:
    """Structures by bucket, for repeated ``find`` calls (a training set, or uniques so far)."""

    buckets: dict[Key, list[_Entry]] = field(default_factory=dict)
    comparisons: int = 0
    undecodable: list[str] = field(default_factory=list)  # ids of rows left out

    def add(self, id_: str, structure: Any, key: Key | None = None) -> None:
        key = key or bucket_key(structure)
        self.buckets.setdefault(key, []).append(_prepared(id_, structure, key[1]))

    def __len__(self) -> int:
        return sum(len(v) for v in self.buckets.values())

    def find(self, structure: Any, key: Key | None = None) -> str | None:
        """Id of the first indexed structure that matches ``structure``, or None."""
        return self.lookup(structure, key).match

    def lookup(self, structure: Any, key: Key | None = None) -> Lookup:
        """The first indexed structure that matches ``structure``, and any matcher error."""
        key = key or bucket_key(structure)
        entries = self.buckets.get(key)
        out = Lookup()
        if not entries:
            return out
        probe = _prepared("", structure, key[1])
        match = slab_matcher() if key[1] else bulk_matcher()
        for e in entries:
            if probe.area is not None and e.area is not None:
                ratio = probe.area / e.area
                if not 1 / AREA_RATIO <= ratio <= AREA_RATIO:
                    continue
            self.comparisons += 1
            try:
                if match.fit(e.structure, probe.structure):
                    out.match = e.id
                    return out
            except Exception as exc:  # recorded: pymatgen fails on some degenerate pairs
                out.n_errors += 1
                if out.error is None:
                    msg = " ".join(f"{type(exc).__name__}: {exc}".split())[:200]
                    out.error = f"with {e.id}: {msg}"
        return out


def duplicates(ids: Sequence[str], structures: Sequence[Any]) -> list[Lookup]:
    """For each structure, the :class:`Lookup` of an earlier equal one (``match``: it is a
    duplicate of that one). A structure without a match joins the unique ones."""
    seen = Index()
    out: list[Lookup] = []
    for id_, s in zip(ids, structures, strict=True):
        key = bucket_key(s)
        found = seen.lookup(s, key)
        if found.match is None:
            seen.add(id_, s, key)
        out.append(found)
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
    are left out; rows that do not decode are left out and their ids listed in
    :attr:`Index.undecodable` (the funnel reports them)."""
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
                index.undecodable.append(str(id_))
                continue
            if hasattr(s, "lattice"):
                index.add(str(id_), s)
    return index


def novelty(structures: Sequence[Any], training: Index) -> list[str | None]:
    """For each structure, the id of a matching training structure (not novel) or None."""
    return [training.find(s) for s in structures]
