"""Merge structure tables: concatenate, keep the first row of each id, count what happened."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import pandas as pd

from topogen.io.quarantine import Rejected
from topogen.io.tables import read_table


@dataclass
class MergeReport:
    rows_in: dict[str, int] = field(default_factory=dict)
    duplicates: int = 0  # same id seen again, same structure
    conflicts: list[Rejected] = field(default_factory=list)  # same id, other structure
    rows_out: int = 0

    def summary(self) -> str:
        parts = [f"{path}: {n}" for path, n in self.rows_in.items()]
        return (
            f"merged {sum(self.rows_in.values())} rows ({'; '.join(parts)}) -> {self.rows_out} "
            f"unique ids; dropped {self.duplicates} duplicate(s) and "
            f"{len(self.conflicts)} conflicting id(s)"
            + (f" (first: {self.conflicts[0].id!r})" if self.conflicts else "")
        )


def merge_tables(paths: list[str | os.PathLike[str]]) -> tuple[pd.DataFrame, MergeReport]:
    """Concatenate tables in order; later rows with an id already seen are dropped."""
    report = MergeReport()
    frames = []
    for p in paths:
        df = read_table(p)
        report.rows_in[str(p)] = len(df)
        frames.append(df.assign(_file=str(p), _row=range(len(df))))
    allrows = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    dup = allrows["id"].duplicated(keep="first")
    first = allrows.loc[~dup].set_index("id")["structure"]
    for _, row in allrows.loc[dup].iterrows():
        if row["structure"] == first[row["id"]]:
            report.duplicates += 1
        else:
            report.conflicts.append(
                Rejected(row["_file"], str(row["_row"]), str(row["id"]),
                         "id already taken by an earlier table with a different structure")
            )  # fmt: skip
    merged = allrows.loc[~dup].drop(columns=["_file", "_row"]).reset_index(drop=True)
    report.rows_out = len(merged)
    return merged, report
