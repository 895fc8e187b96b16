"""The literature topology labels shipped with the workflow (``resources/topo2d_labels.csv``:
reduced formula, prototype, label 1 = QSH / 2D TI or 0 = trivial, and a citation per row)."""

from __future__ import annotations

import csv
import os
from pathlib import Path

LABELS_FILE = Path(__file__).resolve().parents[3] / "resources" / "topo2d_labels.csv"


def read_labels(path: str | os.PathLike[str] = LABELS_FILE) -> dict[tuple[str, str], int]:
    """(reduced formula, prototype) -> 1 (QSH / 2D TI) or 0 (trivial)."""
    labels: dict[tuple[str, str], int] = {}
    with open(path, newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            labels[(row["formula"], row["prototype"])] = int(row["label"])
    return labels
