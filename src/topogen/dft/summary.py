"""Verdicts of the DFT stage -> one table (and a plot); the controls' check.

One row per ``verdict.json`` (written by ``topogen dft invariants``), the candidate being the
name of the verdict's folder, with its source (the generator, or ``control``): the verdict
(topological / trivial / metal / untrusted / failed, see :mod:`topogen.dft.verdict`) and
its reason, Z2, the spin Chern number with its
axis and spin gap, the direct and indirect gaps of the DFT bands and of the Wannier model, and
the step a failed candidate stopped at. Controls carry ``expected_z2`` (from the ``topo2d``
table): :func:`check_controls` fails unless each is a trusted insulator with it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from topogen.errors import TopogenError
from topogen.io.atomic import atomic_path, write_text

__all__ = [
    "COLUMNS",
    "check_controls",
    "plot_summary",
    "summary_html",
    "summary_table",
    "verdict_row",
]

_CHECKS = (
    "dft_gap_direct_eV", "dft_gap_indirect_eV", "wannier_gap_direct_eV",
    "wannier_gap_indirect_eV", "band_max_deviation_eV", "kramers_splitting_eV", "omega_total_A2",
)  # fmt: skip
COLUMNS = (
    "candidate", "id", "source", "formula", "control", "expected_z2", "verdict", "reason", "status",
    "trusted", "z2", "z2_k1_loops", "z2_k2_loops", "spin_chern", "spin_phi_deg", "spin_gap",
    *_CHECKS, "failed_step", "failed_output", "problems", "error", "verdict_file",
)  # fmt: skip


def verdict_row(path: Path) -> dict[str, Any]:
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
        "source": v.get("source"),
        "formula": v.get("formula"),
        "control": bool(props.get("control", False)),
        "expected_z2": props.get("expected_z2"),
        "verdict": v.get("verdict") or ("failed" if v.get("status") == "failed" else None),
        "reason": v.get("reason") or v.get("error", ""),
        "status": v.get("status"),
        "trusted": bool(v.get("trusted", False)),
        "z2": v.get("z2"),
        "z2_k1_loops": by_direction[0],
        "z2_k2_loops": by_direction[1],
        "spin_chern": v.get("spin_chern"),
        "spin_phi_deg": v.get("spin_phi_deg"),
        "spin_gap": v.get("spin_gap"),
        **{k: checks.get(k) for k in _CHECKS},
        "failed_step": v.get("failed_step"),
        "failed_output": v.get("failed_output"),
        "problems": "; ".join(v.get("problems") or []),
        "error": v.get("error", ""),
        "verdict_file": str(path),
    }


def summary_table(verdicts: Sequence[str | os.PathLike[str]]) -> pd.DataFrame:
    """One row per verdict file, in the order given; integer columns stay nullable."""
    table = pd.DataFrame([verdict_row(Path(p)) for p in verdicts], columns=list(COLUMNS))
    for col in ("expected_z2", "z2", "z2_k1_loops", "z2_k2_loops"):
        table[col] = table[col].astype("Int64")
    return table


def check_controls(table: pd.DataFrame) -> None:
    """Raise, naming every failing control, unless each control is a trusted insulator with
    its Z2 (verdict topological for Z2 = 1, trivial for 0)."""
    controls = table[table["control"]]
    if controls.empty:
        raise TopogenError("no control among the verdicts: nothing shows the chain works")
    want = {1: "topological", 0: "trivial"}
    bad = [
        f"{r.id}: {r.verdict}, Z2 = {r.z2} (expected {r.expected_z2}), spin Chern "
        f"{r.spin_chern}, trusted = {r.trusted}" + (f" ({r.reason})" if r.reason else "")
        for r in controls.itertuples()
        if not (r.trusted and r.z2 == r.expected_z2 and r.verdict == want.get(r.expected_z2))
    ]
    if bad:
        raise TopogenError(
            "control(s) failed, so no verdict of this chain can be trusted: " + " | ".join(bad)
        )


def plot_summary(table: pd.DataFrame, path: str | os.PathLike[str]) -> None:
    """Horizontal bars: the DFT indirect gap per candidate, coloured by verdict, and the
    Wannier indirect gap (|); labels give Z2 and the spin Chern number."""
    from matplotlib.figure import Figure

    colours = {"topological": "tab:red", "trivial": "tab:blue", "metal": "tab:orange"}
    n = len(table)
    fig = Figure(figsize=(8.0, 1.3 + 0.35 * n), layout="constrained")
    ax = fig.add_subplot()
    y = range(n)
    dft = table["dft_gap_indirect_eV"].astype(float).fillna(0.0)
    wan = table["wannier_gap_indirect_eV"].astype(float).fillna(0.0)
    ax.barh(y, dft, color=[colours.get(v, "lightgrey") for v in table["verdict"]], height=0.6)
    ax.scatter(wan, list(y), marker="|", s=200, color="black")
    ax.axvline(0.0, color="grey", lw=0.5)
    labels = [
        f"{r.candidate}{' (control)' if r.control else ''}  {r.verdict}"
        + ("" if pd.isna(r.z2) else f" Z2={r.z2}")
        + ("" if pd.isna(r.spin_chern) else f" Cs={r.spin_chern:g}")
        + (f" at {r.failed_step}" if r.verdict == "failed" else "")
        for r in table.itertuples()
    ]
    ax.set_yticks(list(y), labels)
    ax.invert_yaxis()
    ax.set_xlabel(
        "indirect gap (eV): DFT (bars; red topological, blue trivial, orange metal, grey "
        "untrusted / failed), Wannier (|)"
    )
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")


# The columns of the report's table (every column: summary.csv).
HTML_COLUMNS = (
    "candidate", "source", "formula", "verdict", "trusted", "z2", "spin_chern",
    "dft_gap_direct_eV", "dft_gap_indirect_eV", "wannier_gap_indirect_eV",
    "band_max_deviation_eV", "reason",
)  # fmt: skip


def summary_html(table: pd.DataFrame, path: str | os.PathLike[str]) -> None:
    """The final table of candidates as one HTML page (for the report): verdict,
    invariants and gaps per candidate, controls marked; numbers to 3 decimals."""
    from html import escape

    view = table.loc[:, list(HTML_COLUMNS)].copy()
    view["candidate"] = [
        f"{c} (control)" if ctl else c
        for c, ctl in zip(view["candidate"], table["control"], strict=True)
    ]
    for col in ("z2", "spin_chern"):  # invariants as whole numbers
        view[col] = ["-" if pd.isna(v) else f"{float(v):g}" for v in view[col]]
    body = view.to_html(index=False, na_rep="-", float_format=lambda x: f"{x:.3f}", border=0)
    n = len(view)
    tally = view["verdict"].fillna("none").value_counts()
    counts = ", ".join(f"{k}: {v}" for k, v in tally.items())
    page = (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>DFT verdicts</title>'
        "<style>body{font-family:sans-serif;font-size:13px}table{border-collapse:collapse}"
        "td,th{padding:3px 8px;border-bottom:1px solid #ddd;text-align:left}</style></head>"
        f"<body><h3>DFT verdicts of {n} candidates ({escape(counts)})</h3>\n{body}\n"
        "<p>Every column, with the paths of the QE and Wannier90 outputs: "
        "results/dft/summary.csv and each candidate's verdict.json.</p></body></html>\n"
    )
    write_text(path, page)
