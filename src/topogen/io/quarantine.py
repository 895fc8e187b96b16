"""Quarantine files: the rows a stage could not use, with the reason, so nothing is lost.

``<output>.quarantine.csv`` has columns ``file, item, id, reason``; it is always written (empty
when nothing was rejected) so that a workflow can depend on it.
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass
from pathlib import Path

from topogen.io.atomic import write_text

FIELDS = ("file", "item", "id", "reason")


@dataclass(frozen=True)
class Rejected:
    file: str
    item: str  # position inside the file (frame index, db row id), "" for the whole file
    id: str
    reason: str


def quarantine_path(output: str | os.PathLike[str]) -> Path:
    output = Path(output)
    return output.with_name(output.name + ".quarantine.csv")


def write_quarantine(path: str | os.PathLike[str], rejected: list[Rejected]) -> Path:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(FIELDS)
    for r in rejected:
        writer.writerow([r.file, r.item, r.id, " ".join(str(r.reason).split())])
    write_text(path, buf.getvalue())
    return Path(path)


def read_quarantine(path: str | os.PathLike[str]) -> list[Rejected]:
    with open(path, newline="", encoding="utf-8") as fh:
        return [Rejected(**row) for row in csv.DictReader(fh)]
