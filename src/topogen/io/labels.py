"""Topology labels by the criterion of Tyner et al.'s Stage II, and the literature table
``resources/topo2d_labels.csv`` that ships with the workflow.

The paper labels a 2D crystal topological when its **spin Chern number is non-zero**. Every
label source states a class (the record property ``topo_class``), and the class alone decides
the binary label ``topo2d`` that Stage II trains on (:data:`TOPO2D`, the one place for it):

* ``spin_chern``: a time-reversal-symmetric quantum spin Hall insulator: Z2 = 1 (which, with
  the P S_z P spectrum gapped, is an odd spin Chern number) or a non-zero spin Chern number
  computed directly -> ``topo2d`` 1;
* ``mirror_chern``: Z2 = 0 but a non-zero mirror Chern number (C2DB's crystalline insulators).
  For a layer with the in-plane mirror M_z the two mirror sectors are the two spin sectors
  where S_z is conserved, so C_M is the spin Chern number in that limit: an even, non-zero one
  -> ``topo2d`` 1 (a source may leave the class out, e.g. ``data.c2db.topological``);
* ``chern``: a non-zero Chern number with time reversal broken (quantum anomalous Hall): these
  are not QSH insulators, so they get **no** ``topo2d`` and Stage II never sees them; the
  class stays on the record for audit;
* ``trivial``: the invariants were computed and are zero (or, in the literature table only, a
  semiconductor with normal band order; see below) -> ``topo2d`` 0.

A crystal whose topology was not computed gets neither property.

The literature table has one row per (formula, prototype): ``label`` (``1`` spin-Chern
topological, ``0`` trivial, ``chern`` Chern insulator), ``invariant`` (what the label rests on:
``Z2``, ``spin Chern``, ``mirror Chern``, ``Chern`` or ``none``) and ``reference``.
``invariant = none`` is allowed for trivial rows only: the cited work reports a semiconductor
without band inversion and computed no invariant; its spin Chern number is zero because the
insulator connects adiabatically to the atomic limit. Departure from the paper: its 962 labels
are computed spin Chern numbers; ours are literature Z2 values and C2DB's classes.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

from topogen.errors import TopogenError

LABELS_FILE = Path(__file__).resolve().parents[3] / "resources" / "topo2d_labels.csv"
COLUMNS = ("formula", "prototype", "label", "invariant", "reference")

TOPO_CLASSES = ("spin_chern", "mirror_chern", "chern", "trivial")
# topo_class -> topo2d (Stage II's binary label); a class not here gets no topo2d.
TOPO2D: dict[str, int] = {"spin_chern": 1, "mirror_chern": 1, "trivial": 0}
# The literature table's vocabulary, and the class of a topological (label 1) row's invariant.
LABELS = ("1", "0", "chern")
INVARIANTS = ("Z2", "spin Chern", "mirror Chern", "Chern", "none")
_TOPOLOGICAL_CLASS = {
    "Z2": "spin_chern",
    "spin Chern": "spin_chern",
    "mirror Chern": "mirror_chern",
}


class LabelError(TopogenError):
    """A label table row that does not follow the schema or the criterion."""


def topo2d_label(topo_class: str | None) -> int | None:
    """Stage II's label (1 / 0) of a topology class; None for ``chern`` and unknown (None)."""
    if topo_class is not None and topo_class not in TOPO_CLASSES:
        raise LabelError(f"unknown topology class {topo_class!r} (known: {TOPO_CLASSES})")
    return TOPO2D.get(topo_class) if topo_class is not None else None


@dataclass(frozen=True)
class LiteratureLabel:
    """One row of the literature table, with the class its label and invariant give."""

    formula: str
    prototype: str
    topo_class: str
    invariant: str
    reference: str

    @property
    def topo2d(self) -> int | None:
        return topo2d_label(self.topo_class)


def _row_class(label: str, invariant: str) -> str:
    """The class of one table row; raises ValueError where label and invariant disagree."""
    if label not in LABELS:
        raise ValueError(f"label {label!r} is not one of {', '.join(LABELS)}")
    if invariant not in INVARIANTS:
        raise ValueError(f"invariant {invariant!r} is not one of {', '.join(INVARIANTS)}")
    if label == "1":
        if invariant not in _TOPOLOGICAL_CLASS:
            raise ValueError(f"a topological label cannot rest on invariant {invariant!r}")
        return _TOPOLOGICAL_CLASS[invariant]
    if label == "chern":
        if invariant != "Chern":
            raise ValueError("a Chern-insulator label rests on the Chern number")
        return "chern"
    if invariant in ("Chern", "mirror Chern"):  # C = 0 or C_M = 0 leaves Z2 / C_s open
        raise ValueError(f"a zero {invariant} number does not make a crystal trivial")
    return "trivial"


def read_literature(path: str | os.PathLike[str] = LABELS_FILE) -> list[LiteratureLabel]:
    """Every row of a literature label table; raises LabelError naming the file and row."""
    rows: list[LiteratureLabel] = []
    seen: set[tuple[str, str]] = set()
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or ())]
        if missing:
            raise LabelError(f"{path}: missing column(s) {', '.join(missing)}")
        for n, row in enumerate(reader, start=2):  # line 1 is the header
            key = (row["formula"].strip(), row["prototype"].strip())
            try:
                if not all(key) or not (row["reference"] or "").strip():
                    raise ValueError("empty formula, prototype or reference")
                if key in seen:
                    raise ValueError(f"{key} appears twice")
                topo_class = _row_class(row["label"].strip(), row["invariant"].strip())
            except ValueError as exc:
                raise LabelError(f"{path}, line {n}: {exc}") from exc
            seen.add(key)
            invariant = row["invariant"].strip()
            rows.append(LiteratureLabel(*key, topo_class, invariant, row["reference"].strip()))
    return rows


def read_labels(path: str | os.PathLike[str] = LABELS_FILE) -> dict[tuple[str, str], int]:
    """(formula, prototype) -> ``topo2d`` (1 / 0) of the rows that have one (not ``chern``)."""
    rows = read_literature(path)
    return {(r.formula, r.prototype): r.topo2d for r in rows if r.topo2d is not None}
