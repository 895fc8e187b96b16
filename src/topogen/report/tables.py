"""What is in a structure table: counts per source, atoms per cell, element frequencies, and
the rows quarantined on the way (per table that fed it)."""

from __future__ import annotations

import collections
import json
import os
from typing import Any

import pandas as pd

from topogen.io.atomic import atomic_path


def table_summary(df: pd.DataFrame, quarantined: dict[str, int] | None = None) -> dict[str, Any]:
    """Plain-data summary of a structure table (read with ``read_table``); ``quarantined``:
    rows set aside per table on the way (name -> count)."""
    natoms: list[int] = []
    elements: collections.Counter[str] = collections.Counter()
    for text in df["structure"]:
        sites = json.loads(text)["sites"]
        natoms.append(len(sites))
        elements.update({sp["element"] for site in sites for sp in site["species"]})
    per_source = df["source"].value_counts().sort_index()
    return {
        "rows": len(df),
        "per_source": {str(k): int(v) for k, v in per_source.items()},
        "atoms_per_cell": {
            "min": min(natoms, default=0),
            "max": max(natoms, default=0),
            "mean": sum(natoms) / len(natoms) if natoms else 0.0,
            "histogram": {str(k): v for k, v in sorted(collections.Counter(natoms).items())},
        },
        "structures_containing_element": dict(elements.most_common()),
        "unique_formulas": int(df["formula"].nunique()),
        "quarantined": dict(quarantined or {}),
    }


def plot_table_summary(summary: dict[str, Any], path: str | os.PathLike[str], title: str) -> None:
    """Three panels: rows per source, atoms per cell, the most frequent elements."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8), constrained_layout=True)
    src = summary["per_source"]
    axes[0].bar(list(src), list(src.values()), color="tab:blue", label="in the table")
    bad = summary.get("quarantined") or {}
    if bad:
        names = [f"{k}\n(quarantined)" for k in bad]
        axes[0].bar(names, list(bad.values()), color="tab:red", label="quarantined rows")
        axes[0].legend(fontsize=8)
        axes[0].tick_params(axis="x", labelsize=8)
    axes[0].set(title="structures per source", ylabel="structures")
    hist = summary["atoms_per_cell"]["histogram"]
    axes[1].bar([int(k) for k in hist], list(hist.values()), color="tab:green")
    axes[1].set(title="atoms per cell", xlabel="atoms", ylabel="structures")
    top = list(summary["structures_containing_element"].items())[:25]
    axes[2].bar([k for k, _ in top], [v for _, v in top], color="tab:orange")
    axes[2].set(title="structures containing each element (top 25)", ylabel="structures")
    axes[2].tick_params(axis="x", labelrotation=90)
    for ax in axes:
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes[1].xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.suptitle(f"{title}: {summary['rows']} structures, {summary['unique_formulas']} formulas")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
