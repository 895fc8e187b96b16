"""Cross-validation of a CrystalBERT classifier: stratified folds that keep each group
(e.g. a (space group, formula) pair) in one fold, and the per-fold metrics of the paper
(accuracy, precision, recall, F1)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Hashable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from topogen.models.crystalbert.model import Example, n_parameters
from topogen.models.crystalbert.settings import CrystalBertSettings
from topogen.models.crystalbert.train import CrystalBertTask, fit

METRICS = ("accuracy", "precision", "recall", "f1")


def stratified_group_folds(
    labels: Sequence[int], groups: Sequence[Hashable], k: int, seed: int = 0
) -> np.ndarray:
    """Fold index (0..k-1) per row: every row of a group in the same fold, and each fold's
    class counts as close to the overall proportions as whole groups allow (greedy: groups
    in random order, largest first, each to the fold furthest below its share of the
    group's majority class)."""
    labels = np.asarray(labels)
    if len(labels) < k:
        raise ValueError(f"{len(labels)} rows cannot make {k} folds")
    rows: dict[Hashable, list[int]] = {}
    for i, g in enumerate(groups):
        rows.setdefault(g, []).append(i)
    if len(rows) < k:
        raise ValueError(f"{len(rows)} groups cannot make {k} folds")
    classes = np.unique(labels)
    rng = np.random.default_rng(seed)
    keys = list(rows)
    order = rng.permutation(len(keys))
    order = sorted(order, key=lambda j: -len(rows[keys[j]]))  # stable: random among equal sizes
    counts = np.zeros((k, len(classes)))
    sizes = np.zeros(k)
    fold = np.empty(len(labels), dtype=np.int64)
    for j in order:
        idx = rows[keys[j]]
        c = np.searchsorted(classes, labels[idx])
        major = np.bincount(c, minlength=len(classes)).argmax()
        # fewest of the group's majority class, then fewest rows, then the lowest index
        best = min(range(k), key=lambda f: (counts[f, major], sizes[f], f))
        fold[idx] = best
        np.add.at(counts[best], c, 1)
        sizes[best] += len(idx)
    return fold


def classification_metrics(truth: Sequence[int], pred: Sequence[int]) -> dict[str, float]:
    """Accuracy and precision, recall, F1: of class 1 for two classes, macro-averaged over
    the classes present for more (a class never predicted has precision 0)."""
    truth, pred = np.asarray(truth), np.asarray(pred)
    classes = np.unique(np.concatenate([truth, pred]))
    positive = [1] if set(classes) <= {0, 1} else list(classes)
    p, r, f = [], [], []
    for c in positive:
        tp = np.sum((pred == c) & (truth == c))
        precision = tp / max(1, np.sum(pred == c))
        recall = tp / max(1, np.sum(truth == c))
        p.append(precision)
        r.append(recall)
        f.append(0.0 if tp == 0 else 2 * precision * recall / (precision + recall))
    return {
        "accuracy": float(np.mean(truth == pred)),
        "precision": float(np.mean(p)),
        "recall": float(np.mean(r)),
        "f1": float(np.mean(f)),
    }


def summarise(folds: pd.DataFrame, by: str = "model") -> pd.DataFrame:
    """Mean and standard deviation of every metric over the folds, per ``by``."""
    cols = [m for m in METRICS if m in folds]
    agg = folds.groupby(by, sort=False)[cols].agg(["mean", "std"])
    agg.columns = [f"{m}_{s}" for m, s in agg.columns]
    agg["folds"] = folds.groupby(by, sort=False).size()
    return agg.reset_index()


def cross_validate(
    examples: Sequence[Example],
    fold: np.ndarray,
    settings: CrystalBertSettings,
    workdir: str | os.PathLike[str],
    classes: int = 2,
    pretrained: str | os.PathLike[str] | None = None,
    graph_dims: tuple[int, int] | None = None,
    on_fold: Callable[[int, CrystalBertTask, list[int]], None] | None = None,
    members: int = 1,
    log: Callable[[str], None] = print,
) -> pd.DataFrame:
    """Train on all folds but one and test on it, for each fold: one row per fold with
    :data:`METRICS`, the parameter count and the seconds taken. ``on_fold(fold, model,
    test_rows)`` sees each trained model (e.g. for interpretability; the first member).
    ``members`` > 1: an ensemble per fold (ours, not the paper's), trained with seeds
    ``settings.seed``, ``settings.seed + 1``, ..., its class probabilities averaged;
    ``parameters`` counts all members."""
    from topogen.models.crystalbert.train import new_classifier

    truth = np.array([int(e.target) for e in examples])
    rows = []
    for f in range(int(fold.max()) + 1):
        start = time.perf_counter()
        test = np.flatnonzero(fold == f).tolist()
        train = np.flatnonzero(fold != f).tolist()
        modules = []
        for m in range(members):
            member = settings_with(settings, seed=settings.seed + m)
            module = new_classifier(member, graph_dims, pretrained=pretrained, classes=classes)
            work = Path(workdir) / (f"fold{f}" if m == 0 else f"fold{f}-member{m}")
            fit(module, [examples[i] for i in train], work, resume=False)
            modules.append(module)
        test_examples = [examples[i] for i in test]
        pred = np.mean([m.predict(test_examples) for m in modules], axis=0).argmax(1)
        row = {
            "fold": f,
            **classification_metrics(truth[test], pred),
            "n_train": len(train),
            "n_test": len(test),
            "parameters": sum(n_parameters(m.model) for m in modules),
            "seconds": round(time.perf_counter() - start, 1),
        }
        rows.append(row)
        log(
            f"fold {f + 1}/{fold.max() + 1}: accuracy {row['accuracy']:.4f}, "
            f"F1 {row['f1']:.4f} ({row['seconds']:.0f} s)"
        )
        if on_fold is not None:
            on_fold(f, modules[0], test)
    return pd.DataFrame(rows)


def describe(summary: pd.DataFrame) -> list[str]:
    """One line per model: accuracy, precision, recall, F1 as mean +- std (percent)."""
    lines = []
    for _, r in summary.iterrows():
        parts = [
            f"{m} {100 * r[f'{m}_mean']:.2f} +- {100 * r[f'{m}_std']:.2f}"
            for m in METRICS
            if f"{m}_mean" in r
        ]
        lines.append(f"{r.iloc[0]}: " + ", ".join(parts))
    return lines


def fold_table(folds: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Per-model fold tables, stacked with a ``model`` column."""
    return pd.concat([df.assign(model=name) for name, df in folds.items()], ignore_index=True)


def settings_with(base: CrystalBertSettings, **changes: Any) -> CrystalBertSettings:
    return CrystalBertSettings(**{**base.as_dict(), **changes})


def paired_differences(
    folds: pd.DataFrame, reference: str, metric: str = "accuracy"
) -> pd.DataFrame:
    """Per model, its ``metric`` minus the ``reference`` model's on the same folds: mean and
    standard deviation of the difference, and the folds where it is ahead / behind."""
    ref = folds[folds["model"] == reference].set_index("fold")[metric]
    rows = []
    for name, df in folds.groupby("model", sort=False):
        if name == reference:
            continue
        d = df.set_index("fold")[metric] - ref.reindex(df["fold"]).to_numpy()
        rows.append(
            {
                "model": name,
                "reference": reference,
                f"{metric}_difference_mean": float(d.mean()),
                f"{metric}_difference_std": float(d.std()),
                "folds_ahead": int((d > 0).sum()),
                "folds_behind": int((d < 0).sum()),
            }
        )
    return pd.DataFrame(rows)
