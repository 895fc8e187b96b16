"""Per-epoch training curves: losses, and in GAN Stage III the oracle fractions."""

from __future__ import annotations

import os

import pandas as pd

from topogen.io.atomic import atomic_path

LOSSES = ("d_loss", "g_loss", "g_adversarial", "train_loss", "val_loss")
FRACTIONS = tuple(
    f"oracle_{k}" for k in ("stable", "insulating", "both", "topological", "all", "decodable")
)
PAPER_BEST = {"oracle_stable": 0.113, "oracle_insulating": 0.142}  # Tyner et al., Fig. 4


def write_metrics_csv(df: pd.DataFrame, path: str | os.PathLike[str]) -> None:
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False)


def plot_training(df: pd.DataFrame, path: str | os.PathLike[str], title: str) -> None:
    """Losses per epoch; a second panel with the oracle fractions (%) when logged, with
    the paper's best Stage III figures as dotted lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fractions = [c for c in FRACTIONS if c in df and df[c].notna().any()]
    fig, axes = plt.subplots(1, 2 if fractions else 1, figsize=(11 if fractions else 6, 4))
    axes = list(axes) if fractions else [axes]
    epoch = df["epoch"] + 1 if "epoch" in df else pd.Series(range(1, len(df) + 1))
    for col in (c for c in LOSSES if c in df and df[c].notna().any()):
        axes[0].plot(epoch, df[col], marker=".", label=col)
    axes[0].set(xlabel="epoch", ylabel="loss", title=title)
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
    for ax in axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
