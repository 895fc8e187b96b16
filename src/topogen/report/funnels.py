"""The screening funnels side by side: how many candidates of each generator are still in
after each step (a table and a plot for the report)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import pandas as pd

from topogen.io.atomic import atomic_path

OUT = ("fail", "failed")  # verdicts that take a candidate out (skipped steps do not)


def funnel_counts(funnels: Mapping[str, pd.DataFrame], steps: Sequence[str]) -> pd.DataFrame:
    """Rows: ``candidates``, then each step of ``steps`` present in the tables; columns: the
    funnels' names; values: the candidates with no ``fail``/``failed`` verdict up to and
    including that step."""
    out: dict[str, list[int]] = {}
    rows = ["candidates"]
    used = [s for s in steps if any(s in df for df in funnels.values())]
    rows += used
    for name, df in funnels.items():
        alive = pd.Series(True, index=df.index)
        counts = [len(df)]
        for step in used:
            if step in df:
                alive &= ~df[step].isin(OUT)
            counts.append(int(alive.sum()))
        out[name] = counts
    return pd.DataFrame(out, index=pd.Index(rows, name="after"))


def plot_funnels(counts: pd.DataFrame, path: str | os.PathLike[str]) -> None:
    """Candidates left after each step, one line per funnel (log scale when counts span
    more than two decades), with the count at the last step written beside each line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(6.0, 0.7 * len(counts)), 4.2))
    x = range(len(counts))
    for name in counts.columns:
        (line,) = ax.plot(x, counts[name], marker="o", label=name)
        ax.annotate(
            str(counts[name].iloc[-1]),
            (len(counts) - 1, counts[name].iloc[-1]),
            xytext=(5, 0),
            textcoords="offset points",
            color=line.get_color(),
            va="center",
        )
    positive = counts[counts > 0]
    if positive.notna().any().any() and positive.max().max() > 100 * positive.min().min():
        ax.set_yscale("log")
    ax.set_xticks(list(x), [s.replace("_", " ") for s in counts.index], rotation=35, ha="right")
    ax.set(ylabel="candidates still in", title="Screening funnel per generator")
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
