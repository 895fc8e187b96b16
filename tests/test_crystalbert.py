"""CrystalBERT: the model and its ablation switches, the folds, training on labels (real
TopoA rows where ../shared/data is present; an electron-parity rule otherwise), the
interpretability split of the head, and the topology classifier in the funnel's topology
step (pretrain -> classifier -> `screen topology` on the prototype library)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch

from topogen.encode.tokens import tokens_from_formula
from topogen.io.tables import Record, read_records, write_records
from topogen.models.crystalbert.data import GRAPH_PARAMS, crystal_example, formula_examples
from topogen.models.crystalbert.evaluate import classification_metrics, stratified_group_folds
from topogen.models.crystalbert.interpret import space_group_feature, token_contributions
from topogen.models.crystalbert.model import CrystalBert, Example, collate, n_parameters
from topogen.models.crystalbert.settings import FAMILIES, CrystalBertSettings
from topogen.models.crystalbert.train import CLASSIFICATION, CrystalBertTask, fit, load_task
from topogen.screen.topology import score_topology

SMALL = {"width": 32, "layers": 1, "heads": 2, "dropout": 0.0}
FORMULAS = ["Bi2Se3", "MoS2", "NaCl", "Si", "GaAs", "SnTe", "HgTe", "CdTe", "WTe2", "BN"]


def _structures():
    from pymatgen.core import Lattice, Structure

    hbn = Structure(
        Lattice.hexagonal(2.51, 20.0), ["B", "N"], [[1 / 3, 2 / 3, 0.5], [2 / 3, 1 / 3, 0.5]]
    )
    si = Structure(Lattice.cubic(5.43), ["Si"] * 2, [[0, 0, 0], [0.25, 0.25, 0.25]])
    return [hbn, si]


def _batch(with_graph: bool = True) -> tuple[dict, tuple[int, int]]:
    examples = [crystal_example(s, GRAPH_PARAMS if with_graph else None) for s in _structures()]
    examples.append(Example(tokens_from_formula(225, "NaCl")))  # no structure
    g = examples[0].graph
    return collate(examples), (g.x.shape[1], g.edge_attr.shape[1])


def test_each_ablation_switch_changes_the_input_and_the_parameter_count():
    batch, dims = _batch()
    full = CrystalBert(CrystalBertSettings(**SMALL), {"t": 2}, dims)
    assert full.tokens(batch).shape == (3, 8, 32)  # 5 space group + electrons + elements + graph
    assert full.token_slots() == ["hm", "pg", "system", "laue", "symmetry", "electrons",
                                  "elements", "graph"]  # fmt: skip
    sizes = {"space_group": 5, "electrons": 1, "elements": 1, "graph": 1}
    inputs = {"space_group": "token_ids", "electrons": "electron_bits",
              "elements": "element_fractions", "graph": "graphs"}  # fmt: skip
    torch.manual_seed(0)
    for family in FAMILIES:
        model = CrystalBert(CrystalBertSettings(**SMALL, **{family: False}), {"t": 2}, dims)
        assert model.tokens(batch).shape[1] == 8 - sizes[family], family
        assert n_parameters(model) < n_parameters(full), family
        # the switched-off family's input no longer reaches the output
        model.eval()
        changed = dict(batch)
        key = inputs[family]
        if key == "graphs":
            changed["has_graph"] = torch.zeros_like(batch["has_graph"])
            changed["graphs"] = None
        elif key == "token_ids":
            changed[key] = torch.ones_like(batch[key])
        else:
            changed[key] = torch.rand_like(batch[key])
        torch.testing.assert_close(model(changed, "t"), model(batch, "t"))
        full.eval()
        assert not torch.allclose(full(changed, "t"), full(batch, "t")), family
    dense = CrystalBert(CrystalBertSettings(**SMALL, transformer=False), {"t": 2}, dims)
    assert n_parameters(dense) != n_parameters(full)
    assert not any(isinstance(m, torch.nn.TransformerEncoder) for m in dense.modules())
    assert dense(batch, "t").shape == (3, 2)
    with pytest.raises(ValueError, match="at least one token family"):
        CrystalBert(CrystalBertSettings(**{f: False for f in FAMILIES}), {"t": 2}, dims)
    with pytest.raises(ValueError, match="graph_dims"):
        CrystalBert(CrystalBertSettings(**SMALL), {"t": 2})


def test_graph_token_uses_the_structure_and_falls_back_without_one():
    batch, dims = _batch()
    model = CrystalBert(CrystalBertSettings(**SMALL), {"t": 2}, dims).eval()
    tokens = model.tokens(batch)[:, -1] - model.position[-1]
    torch.testing.assert_close(tokens[2], model.no_graph)  # NaCl from a formula
    assert not torch.allclose(tokens[0], model.no_graph)
    assert not torch.allclose(tokens[0], tokens[1])  # hBN and Si differ


def test_folds_are_stratified_and_keep_each_pair_in_one_fold():
    rng = np.random.default_rng(1)
    sgs, formulas = rng.integers(1, 20, 600), rng.integers(0, 10, 600)
    pairs = [(int(sg), FORMULAS[int(f)]) for sg, f in zip(sgs, formulas, strict=True)]
    label_of = {p: int(rng.random() < 0.4) for p in set(pairs)}
    labels = np.array([label_of[p] for p in pairs])
    fold = stratified_group_folds(labels, pairs, 11, seed=3)
    assert set(fold) == set(range(11))
    where: dict = {}
    for p, f in zip(pairs, fold, strict=True):
        where.setdefault(p, set()).add(int(f))
    assert all(len(f) == 1 for f in where.values())  # a (space group, formula) pair: one fold
    share = labels.mean()
    for f in range(11):
        in_fold = labels[fold == f]
        # whole pairs (up to a few rows each) move together: within a few rows of the share
        assert abs(in_fold.sum() - share * len(in_fold)) <= 4, (f, in_fold.sum(), len(in_fold))
    # unique pairs: exactly stratified (class counts differ by at most one between folds)
    unique = [(i, "x") for i in range(110)]
    y = np.array([1] * 44 + [0] * 66)
    fold = stratified_group_folds(y, unique, 11)
    assert {int(y[fold == f].sum()) for f in range(11)} == {4}
    with pytest.raises(ValueError, match="cannot make"):
        stratified_group_folds([0, 1], [(1, "a"), (1, "a")], 2)


def test_rows_that_cannot_be_encoded_are_rejected_with_the_reason():
    labels = pd.DataFrame(
        {"space_group": [225, 191, 12], "formula": ["NaCl", "Rf", "Bi2Se3"], "label": [0, 1, 1]}
    )
    data = formula_examples(labels, "ti_ccmp.txt")
    assert data.ids == ["225 NaCl", "12 Bi2Se3"] and [e.target for e in data.examples] == [0, 1]
    (bad,) = data.rejected
    assert bad.item == "1" and bad.id == "191 Rf" and "unsupported species Rf" in bad.reason


def test_classification_metrics():
    m = classification_metrics([1, 1, 0, 0, 1], [1, 0, 0, 1, 1])
    assert m["accuracy"] == pytest.approx(0.6)
    assert m["precision"] == pytest.approx(2 / 3) and m["recall"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(2 / 3)
    assert classification_metrics([1, 0], [0, 0])["f1"] == 0.0


def _parity_examples(n: int, seed: int) -> list[Example]:
    """Formulas A_x B_y with random elements: label 1 when the electron count is odd."""
    from pymatgen.core import Element

    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        a, b = rng.choice(np.arange(1, 84), 2, replace=False)
        formula = f"{Element.from_Z(int(a))}{rng.integers(1, 4)}{Element.from_Z(int(b))}"
        tokens = tokens_from_formula(int(rng.integers(1, 231)), formula)
        out.append(Example(tokens, None, tokens.n_electrons % 2))
    return out


def _train_and_score(train, test, tmp_path, epochs):
    settings = CrystalBertSettings(**SMALL, graph=False, epochs=epochs, lr=1e-3, warmup=0)
    module = CrystalBertTask(dataclasses.asdict(settings), "topology", CLASSIFICATION, 2)
    fit(module, train, tmp_path / "w", out=tmp_path / "m.ckpt", accelerator="cpu")
    truth = np.array([e.target for e in test])
    pred = module.predict(test).argmax(1)
    majority = max(truth.mean(), 1 - truth.mean())
    return float((pred == truth).mean()), majority, module


def test_model_trains_on_fixture_labels_and_beats_the_majority(tmp_path):
    """An electron-parity rule (learnable from the electron-count token only)."""
    examples = _parity_examples(600, seed=0)
    acc, majority, module = _train_and_score(examples[:450], examples[450:], tmp_path, 15)
    assert acc >= majority + 0.25, (acc, majority)
    loaded = load_task(tmp_path / "m.ckpt")  # weights_only
    np.testing.assert_allclose(loaded.predict(examples[450:]), module.predict(examples[450:]),
                               rtol=1e-5, atol=1e-6)  # fmt: skip


def test_an_ensemble_averages_the_probabilities_of_its_seeds(tmp_path):
    from topogen.models.crystalbert.evaluate import cross_validate
    from topogen.models.crystalbert.train import new_classifier

    examples = _parity_examples(160, seed=1)
    fold = np.arange(160) % 2
    settings = CrystalBertSettings(**SMALL, graph=False, epochs=2, lr=1e-3, warmup=0, seed=3)
    table = cross_validate(examples, fold, settings, tmp_path / "cv", members=2, log=print)
    # the same by hand: seeds 3 and 4 trained alone, their probabilities averaged
    truth = np.array([e.target for e in examples])
    for f in (0, 1):
        test = [examples[i] for i in np.flatnonzero(fold == f)]
        train = [examples[i] for i in np.flatnonzero(fold != f)]
        probabilities, size = [], 0
        for seed in (3, 4):
            module = new_classifier(dataclasses.replace(settings, seed=seed), classes=2)
            fit(module, train, tmp_path / f"alone{f}{seed}", resume=False, accelerator="cpu")
            probabilities.append(module.predict(test))
            size += n_parameters(module.model)
        assert not np.allclose(probabilities[0], probabilities[1])  # two different members
        pred = (probabilities[0] + probabilities[1]).argmax(1)
        expected = classification_metrics(truth[fold == f], pred)
        row = table.set_index("fold").loc[f]
        assert row["accuracy"] == pytest.approx(expected["accuracy"])
        assert row["f1"] == pytest.approx(expected["f1"])
        assert row["parameters"] == size


def test_model_beats_the_majority_on_held_out_topoa(tmp_path):
    """Real TopoA labels (space group + formula): a 2,000-row sample, 500 held out."""
    from topogen.data.shared import shared_data_root
    from topogen.data.topoa import load_topoa

    root = shared_data_root()
    if root is None or not (root / "topoa").exists():
        pytest.skip("../shared/data/topoa is absent (set TOPOGEN_SHARED_DATA)")
    labels = load_topoa(root / "topoa").labels.sample(2000, random_state=0)
    examples = formula_examples(labels, "topoa").examples
    acc, majority, _ = _train_and_score(examples[:1500], examples[1500:], tmp_path, 6)
    assert acc >= majority + 0.15, (acc, majority)


def test_token_contributions_add_up_to_the_topological_margin(tmp_path):
    examples = _parity_examples(64, seed=1)
    settings = CrystalBertSettings(**SMALL, graph=False, epochs=1)
    module = CrystalBertTask(dataclasses.asdict(settings), "topology", CLASSIFICATION, 2)
    module.eval()
    contrib = token_contributions(module, examples)
    assert list(contrib.columns) == module.model.token_slots()
    with torch.no_grad():
        logits = module(collate(examples))
    head = module.model.heads["topology"]
    margin = ((logits[:, 1] - logits[:, 0]) - (head.bias[1] - head.bias[0])).detach()
    np.testing.assert_allclose(contrib.sum(axis=1), margin.numpy(), rtol=1e-4, atol=1e-5)
    groups = space_group_feature(contrib, [e.tokens.space_group for e in examples],
                                 [e.target for e in examples])  # fmt: skip
    assert groups["crystals"].sum() == 64
    sg = examples[0].tokens.space_group
    rows = [i for i, e in enumerate(examples) if e.tokens.space_group == sg]
    expected = contrib.loc[rows, ["hm", "pg", "system", "laue", "symmetry"]].sum(axis=1).mean()
    assert groups.set_index("space_group").at[sg, "mean_feature"] == pytest.approx(expected)


class _Scores:
    """A scorer with known scores per formula; raises for one."""

    def __init__(self, scores: dict[str, float]) -> None:
        self.scores = scores

    def __call__(self, structures):
        out = []
        for s in structures:
            f = s.composition.reduced_formula
            if f not in self.scores:
                raise ValueError(f"cannot encode {f}")
            out.append(self.scores[f])
        return out


def _funnel(records):
    from topogen.screen.funnel import funnel_frame

    rows = [{"id": r.id, "formula": r.formula, "topology": "skipped",
             "topology_reason": "no topology model", "passed": True} for r in records]  # fmt: skip
    rows.append({"id": "dead", "topology": "skipped", "topology_reason": "not reached",
                 "passed": False})  # fmt: skip
    return funnel_frame(rows)


def test_score_topology_filters_or_ranks_and_names_failures():
    hbn, si = _structures()
    from pymatgen.core import Lattice, Structure

    c = Structure(Lattice.cubic(3.6), ["C"], [[0, 0, 0]])
    scorer = _Scores({"BN": 0.3, "Si": 0.9})
    make = lambda: [Record("bn", "g", hbn), Record("si", "g", si), Record("c", "g", c)]  # noqa: E731
    recs = make()
    df, kept = score_topology(_funnel(recs), recs, scorer, mode="filter", topology_min=0.5)
    f = df.set_index("id")
    assert [r.id for r in kept] == ["si"]
    assert f.at["bn", "topology"] == "fail" and not f.at["bn", "passed"]
    assert f.at["c", "topology"] == "failed" and "cannot encode C" in f.at["c", "topology_reason"]
    assert f.at["si", "topology_score"] == pytest.approx(0.9) and f.at["si", "passed"]
    assert f.at["dead", "topology"] == "skipped" and pd.isna(f.at["dead", "topology_score"])
    assert kept[0].properties["screen_topology"] == "pass"
    recs = make()
    df, kept = score_topology(_funnel(recs), recs, scorer, mode="rank", topology_min=0.5)
    assert [r.id for r in kept] == ["si", "bn"]  # by score; the failed one is out
    assert "ranked" in df.set_index("id").at["bn", "topology_reason"]
    recs = make()
    same, kept = score_topology(_funnel(recs), recs, None)
    assert (same["topology"] == "skipped").all() and len(kept) == 3
    with pytest.raises(ValueError, match="mode"):
        score_topology(_funnel(recs), recs, scorer, mode="sort")


def test_selection_ranks_each_cluster_by_a_property(tmp_path):
    from topogen.screen.selection import select_file

    hbn, si = _structures()
    recs = []
    for i in range(6):
        s = (hbn if i < 3 else si).copy()
        s.perturb(0.01 * (i + 1))
        recs.append(Record(f"r{i}", "g", s, {"topology_score": [0.1, 0.8, 0.3, 0.2, 0.1, 0.7][i]}))
    write_records(recs, tmp_path / "s.parquet")
    plain = select_file(tmp_path / "s.parquet", tmp_path / "a.parquet", 2, seed=0)
    ranked = select_file(tmp_path / "s.parquet", tmp_path / "b.parquet", 2, seed=0,
                         rank_by="topology_score")  # fmt: skip
    assert {r.id for r in ranked} == {"r1", "r5"}  # each cluster's best score
    assert {r.properties["dft_cluster"] for r in plain} == {
        r.properties["dft_cluster"] for r in ranked
    }


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    """The prototype library with its literature labels (37 labelled crystals)."""
    from topogen.data import prototypes as P

    root = tmp_path_factory.mktemp("cb")
    records = P.labels_for(
        Record(c.id, "prototypes", c.structure, {"prototype": c.prototype}) for c in P.candidates()
    )
    write_records(records, root / "table.parquet")
    return root, records


def test_pretrain_classifier_and_topology_step_from_the_command_line(library, cli):
    """`train crystalbert` -> `train topology-classifier --pretrained` -> `screen topology`
    on the library's structures: weights carried over, cross-validation next to the
    majority class, and the scores are the classifier's probabilities."""
    import json

    root, records = library
    small = ["--width", "32", "--layers", "1", "--heads", "2", "--threads", "2", "--gpus", "0"]
    res = cli("train", "crystalbert", "--table", root / "table.parquet", "--out",
              root / "pre.ckpt", "--metrics", root / "pre.json", "--workdir", root / "pw",
              "--epochs", "3", *small)  # fmt: skip
    assert res.returncode == 0, res.stderr
    pre = json.loads((root / "pre.json").read_text())
    assert pre["n_train"] + pre["n_held_out"] == len(records) and pre["mae_a"] > 0
    res = cli("train", "topology-classifier", "--table", root / "table.parquet", "--pretrained",
              root / "pre.ckpt", "--out", root / "topo.ckpt", "--metrics", root / "topo.json",
              "--workdir", root / "tw", "--epochs", "5", "--folds", "3", *small)  # fmt: skip
    assert res.returncode == 0, res.stderr
    metrics = json.loads((root / "topo.json").read_text())
    labelled = [r for r in records if r.properties.get("topo2d") is not None]
    assert metrics["crystals"] == len(labelled) and metrics["folds"] == 3
    assert {row["model"] for row in metrics["cross_validation"]} == {"crystalbert", "majority"}
    assert "accuracy" in res.stderr and "majority" in res.stderr
    # one progress line per epoch, plain text (no control characters for SLURM logs)
    epochs = [ln for ln in res.stderr.splitlines() if f"{root / 'tw'}/final: epoch " in ln]
    counts = [ln.split(": epoch ")[1].split(" ")[0] for ln in epochs]
    assert counts == [f"{k}/5" for k in range(1, 6)]
    assert epochs[-1].endswith(tuple("0123456789")) and "~0 s left" in epochs[-1]
    assert not any(c in res.stderr for c in "\r\x1b")
    # the pretrained encoder was the starting point: a classifier with a different width fails
    res = cli("train", "topology-classifier", "--table", root / "table.parquet", "--pretrained",
              root / "pre.ckpt", "--out", root / "bad.ckpt", "--metrics", root / "bad.json",
              "--workdir", root / "bw", "--epochs", "1", "--folds", "0", *small[:-6], "--width",
              "16", "--layers", "1", "--heads", "2")  # fmt: skip
    assert res.returncode != 0 and "does not match these settings" in res.stderr
    # the funnel's topology step on a few library structures, in rank mode
    from topogen.models.crystalbert.scorer import TopologyClassifier
    from topogen.screen.chunks import write_funnel
    from topogen.screen.funnel import funnel_frame

    chosen = records[:5]
    write_records(chosen, root / "survivors.parquet")
    rows = [{"id": r.id, "formula": r.formula, "topology": "skipped", "passed": True}
            for r in chosen]  # fmt: skip
    write_funnel(funnel_frame(rows), root / "funnel.parquet")
    res = cli("screen", "topology", "--funnel-in", root / "funnel.parquet", "--structures-in",
              root / "survivors.parquet", "--model", root / "topo.ckpt", "--mode", "rank",
              "--funnel", root / "f.parquet", "--out", root / "s.parquet")  # fmt: skip
    assert res.returncode == 0, res.stderr
    expected = TopologyClassifier(root / "topo.ckpt")([r.structure for r in chosen])
    f = pd.read_parquet(root / "f.parquet").set_index("id").loc[[r.id for r in chosen]]
    np.testing.assert_allclose(f["topology_score"], expected, rtol=1e-5)
    ranked = [r.properties["topology_score"] for r in read_records(root / "s.parquet")]
    assert ranked == sorted(ranked, reverse=True) and len(ranked) == 5
    with pytest.raises(Exception, match="not a topology classifier"):
        TopologyClassifier(root / "pre.ckpt")


