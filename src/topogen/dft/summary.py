"""Verdicts of the DFT stage -> one table (and a plot); the controls' check.

One row per ``verdict.json`` (written by ``topogen dft invariants``), the candidate being the
name of the verdict's folder. Controls carry ``expected_z2`` (from the ``topo2d`` table):
:func:`check_controls` fails unless each is trusted and has it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from topogen.errors import TopogenError
from topogen.io.atomic import atomic_path

__all__ = ["COLUMNS", "check_controls", "plot_summary", "summary_table"]

_CHECKS = (
    "dft_gap_direct_eV", "dft_gap_indirect_eV", "wannier_gap_direct_eV",
    "wannier_gap_indirect_eV", "band_max_deviation_eV", "kramers_splitting_eV", "omega_total_A2",
)  # fmt: skip
COLUMNS = (
    "candidate", "id", "formula", "control", "expected_z2", "status", "trusted", "z2",
    "z2_k1_loops", "z2_k2_loops", "spin_chern", *_CHECKS, "problems", "error", "verdict",
)  # fmt: skip


def _row(path: Path) -> dict[str, Any]:
    try:
        v = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise TopogenError(f"{path}: unreadable verdict ({exc})") from None
    props = v.get("properties") or {}
    by_direction = (v.get("invariants") or {}).get("z2_by_direction") or [None, None]
    checks = v.get("checks") or {}
    return {
        "candidate": path.parent.name,
        "id": v.get("id"),
        "formula": v.get("formula"),
        "control": bool(props.get("control", False)),
        "expected_z2": props.get("expected_z2"),
        "status": v.get("status"),
        "trusted": bool(v.get("trusted", False)),
        "z2": v.get("z2"),
        "z2_k1_loops": by_direction[0],
        "z2_k2_loops": by_direction[1],
        "spin_chern": v.get("spin_chern"),
        **{k: checks.get(k) for k in _CHECKS},
        "problems": "; ".join(v.get("problems") or []),
        "error": v.get("error", ""),
        "verdict": str(path),
    }


def summary_table(verdicts: Sequence[str | os.PathLike[str]]) -> pd.DataFrame:
    """One row per verdict file, in the order given; integer columns stay nullable."""
    table = pd.DataFrame([_row(Path(p)) for p in verdicts], columns=list(COLUMNS))
    for col in ("expected_z2", "z2", "z2_k1_loops", "z2_k2_loops"):
        table[col] = table[col].astype("Int64")
    return table


def check_controls(table: pd.DataFrame) -> None:
    """Raise, naming every failing control, unless each control is trusted with its Z2."""
    controls = table[table["control"]]
    if controls.empty:
        raise TopogenError("no control among the verdicts: nothing shows the chain works")
    bad = [
        f"{r.id}: Z2 = {r.z2} (expected {r.expected_z2}), trusted = {r.trusted}"
        + (f" ({r.problems or r.error})" if (r.problems or r.error) else "")
        for r in controls.itertuples()
        if not (r.trusted and r.z2 == r.expected_z2)
    ]
    if bad:
        raise TopogenError(
            "control(s) failed, so no verdict of this chain can be trusted: " + " | ".join(bad)
        )


def plot_summary(table: pd.DataFrame, path: str | os.PathLike[str]) -> None:
    """Horizontal bars: the DFT direct gap and the Wannier gap per candidate, coloured by Z2."""
    from matplotlib.figure import Figure

    colours = {1: "tab:red", 0: "tab:blue"}
    n = len(table)
    fig = Figure(figsize=(8.0, 1.3 + 0.35 * n), layout="constrained")
    ax = fig.add_subplot()
    y = range(n)
    dft = table["dft_gap_direct_eV"].astype(float).fillna(0.0)
    wan = table["wannier_gap_indirect_eV"].astype(float).fillna(0.0)
    z2 = [None if pd.isna(z) else int(z) for z in table["z2"]]
    ax.barh(y, dft, color=[colours.get(z, "lightgrey") for z in z2], height=0.6)
    ax.scatter(wan, list(y), marker="|", s=200, color="black")
    labels = [
        f"{r.candidate}{' (control)' if r.control else ''}  Z2={'?' if z is None else z}"
        + ("" if r.trusted else " untrusted")
        for r, z in zip(table.itertuples(), z2, strict=True)
    ]
    ax.set_yticks(list(y), labels)
    ax.invert_yaxis()
    ax.set_xlabel(
        "gap (eV): DFT direct (bars; red Z2 = 1, blue 0, grey none), Wannier indirect (|)"
    )
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
