"""The funnel's topology step as its own stage (rule ``score_topology``): after the chunks
are merged, every candidate that passed the earlier steps gets a topology score (a
scorer's probability of "topological", e.g. the CrystalBERT classifier of
:mod:`topogen.models.crystalbert.scorer`) on its relaxed structure.

Modes: ``filter`` passes a candidate when its score is at least ``topology_min`` (the
library's :func:`~topogen.calc.calculators.topology_calc`); ``rank`` passes every scored
candidate and orders the survivors by score, highest first (``select_dft`` can then take,
per cluster, the member with the highest score: ``rank_by``). A candidate whose score
cannot be computed gets ``failed`` with the reason, in both modes. Without a scorer the
step stays ``skipped`` ("no topology model") and the tables pass through unchanged.

Kept apart from the chunk jobs so that a new classifier re-scores the survivors without
relaxing or phonon-checking anything again.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pandas as pd

from topogen.calc.calculators import TOPOLOGY_MIN, topology_calc
from topogen.io.tables import Record
from topogen.screen.funnel import ScoreHook, funnel_frame

MODES = ("filter", "rank")
SCORE = "topology_score"


def score_topology(
    funnel: pd.DataFrame,
    survivors: Sequence[Record],
    scorer: ScoreHook | None,
    *,
    mode: str = "filter",
    topology_min: float = TOPOLOGY_MIN,
) -> tuple[pd.DataFrame, list[Record]]:
    """(the funnel with the topology step filled in for the survivors, the survivors that
    pass it; in ``rank`` mode ordered by score)."""
    if mode not in MODES:
        raise ValueError(f"topology mode must be one of {MODES}, not {mode!r}")
    if scorer is None or not survivors:
        return funnel, list(survivors)
    rows = {rid: i for i, rid in enumerate(funnel["id"])}
    missing = [r.id for r in survivors if r.id not in rows]
    if missing:
        raise ValueError(f"survivor {missing[0]!r} is not in the funnel table")
    results = topology_calc(scorer, topology_min).calc_many([r.structure for r in survivors])
    table = funnel.to_dict("records")
    kept: list[Record] = []
    for record, res in zip(survivors, results, strict=True):
        verdict, reason = res["verdict"], res["reason"]
        score = res.get(SCORE, math.nan)
        if mode == "rank" and verdict == "fail":
            verdict, reason = "pass", f"{score:.3g} (ranked; {reason} as a filter)"
        row = table[rows[record.id]]
        row.update(topology=verdict, topology_reason=reason, topology_score=score)
        row["passed"] = bool(row["passed"]) and verdict == "pass"
        record.properties.update(
            screen_topology=verdict,
            screen_topology_reason=reason,
            topology_score=score,
            screen_passed=row["passed"],
        )
        if row["passed"]:
            kept.append(record)
    if mode == "rank":
        kept.sort(key=lambda r: -r.properties[SCORE])
    return funnel_frame(table), kept


def score_files(
    funnel_in: str,
    survivors_in: str,
    scorer: ScoreHook | None,
    *,
    funnel_out: str,
    survivors_out: str,
    mode: str = "filter",
    topology_min: float = TOPOLOGY_MIN,
) -> dict[str, Any]:
    """:func:`score_topology` on files (the merged funnel and survivors); returns counts."""
    from topogen.io.tables import read_records, write_records
    from topogen.screen.chunks import read_funnel, write_funnel

    funnel = read_funnel(funnel_in)
    survivors = read_records(survivors_in)
    df, kept = score_topology(funnel, survivors, scorer, mode=mode, topology_min=topology_min)
    write_funnel(df, funnel_out)
    write_records(kept, survivors_out)
    scored = df[SCORE].notna()
    return {
        "survivors_in": len(survivors),
        "scored": int(scored.sum()),
        "failed": int((df["topology"] == "failed").sum()),
        "passed": len(kept),
        "mode": mode if scorer is not None else "no topology model",
        "mean_score": float(df.loc[scored, SCORE].mean()) if scored.any() else None,
    }
