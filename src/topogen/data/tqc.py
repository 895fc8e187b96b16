"""Topological Quantum Chemistry catalogue (Bradlyn et al. 2017; Vergniory et al. 2019, 2022).

A user-supplied export with the columns ``formula;icsd;sg;theory;ID;class`` is joined to
Materials Project structures through ICSD collection codes. Classes: LCEBR (linear
combination of elementary band representations) is trivial; NLC, SEBR (split EBR), ES and
ESFD (enforced semimetals, with Fermi degeneracy) are topological. Rows that find no
structure, or carry an unknown class, go to quarantine with the reason.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

from topogen.io.quarantine import Rejected
from topogen.io.tables import LoadResult, Record

CLASSES = {"LCEBR": 0, "NLC": 1, "SEBR": 1, "ES": 1, "ESFD": 1}
COLUMNS = ("formula", "icsd", "sg", "theory", "ID", "class")


def read_export(path: str | os.PathLike[str]) -> tuple[list[dict[str, str]], list[Rejected]]:
    """Rows of a TQC export (';' or ',' separated, header required); bad rows rejected."""
    path = Path(path)
    text = path.read_text(encoding="utf-8-sig")
    dialect = ";" if text.split("\n", 1)[0].count(";") >= len(COLUMNS) - 1 else ","
    reader = csv.DictReader(io.StringIO(text), delimiter=dialect)
    header = [h.strip() for h in reader.fieldnames or []]
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise ValueError(f"{path}: missing column(s) {', '.join(missing)} (header: {header})")
    rows, rejected = [], []
    for line, raw in enumerate(reader, start=2):
        row = {k.strip(): (v or "").strip() for k, v in raw.items() if k}
        if row["class"] not in CLASSES:
            reason = f"unknown class {row['class']!r} (known: {', '.join(CLASSES)})"
        elif not row["icsd"].isdigit():
            reason = f"ICSD code {row['icsd']!r} is not a number"
        elif not row["sg"].isdigit() or not 1 <= int(row["sg"]) <= 230:
            reason = f"space group {row['sg']!r} is not in 1-230"
        else:
            rows.append(row)
            continue
        rejected.append(Rejected(str(path), str(line), row.get("ID", ""), reason))
    return rows, rejected


def join_tqc(export: str | os.PathLike[str], mp_records: list[Record]) -> LoadResult:
    """TQC rows with the Materials Project structure that carries the same ICSD code."""
    rows, rejected = read_export(export)
    by_icsd: dict[int, Record] = {}
    for rec in mp_records:
        for code in rec.properties.get("icsd_ids") or []:
            by_icsd.setdefault(int(code), rec)
    result = LoadResult(rejected=rejected)
    seen: set[str] = set()
    for row in rows:
        rid = f"tqc-{row['ID']}" if row["ID"] else f"tqc-icsd-{row['icsd']}"
        mp = by_icsd.get(int(row["icsd"]))
        if mp is None:
            reason = f"no Materials Project structure with ICSD {row['icsd']}"
        elif rid in seen:
            reason = f"duplicate id {rid!r}"
        else:
            reason = None
        if reason:
            result.rejected.append(Rejected(str(export), "", rid, reason))
            continue
        seen.add(rid)
        props = {
            "tqc_class": row["class"],
            "topological": CLASSES[row["class"]],
            "icsd": int(row["icsd"]),
            "space_group": int(row["sg"]),
            "theory": row["theory"],
            "formula_tqc": row["formula"],
            "mp_id": mp.id,
            "mp_space_group": mp.properties.get("spacegroup_number"),
        }
        result.records.append(Record(rid, "tqc", mp.structure, props))
    return result
