"""TopoA topology labels of the reference data (``{ti,tci,case1,case3}_ccmp.txt``): space
group and formula per line, no structures."""

from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from topogen.data.importers import error_reason
from topogen.data.shared import require_file
from topogen.io.quarantine import Rejected

# TopoA file -> label (1 topological, 0 trivial), following the topogivity code (Ma et al. 2023,
# ``read_and_process_ccmp_lists``): case3 (enforced semimetals), TCI and TI are lumped as
# topological; case1 is trivial. (This also reproduces the README's 4,695 / 6,088 split, and
# case1 holds even-electron formulas in P1, which cannot be topological by symmetry indicators.)
TOPOA_FILES = {"ti": 1, "tci": 1, "case3": 1, "case1": 0}
_TOPOA_PRIORITY = ("ti", "tci", "case3", "case1")  # category kept when files are merged


@dataclass
class TopoaResult:
    """TopoA labels after merging duplicates and dropping (sg, formula) labelled both ways."""

    labels: pd.DataFrame
    rejected: list[Rejected] = field(default_factory=list)  # malformed lines and conflicts
    lines_read: int = 0
    duplicates_merged: int = 0  # same (sg, formula) and label seen again
    conflicts_dropped: int = 0  # (sg, formula) pairs labelled both trivial and topological


def normalise_formula(formula: str) -> str:
    """Reduced formula in pymatgen's order: ``Ag1F6Pd1`` -> ``AgPdF6``."""
    from pymatgen.core import Composition, Element

    with warnings.catch_warnings():  # "no Pauling electronegativity" for He, Ar, Rf
        warnings.simplefilter("ignore", UserWarning)
        comp = Composition(formula)
        reduced = comp.reduced_formula
    unknown = [str(el) for el in comp if not isinstance(el, Element)]
    if unknown:
        raise ValueError(f"not element(s): {', '.join(unknown)} in {formula!r}")
    if comp.num_atoms <= 0:
        raise ValueError(f"empty formula {formula!r}")
    if any(amount < 0 for amount in comp.values()):
        raise ValueError(f"negative amount in {formula!r}")
    return reduced


def load_topoa(root: str | os.PathLike[str]) -> TopoaResult:
    """TopoA labels from ``<root>/topoa/`` (or ``<root>`` itself) ``{ti,tci,case1,case3}_ccmp.txt``.

    Columns: ``space_group`` (int), ``formula`` (reduced, normalised), ``label`` (1 topological:
    ti/tci/case3; 0 trivial: case1), ``category`` (the first of ti, tci, case3, case1 holding
    it) and ``categories`` (all files holding it, ``+``-joined).
    """
    folder = Path(root) if (Path(root) / "ti_ccmp.txt").exists() else Path(root) / "topoa"
    seen: dict[tuple[int, str], dict[str, Any]] = {}
    result = TopoaResult(labels=pd.DataFrame())
    line_re = re.compile(r"^\s*(\d+)\s*,\s*(\S+)\s*$")
    for category, label in TOPOA_FILES.items():
        path = require_file(folder / f"{category}_ccmp.txt", f"TopoA {category} list")
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            result.lines_read += 1
            m = line_re.match(line)
            try:
                if not m:
                    raise ValueError(f"expected 'space group, formula', got {line.strip()!r}")
                sg = int(m.group(1))
                if not 1 <= sg <= 230:
                    raise ValueError(f"space group {sg} outside 1-230")
                formula = normalise_formula(m.group(2))
            except Exception as exc:  # malformed line: reject it, keep the rest
                result.rejected.append(Rejected(str(path), str(lineno), "", error_reason(exc)))
                continue
            entry = seen.setdefault((sg, formula), {"labels": {}, "categories": []})
            if label in entry["labels"]:
                result.duplicates_merged += 1
            entry["labels"].setdefault(label, f"{path.name}:{lineno}")
            if category not in entry["categories"]:
                entry["categories"].append(category)
    rows = []
    for (sg, formula), entry in seen.items():
        if len(entry["labels"]) > 1:
            result.conflicts_dropped += 1
            where = ", ".join(
                f"{'topological' if k else 'trivial'} ({v})" for k, v in entry["labels"].items()
            )
            result.rejected.append(
                Rejected(
                    str(folder), "", f"{sg} {formula}", f"labelled both ways: {where}; dropped"
                )
            )
            continue
        cats = sorted(entry["categories"], key=_TOPOA_PRIORITY.index)
        rows.append((sg, formula, next(iter(entry["labels"])), cats[0], "+".join(cats)))
    df = pd.DataFrame(rows, columns=["space_group", "formula", "label", "category", "categories"])
    df = df.astype({"space_group": "int64", "label": "int64"})
    result.labels = df.sort_values(["space_group", "formula"], ignore_index=True)
    return result
