"""Per-epoch training curves: losses, and in GAN Stage III the oracle fractions."""

from __future__ import annotations

import os

import pandas as pd

from topogen.io.atomic import atomic_path

FRACTIONS = tuple(
    f"oracle_{k}" for k in ("stable", "insulating", "both", "topological", "all", "decodable")
)
PAPER_BEST = {"oracle_stable": 0.113, "oracle_insulating": 0.142}  # Tyner et al., Fig. 4


def write_metrics_csv(df: pd.DataFrame, path: str | os.PathLike[str]) -> None:
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False)


def _columns(df: pd.DataFrame) -> tuple[list[str], list[str], list[str]]:
    """(losses, oracle fractions, other metrics) logged in ``df``, each with a value."""
    logged = [
        c
        for c in df
        if c not in ("epoch", "step")
        and pd.api.types.is_numeric_dtype(df[c])
        and df[c].notna().any()
    ]
    fractions = [c for c in FRACTIONS if c in logged]
    losses = [c for c in logged if ("loss" in c or c == "g_adversarial") and c not in fractions]
    others = [c for c in logged if c not in losses and not c.startswith("oracle_")]
    return losses, fractions, others


def plot_training(df: pd.DataFrame, path: str | os.PathLike[str], title: str) -> None:
    """Losses per epoch (every logged column named ``*loss*``); a second panel with the
    oracle fractions (%) when logged, with the paper's best Stage III figures as dotted
    lines, else with the other logged metrics (MAE, accuracy, Wasserstein distance ...)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    losses, fractions, others = _columns(df)
    second = bool(fractions or others)
    fig, axes = plt.subplots(1, 2 if second else 1, figsize=(11 if second else 6, 4))
    axes = list(axes) if second else [axes]
    epoch = df["epoch"] + 1 if "epoch" in df else pd.Series(range(1, len(df) + 1))
    for col in losses:
        rows = df[col].notna()
        axes[0].plot(epoch[rows], df[col][rows], marker=".", label=col)
    axes[0].set(xlabel="epoch", ylabel="loss", title=title)
    if losses:
        axes[0].legend(fontsize=8)
    if fractions:
        for col in fractions:
            (line,) = axes[1].plot(
                epoch, 100 * df[col], marker=".", label=col.removeprefix("oracle_")
            )
            if col in PAPER_BEST:
                axes[1].axhline(100 * PAPER_BEST[col], ls=":", color=line.get_color(), lw=1)
        axes[1].set(xlabel="epoch", ylabel="% of oracle samples", title="Stage III oracles")
        axes[1].legend(fontsize=8, title="dotted: paper's best", title_fontsize=7)
    elif others:
        for col in others:
            rows = df[col].notna()
            axes[1].plot(epoch[rows], df[col][rows], marker=".", label=col)
        axes[1].set(xlabel="epoch", ylabel="value", title="other metrics")
        axes[1].legend(fontsize=8)
    for ax in axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