def test_topoa_benchmark_smoke(tmp_path):
    """bench/crystalbert_topoa.py end to end on the shared TopoA files: one fold of 11, one
    epoch, the full model and the dense ablation next to the three baselines."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    from topogen.data.shared import shared_data_root

    root = shared_data_root()
    if root is None or not (root / "topoa").exists():
        pytest.skip("../shared/data/topoa is absent (set TOPOGEN_SHARED_DATA)")
    bench = Path(__file__).parents[1] / "bench" / "crystalbert_topoa.py"
    res = subprocess.run(
        [sys.executable, str(bench), "--data", str(root / "topoa"), "--out", str(tmp_path),
         "--epochs", "1", "--max-folds", "1", "--models", "full", "no_transformer",
         "--threads", "2"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    result = json.loads((tmp_path / "summary.json").read_text())
    rows = {r["model"]: r for r in result["summary"]}
    assert set(rows) == {"majority", "logistic_elements", "lightgbm", "full", "no_transformer"}
    assert result["materials"] > 10_000 and result["folds_run"] == 1
    assert rows["majority"]["accuracy_mean"] == pytest.approx(1 - result["topological_share"],
                                                              abs=0.02)  # fmt: skip
    for name in ("logistic_elements", "lightgbm", "full"):
        assert rows[name]["accuracy_mean"] > rows["majority"]["accuracy_mean"] + 0.15, name
    folds = pd.read_csv(tmp_path / "folds.csv")
    assert (folds.groupby("model").size() == 1).all()
    paired = {r["model"]: r for r in result["paired_vs_lightgbm"]}
    assert set(paired) == set(rows) - {"lightgbm"}
    trees = folds.set_index("model").at["lightgbm", "accuracy"]
    full = folds.set_index("model").at["full", "accuracy"]
    assert paired["full"]["accuracy_difference_mean"] == pytest.approx(full - trees)
    importance = pd.read_csv(tmp_path / "token_importance.csv")
    assert set(importance["slot"]) == {"hm", "pg", "system", "laue", "symmetry", "electrons",
                                       "elements"}  # fmt: skip
    # the space-group feature tracks the share of topological materials per group (Fig. 3)
    assert result["space_group_correlation"] > 0.3
    groups = pd.read_csv(tmp_path / "space_groups.csv")
    assert groups["crystals"].sum() == folds.loc[folds["model"] == "full", "n_test"].iloc[0]


def test_paired_differences_compare_fold_by_fold():
    from topogen.models.crystalbert.evaluate import paired_differences

    folds = pd.DataFrame(
        {
            "model": ["trees"] * 3 + ["bert"] * 3,
            "fold": [0, 1, 2, 2, 0, 1],  # any order: matched by fold
            "accuracy": [0.80, 0.90, 0.70, 0.75, 0.82, 0.88],
        }
    )
    (row,) = paired_differences(folds, "trees").to_dict(orient="records")
    assert row["model"] == "bert" and row["folds_ahead"] == 2 and row["folds_behind"] == 1
    assert row["accuracy_difference_mean"] == pytest.approx((0.02 - 0.02 + 0.05) / 3)


def test_initial_weights_depend_on_the_seed_only():
    """A fold's model starts the same whatever ran before it in the process."""
    settings = dataclasses.asdict(CrystalBertSettings(**SMALL, graph=False, seed=5))
    a = CrystalBertTask(settings, "topology", CLASSIFICATION, 2).state_dict()
    torch.rand(1000)  # the global generator moves on
    b = CrystalBertTask(settings, "topology", CLASSIFICATION, 2).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    other = CrystalBertTask({**settings, "seed": 6}, "topology", CLASSIFICATION, 2).state_dict()
    assert not all(torch.equal(a[k], other[k]) for k in a)
