"""Stage III's reward model: its loss (class-weighted) and its check on oracle batches it has
not seen.

The reward model (a :class:`~topogen.models.gan3.networks.Critic` with a head per oracle:
stability, gap, and topology when a topology model is given) learns the oracle's scores of
generated images; the generator then climbs its sigmoid outputs. Its targets are the
oracle's scores in [0, 1] (phonon stability score, gap score, topology score), NaN where a
head has no oracle (no band-gap model). Most samples score 0 (undecodable,
unrelaxable, unstable), so the loss weighs the positive term of each head by
:func:`pos_weights` (negative mass over positive mass in the buffer, as
``BCEWithLogitsLoss(pos_weight=...)`` expects), and a head that predicts "0" everywhere no
longer wins.

:func:`reward_check` scores the model on a new oracle batch BEFORE it is trained on it, per
head: the ROC AUC of its prediction against the oracle's verdict (stable; insulating) and
the Spearman rank correlation with the oracle's score. An undefined value (one class only, or
a constant score) is NaN, stated as such in the metrics.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.nn import functional as F

HEADS = ("stable", "gap", "topology")  # reward-model heads, in column order (verdicts:
# stable, insulating, topological); a model without a topology oracle has the first two
MAX_POS_WEIGHT = 100.0  # caps the weight of a head with (almost) no positive samples yet


def pos_weights(targets: torch.Tensor) -> torch.Tensor:
    """(heads,) weights of the positive term per head: sum(1 - y) / sum(y) over the finite
    targets (soft labels count by their mass), clamped to [1 / MAX_POS_WEIGHT,
    MAX_POS_WEIGHT]; 1 for a head with no positive (or no finite) target."""
    finite = torch.isfinite(targets)
    y = torch.where(finite, targets, torch.zeros_like(targets))
    pos = y.sum(0)
    neg = (finite.float() - y).sum(0)
    w = torch.where(pos > 0, neg / pos.clamp_min(1e-12), torch.ones_like(pos))
    return w.clamp(1.0 / MAX_POS_WEIGHT, MAX_POS_WEIGHT)


def reward_loss(
    logits: torch.Tensor, targets: torch.Tensor, pos_weight: torch.Tensor
) -> torch.Tensor:
    """Mean over the heads with finite targets of each head's class-weighted binary
    cross-entropy (NaN targets skipped)."""
    losses = []
    for h in range(targets.shape[1]):
        m = torch.isfinite(targets[:, h])
        if m.any():
            losses.append(
                F.binary_cross_entropy_with_logits(
                    logits[m, h], targets[m, h], pos_weight=pos_weight[h].to(logits)
                )
            )
    return torch.stack(losses).mean() if losses else logits.sum() * 0.0


def roc_auc(scores: Sequence[float], labels: Sequence[bool]) -> float:
    """Area under the ROC curve (Mann-Whitney U / (n_pos n_neg), ties count half); NaN
    unless both classes occur."""
    from scipy.stats import rankdata

    s, y = np.asarray(scores, dtype=float), np.asarray(labels, dtype=bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(s)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def rank_correlation(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rank correlation; NaN when either side is constant (or shorter than 2)."""
    from scipy.stats import spearmanr

    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(a) < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(spearmanr(a, b).statistic)


def reward_check(
    predicted: np.ndarray,
    scores: np.ndarray,
    verdicts: np.ndarray,
    heads: Sequence[int],
) -> dict[str, float]:
    """``reward_auc_<head>`` and ``reward_rank_<head>`` of the reward model's (B, H)
    ``predicted`` probabilities against the oracle's (B, H) ``scores`` and boolean
    ``verdicts`` (stable, insulating, topological), for each of the model's H heads; NaN for
    a head not in ``heads`` (no band-gap model) or where undefined (module docstring)."""
    out: dict[str, float] = {}
    for h, name in enumerate(HEADS[: predicted.shape[1]]):
        used = h in heads
        auc = roc_auc(predicted[:, h], verdicts[:, h]) if used else float("nan")
        rank = rank_correlation(predicted[:, h], scores[:, h]) if used else float("nan")
        out[f"reward_auc_{name}"], out[f"reward_rank_{name}"] = auc, rank
    return out
