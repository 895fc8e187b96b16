"""What a trained CrystalBERT classifier looks at (the paper's Fig. 2-3).

The head is linear on the concatenated output tokens, so the topological margin (the
logit of "topological" minus that of "trivial"; with three classes, the mean of the
non-trivial logits minus the trivial one, class 0 being trivial) splits exactly into one
term per token slot: ``W_t . h_t``. :func:`token_contributions` gives these terms per
crystal; :func:`token_importance` their mean and mean magnitude per slot;
:func:`space_group_feature` the mean space-group contribution (the five space-group slots)
per space group next to the share of topological crystals in that group.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from topogen.models.crystalbert.model import Example, collate
from topogen.models.crystalbert.train import CrystalBertTask


@torch.no_grad()
def token_contributions(
    module: CrystalBertTask, examples: Sequence[Example], batch_size: int = 256
) -> pd.DataFrame:
    """(N, slots) contribution of each token slot to the topological margin."""
    model = module.model.eval()
    weight = model.heads[module.hparams.task].weight  # (C, n_tokens * width)
    margin = weight[1:].mean(0) - weight[0]  # (n_tokens * width,)
    blocks = margin.view(model.n_tokens, -1)
    out = []
    for start in range(0, len(examples), batch_size):
        batch = collate(examples[start : start + batch_size])
        batch = {k: (v.to(module.device) if v is not None else None) for k, v in batch.items()}
        h = model.features(batch).view(-1, model.n_tokens, blocks.shape[1])
        out.append((h * blocks).sum(-1).float().cpu())
    return pd.DataFrame(torch.cat(out).numpy(), columns=model.token_slots())


def token_importance(contributions: pd.DataFrame) -> pd.DataFrame:
    """Per slot: mean contribution and mean absolute contribution (sorted by the latter)."""
    table = pd.DataFrame(
        {
            "slot": contributions.columns,
            "mean": contributions.mean().to_numpy(),
            "mean_abs": contributions.abs().mean().to_numpy(),
        }
    )
    return table.sort_values("mean_abs", ascending=False, ignore_index=True)


SPACE_GROUP_SLOTS = ("hm", "pg", "system", "laue", "symmetry")


def space_group_feature(
    contributions: pd.DataFrame, space_groups: Sequence[int], labels: Sequence[int]
) -> pd.DataFrame:
    """Per space group: crystals, share topological (label != 0) and the mean summed
    contribution of the five space-group slots."""
    slots = [c for c in SPACE_GROUP_SLOTS if c in contributions]
    if not slots:
        raise ValueError("the model has no space-group tokens")
    df = pd.DataFrame(
        {
            "space_group": np.asarray(space_groups),
            "topological": np.asarray(labels) != 0,
            "feature": contributions[slots].sum(axis=1).to_numpy(),
        }
    )
    g = df.groupby("space_group")
    return pd.DataFrame(
        {
            "crystals": g.size(),
            "share_topological": g["topological"].mean(),
            "mean_feature": g["feature"].mean(),
        }
    ).reset_index()


def plot_interpretation(
    importance: pd.DataFrame, groups: pd.DataFrame, path: str | os.PathLike[str], title: str
) -> float:
    """Two panels: mean |contribution| per token slot, and the mean space-group feature
    against the share of topological crystals per space group (marker size: crystals).
    Returns the crystal-weighted Pearson correlation of the second panel."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    w = groups["crystals"].to_numpy(float)
    x, y = groups["share_topological"].to_numpy(), groups["mean_feature"].to_numpy()
    mx, my = np.average(x, weights=w), np.average(y, weights=w)
    cov = np.average((x - mx) * (y - my), weights=w)
    r = float(
        cov / np.sqrt(np.average((x - mx) ** 2, weights=w) * np.average((y - my) ** 2, weights=w))
    )
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    a.barh(importance["slot"][::-1], importance["mean_abs"][::-1], color="tab:blue")
    a.set_xlabel("mean |contribution| to the topological margin")
    a.set_title("token slots")
    b.scatter(x, y, s=4 + 40 * w / w.max(), alpha=0.6)
    b.set_xlabel("share of topological crystals in the space group")
    b.set_ylabel("mean space-group feature")
    b.set_title(f"space groups (weighted r = {r:.2f})")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return r
