"""Benchmark: CrystalBERT topology classification on TopoA (Xu, Qian, Wang et al.; Table 1).

TopoA gives a space group and a formula per material, no structure, so the tokens are the
five space-group tokens, the 14-bit electron count and the element vector (no graph
token). ``--folds``-fold cross-validation (paper: 11), stratified, each (space group,
formula) pair in one fold (:func:`topogen.models.crystalbert.evaluate.stratified_group_folds`),
for the full token set and each ablation of ``--models`` (``no_space_group``,
``no_electrons``, ``no_elements``: one family switched off; ``no_transformer``: one fully
connected layer instead of the encoder), and three baselines on the same folds: the
majority class, a logistic regression on the element fractions alone (a topogivity-like
chemical rule) and gradient-boosted trees (LightGBM) on space-group one-hot + element
fractions + electron-count bits + electron count. Accuracy, precision, recall and F1 (class
"topological") per fold, then mean and standard deviation.

The paper's TopoA figures (with structures): CGCNN 85.49%, XBERT 89.76% accuracy.

Interpretability (the paper's Fig. 2-3), from the full model of each fold on its test fold:
the per-token-slot contribution to the topological margin and the mean space-group feature
per space group against the share of topological materials in it.

Each model's accuracy is also compared with LightGBM's fold by fold (mean and spread of the
difference, folds ahead and behind: ``paired_vs_lightgbm``).

Writes ``<out>/folds.csv`` (one row per model and fold), ``<out>/summary.csv``,
``<out>/summary.json``, ``<out>/token_importance.csv``, ``<out>/space_groups.csv`` and
``<out>/interpretation.png``. A rerun with the same ``--out`` keeps the models already done
(``<out>/folds-<model>.csv``). Needs scikit-learn and LightGBM (``pip install -e .[bench]``).

    python bench/crystalbert_topoa.py --out bench/out/crystalbert-topoa
    python bench/crystalbert_topoa.py --epochs 1 --max-folds 2 --models full --out /tmp/smoke
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from schedules import config_defaults

CITE = (
    "data: TopoA, Tang et al., Nature 566, 486 (2019), as processed by Ma et al., "
    "Nano Lett. 23, 772 (2023)"
)
PAPER = {"CGCNN (with structures)": 0.8549, "XBERT (with structures)": 0.8976}
ABLATIONS = {
    "full": {},
    "no_space_group": {"space_group": False},
    "no_electrons": {"electrons": False},
    "no_elements": {"elements": False},
    "no_transformer": {"transformer": False},
}
BASELINES = ("majority", "logistic_elements", "lightgbm")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def parser() -> argparse.ArgumentParser:
    from topogen.data.shared import shared_data_root

    root = shared_data_root() or Path("../shared/data")
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=root / "topoa", help="TopoA folder")
    ap.add_argument("--out", type=Path, default=Path("bench/out/crystalbert-topoa"))
    ap.add_argument("--folds", type=int, default=11, help="cross-validation folds (paper: 11)")
    ap.add_argument("--max-folds", type=int, default=None, help="stop after this many folds")
    ap.add_argument("--models", nargs="+", default=list(ABLATIONS), choices=list(ABLATIONS))
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--ensemble",
        type=int,
        default=1,
        help="models per fold, seeds --seed, --seed + 1, ..., probabilities averaged (ours; "
        "1: the paper's single model); rows are named <model>_x<N>",
    )
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    config_defaults(ap, "crystalbert_topoa")
    return ap


def encode(data: Path) -> tuple[list, list[int], list[tuple[int, str]]]:
    from topogen.data.topoa import load_topoa
    from topogen.models.crystalbert.data import formula_examples

    encoded = formula_examples(load_topoa(data).labels, str(data))
    for bad in encoded.rejected:
        log(f"skipped {bad.id}: {bad.reason}")
    sgs = [e.tokens.space_group for e in encoded.examples]
    pairs = [(e.tokens.space_group, e.tokens.formula) for e in encoded.examples]
    return encoded.examples, sgs, pairs


def baselines(examples: list, fold, max_folds: int) -> dict:
    import lightgbm
    import numpy as np
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    from topogen.models.crystalbert.evaluate import classification_metrics

    y = np.array([e.target for e in examples])
    elements = np.stack([e.tokens.element_fractions for e in examples])
    sg = np.zeros((len(examples), 231), dtype=np.float32)
    sg[np.arange(len(examples)), [e.tokens.space_group for e in examples]] = 1
    bits = np.stack([e.tokens.electron_bits for e in examples])
    count = np.array([[e.tokens.n_electrons] for e in examples], dtype=np.float32)
    trees = np.hstack([sg, elements, bits, count])
    out: dict[str, list] = {name: [] for name in BASELINES}
    for f in range(max_folds):
        tr, te = fold != f, fold == f
        preds = {
            "majority": np.full(te.sum(), int(y[tr].mean() > 0.5)),
            "logistic_elements": LogisticRegression(max_iter=5000)
            .fit(elements[tr], y[tr])
            .predict(elements[te]),
            "lightgbm": lightgbm.LGBMClassifier(
                n_estimators=400, learning_rate=0.05, num_leaves=63, verbose=-1, n_jobs=2
            )
            .fit(trees[tr], y[tr])
            .predict(trees[te]),
        }
        for name, p in preds.items():
            out[name].append({"fold": f, **classification_metrics(y[te], p)})
    return {name: pd.DataFrame(rows) for name, rows in out.items()}


def main() -> None:
    args = parser().parse_args()
    import numpy as np
    import pandas as pd
    import torch

    from topogen.models.crystalbert.evaluate import (
        cross_validate,
        describe,
        fold_table,
        paired_differences,
        settings_with,
        stratified_group_folds,
        summarise,
    )
    from topogen.models.crystalbert.interpret import (
        plot_interpretation,
        space_group_feature,
        token_contributions,
        token_importance,
    )
    from topogen.models.crystalbert.settings import CrystalBertSettings

    torch.set_num_threads(args.threads)
    if not args.data.exists():
        sys.exit(f"TopoA data not found at {args.data} (see ../shared/data/README.md)")
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    examples, sgs, pairs = encode(args.data)
    y = np.array([e.target for e in examples])
    fold = stratified_group_folds(y, pairs, args.folds, args.seed)
    n_folds = min(args.folds, args.max_folds or args.folds)
    if n_folds < args.folds:
        fold = np.where(fold < n_folds, fold, -1)  # rows of folds not run train every fold
    log(f"{len(examples)} materials ({y.mean():.1%} topological), {args.folds} folds")
    folds = {name: df for name, df in baselines(examples, fold, n_folds).items()}
    base = CrystalBertSettings(graph=False, epochs=args.epochs, seed=args.seed)
    contributions: list[pd.DataFrame] = []
    test_rows: list[list[int]] = []

    def keep(f: int, module, test: list[int]) -> None:
        contributions.append(token_contributions(module, [examples[i] for i in test]))
        test_rows.append(test)

    for model in args.models:
        name = model if args.ensemble == 1 else f"{model}_x{args.ensemble}"
        path = args.out / f"folds-{name}.csv"
        if path.exists():
            log(f"{name}: kept from {path}")
            folds[name] = pd.read_csv(path)
            continue
        log(f"{name}: {ABLATIONS[model] or 'all tokens'}")
        settings = settings_with(base, **ABLATIONS[model])
        folds[name] = cross_validate(
            examples,
            fold,
            settings,
            args.out / "work" / model,
            on_fold=keep if model == "full" else None,
            members=args.ensemble,
            log=log,
        )
        folds[name].to_csv(path, index=False)
    table = fold_table(folds)
    table.to_csv(args.out / "folds.csv", index=False)
    summary = summarise(table)
    summary.to_csv(args.out / "summary.csv", index=False)
    for line in describe(summary):
        log(line)
    paired = paired_differences(table, "lightgbm")
    for _, r in paired.iterrows():
        log(
            f"{r['model']} - lightgbm: accuracy {100 * r['accuracy_difference_mean']:+.2f} +- "
            f"{100 * r['accuracy_difference_std']:.2f} points, ahead on {r['folds_ahead']} "
            f"folds, behind on {r['folds_behind']}"
        )
    result = {
        "materials": len(examples),
        "topological_share": float(y.mean()),
        "folds": args.folds,
        "folds_run": n_folds,
        "epochs": args.epochs,
        "ensemble": args.ensemble,
        "settings": base.as_dict(),
        "summary": summary.to_dict(orient="records"),
        "paired_vs_lightgbm": paired.to_dict(orient="records"),
        "paper_accuracy": PAPER,
        "seconds": round(time.perf_counter() - start),
        "data": CITE,
    }
    importance_path, groups_path = args.out / "token_importance.csv", args.out / "space_groups.csv"
    if contributions:
        contrib = pd.concat(contributions, ignore_index=True)
        rows = [i for t in test_rows for i in t]
        token_importance(contrib).to_csv(importance_path, index=False)
        space_group_feature(contrib, [sgs[i] for i in rows], y[rows]).to_csv(
            groups_path, index=False
        )
    if "full" in args.models and importance_path.exists() and groups_path.exists():
        result["space_group_correlation"] = plot_interpretation(
            pd.read_csv(importance_path),
            pd.read_csv(groups_path),
            args.out / "interpretation.png",
            f"CrystalBERT on TopoA; {CITE}",
        )
    (args.out / "summary.json").write_text(json.dumps(result, indent=1))
    log(f"wrote {args.out}/summary.json ({result['seconds']} s)")


if __name__ == "__main__":
    main()
