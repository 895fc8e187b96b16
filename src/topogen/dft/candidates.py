"""What goes to DFT: one small JSON file per structure, and the controls with known answers.

A *candidate file* is one row of a structure table as JSON: ``{"id", "source", "formula",
"structure" (pymatgen ``as_dict()``), "properties"}``. The DFT stage gives each candidate a
folder named by :func:`candidate_name` (the id made safe for paths and wildcards).

*Controls* are 2D crystals whose answer is known from the literature table ``topo2d``
(``resources/topo2d_labels.csv``): they go through the same chain, so that every run shows
that it gives Z2 = 1 and 0 where it must. Their geometries are fixed here (buckled (111)
bilayers, measured to pass every check of the chain at reduced settings; see
``tests/test_dft.py``), and their expected Z2 is read from the label table.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from topogen.errors import TopogenError
from topogen.io.atomic import write_text
from topogen.io.labels import LABELS_FILE, read_labels
from topogen.io.tables import LoadResult, Record, decode_structure
from topogen.structure.sanity import MIN_DISTANCE, structure_problem
from topogen.structure.slabs import SlabFrameError, canonical_slab, slab

__all__ = [
    "CONTROLS",
    "CONTROL_PREFIX",
    "Control",
    "candidate_name",
    "control",
    "read_candidate",
    "slab_candidates",
    "unique_names",
    "write_candidate",
]

CONTROL_PREFIX = "control-"


@dataclass(frozen=True)
class Control:
    """A buckled honeycomb bilayer with a literature lattice constant and buckling (A)."""

    name: str
    element: str
    a: float
    buckling: float
    geometry: str  # where the numbers come from
    prototype: str = "honeycomb-X2"

    def record(self, labels: str | os.PathLike[str] = LABELS_FILE, vacuum: float = 15.0) -> Record:
        """The control as a record with its expected Z2 (``topo2d``) from ``labels``."""
        topo2d = read_labels(labels).get((self.element, self.prototype))
        if topo2d is None:
            raise TopogenError(
                f"{labels}: no topo2d label for ({self.element}, {self.prototype}); a control "
                "needs a known answer"
            )
        a1, a2 = [self.a, 0.0], [-self.a / 2, self.a * math.sqrt(3) / 2]
        h = self.buckling / 2
        frac = [[1 / 3, 2 / 3], [2 / 3, 1 / 3]]
        structure = slab(a1, a2, [self.element] * 2, frac, [h, -h], vacuum)
        properties = {
            "control": True,
            "prototype": self.prototype,
            "topo2d": topo2d,
            "expected_z2": topo2d,
            "geometry": self.geometry,
            "labels": Path(labels).name,
        }
        return Record(CONTROL_PREFIX + self.name, "control", structure, properties)


# PBE-level geometries; with them the chain at reduced settings passes every check and gives
# Bi2 Z2 = 1 (a QSH insulator), Sb2 Z2 = 0 (trivial; not 0 by construction: its 5s shell is
# excluded and its 5p bands are disentangled from the conduction bands, as for Bi2).
CONTROLS = {
    c.name: c
    for c in (
        Control("Bi2", "Bi", 4.34, 1.73, "buckled Bi(111) bilayer, a = 4.34 A, buckling 1.73 A"),
        Control("Sb2", "Sb", 4.12, 1.65, "buckled Sb(111) bilayer, a = 4.12 A, buckling 1.65 A"),
    )
}


def control(name: str) -> Control:
    try:
        return CONTROLS[name]
    except KeyError:
        raise TopogenError(f"unknown control {name!r}; known: {', '.join(CONTROLS)}") from None


# ---------------------------------------------------------------- candidate files


def candidate_name(identifier: str) -> str:
    """A path- and wildcard-safe folder name for a structure id."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", identifier).strip("._") or "candidate"
    return name[:120]


def unique_names(ids: Iterable[str]) -> list[str]:
    """:func:`candidate_name` of each id, with ``-2``, ``-3`` ... where two would collide."""
    seen: dict[str, int] = {}
    out = []
    for identifier in ids:
        base = candidate_name(identifier)
        n = seen.get(base, 0) + 1
        seen[base] = n
        out.append(base if n == 1 else f"{base}-{n}")
    return out


def write_candidate(record: Record, path: str | os.PathLike[str]) -> None:
    data = {
        "id": record.id,
        "source": record.source,
        "formula": record.formula,
        "structure": record.structure.as_dict(),
        "properties": record.properties,
    }
    write_text(path, json.dumps(data, indent=1, default=str) + "\n")


def read_candidate(path: str | os.PathLike[str]) -> Record:
    """A candidate file; a clear error naming the file if it is not one."""
    path = Path(path)
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        return Record(
            str(data["id"]),
            str(data.get("source", "")),
            decode_structure(json.dumps(data["structure"])),
            dict(data.get("properties") or {}),
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise TopogenError(f"{path}: not a candidate file ({type(exc).__name__}: {exc})") from None


def slab_candidates(
    records: Iterable[Record], source: str, min_distance: float = MIN_DISTANCE
) -> LoadResult:
    """``records`` in the canonical 2D frame that pw.x's 2D set-up needs
    (:func:`~topogen.structure.slabs.canonical_slab`: c perpendicular to the layer, vacuum
    kept), for structures straight from a generator; one that is no slab or fails the
    structural check (:func:`~topogen.structure.sanity.structure_problem`) is rejected with
    the reason (``source``: the table, for the quarantine file)."""
    result = LoadResult()
    for i, r in enumerate(records):
        reason = structure_problem(r.structure, min_distance)
        if reason is None:
            try:
                r = Record(r.id, r.source, canonical_slab(r.structure), r.properties)
            except SlabFrameError as exc:
                reason = f"not a 2D slab: {exc}"
        result.admit(source, str(i), r.id, reason, None if reason else r)
    return result
