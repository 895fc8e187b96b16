"""The Snakemake workflow: dry run, lint, config validation, and a real run of the default."""

from __future__ import annotations

import json
import os
import re
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import copy_workflow, run
from pymatgen.core import Composition
from report_browser import CHROMIUM, broken_links
from report_browser import render as render_report

from topogen.encode.store import load_encoded
from topogen.io.quarantine import read_quarantine
from topogen.io.tables import read_records


@pytest.fixture
def workdir(repo_root, tmp_path) -> Path:
    """A copy of the workflow, so tests never write into the checkout."""
    return copy_workflow(repo_root, tmp_path / "wf")


def snakemake(workdir: Path, *args: str, timeout: int = 600):
    return run(["snakemake", *args], cwd=workdir, timeout=timeout)


def test_dry_run_plans_the_default(workdir):
    res = snakemake(workdir, "-n")
    assert res.returncode == 0, res.stderr
    for rule in (
        "build_prototypes",
        "merge_structures",
        "summarize_structures",
        "encode_graphs",
        "encode_tokens",
    ):
        assert f"rule {rule}:" in res.stdout


def test_lint_is_clean(workdir):
    res = snakemake(workdir, "--lint")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "Congratulations, your workflow is in a good condition" in res.stdout + res.stderr


@pytest.mark.parametrize(
    ("override", "words"),
    [
        ("seed=-1", ["seed", "minimum"]),
        ("sede=1", ["(top level): unknown key 'sede'; did you mean 'seed'?"]),
        ("screen={'chunkz':3}", ["screen: unknown key 'chunkz'; did you mean 'chunks'?"]),
        ("data={'merge':['nope']}", ["nope", "does not match"]),
        ("data={'imports':{'x':{'files':[]}}}", ["files", "should be non-empty"]),
        ("data={'qm9':{'sha256':'abc'}}", ["abc", "does not match"]),
        ("data={'c2db':{'topological':['QSHI','QAHI']}}", ["QAHI", "is not one of"]),
    ],
)
def test_bad_config_gets_a_clear_message(workdir, override, words):
    res = snakemake(workdir, "-n", "--config", override)
    assert res.returncode != 0
    text = res.stdout + res.stderr
    assert "does not match workflow/schemas/config.schema.yaml" in text
    for word in words:
        assert word in text
    assert len(text.splitlines()) < 12, text  # the key and the reason, not the whole schema


def test_the_configuration_reference_is_current(repo_root):
    """docs/configuration.md is generated from the schema and both configs; regenerate it
    with `topogen report config-reference` after changing any of them."""
    from topogen.report.config_reference import render

    load = lambda rel: yaml.safe_load((repo_root / rel).read_text())  # noqa: E731
    text = render(
        load("workflow/schemas/config.schema.yaml"),
        load("config/config.yaml"),
        load("config/paper.yaml"),
    )
    assert (repo_root / "docs/configuration.md").read_text() == text, (
        "docs/configuration.md is stale: run `topogen report config-reference`"
    )
    for key in ("seed", "screen.chunks", "dft.top_k", "train.gan.stage3.topology_model"):
        assert f"| `{key}` |" in text, key


def test_the_same_structure_as_both_dft_controls_is_refused(workdir):
    res = snakemake(workdir, "-n", "--config", "dft={'controls':{'qsh':'Bi2','trivial':'Bi2'}}")
    assert res.returncode != 0
    assert "dft.controls: qsh and trivial are both 'Bi2'" in res.stdout + res.stderr


def test_a_float_where_an_integer_belongs_is_named(workdir):
    """YAML's 4.0 is a float: rejected by the schema check, not a TypeError in a rule file."""
    res = snakemake(workdir, "-n", "--configfile", _override(workdir, "screen: {chunks: 4.0}"))
    assert res.returncode != 0
    assert "screen.chunks: 4.0 is not of type 'integer'" in res.stderr + res.stdout


def test_a_yaml_syntax_error_names_the_file_and_line(workdir, cli):
    """In the workflow's own config, the workflow says where; in a --configfile Snakemake
    reads it first and says neither, so `topogen config check` (named in the README) does."""
    bad = _override(workdir, "screen:\n  chunks: [2\ndft: {top_k: 3}\n")
    res = cli("config", "check", bad, cwd=workdir)
    assert res.returncode == 1 and res.stdout == ""
    assert res.stderr.startswith(f"topogen: error: {bad}:3:4: YAML syntax error: "), res.stderr
    assert len(res.stderr.splitlines()) == 1
    res = cli("config", "check", _override(workdir, "screen: {chunks: 4.0}"), cwd=workdir)
    assert "screen.chunks: 4.0 is not of type 'integer'" in res.stderr and res.returncode == 1
    res = cli("config", "check", "config/paper.yaml", cwd=workdir)
    assert res.returncode == 0, res.stderr
    own = workdir / "config/config.yaml"
    own.write_text(own.read_text() + "extra: [unclosed\n")
    res = snakemake(workdir, "-n")
    assert res.returncode != 0
    text = res.stdout + res.stderr
    assert re.search(r"config/config\.yaml:\d+:\d+: YAML syntax error", text), text


def test_paper_config_validates_and_plans_c2db(workdir):
    """paper.yaml merged on the default passes the schema and plans the C2DB pair."""
    res = snakemake(workdir, "-n", "--configfile", "config/paper.yaml")
    assert res.returncode == 0, res.stdout + res.stderr
    for rule in ("download_c2db", "normalize_c2db", "merge_structures"):
        assert rule in res.stdout
    assert "build_prototypes" not in res.stdout


def test_unknown_import_set_is_named(workdir):
    res = snakemake(workdir, "-n", "--config", "data={'merge':['import/nope']}")
    assert res.returncode != 0
    assert "data.merge names 'import/nope', but data.imports has no 'nope'" in (
        res.stdout + res.stderr
    )


def test_unset_source_url_is_named(workdir):
    res = snakemake(workdir, "-n", "--config", "data={'merge':['tqc']}")
    assert res.returncode != 0
    assert "data.tqc.url is not set" in res.stdout + res.stderr


@pytest.mark.parametrize(
    ("target", "rules"),
    [
        ("results/data/jarvis_c2db.parquet", ["download_jarvis_c2db", "normalize_jarvis_c2db"]),
        ("results/data/mp.parquet", ["download_mp", "normalize_mp"]),
        ("results/data/qm9.parquet", ["download_qm9", "normalize_qm9"]),
        ("results/data/topoa.parquet", ["normalize_topoa"]),
    ],
)
def test_each_source_is_a_rule_pair(workdir, target, rules):
    topoa = workdir.parent / "shared/data/topoa"  # the default data.topoa.dir
    topoa.mkdir(parents=True)
    for name in ("ti", "tci", "case1", "case3"):
        (topoa / f"{name}_ccmp.txt").write_text("2, Bi2Se3\n")
    res = snakemake(workdir, "-n", target)
    assert res.returncode == 0, res.stdout + res.stderr
    for rule in rules:
        assert f"rule {rule}:" in res.stdout


# Each conda env: pyproject's base dependencies plus these extras, with identical pins.
CI_STAGE1_EPOCHS = 25  # the demo test's GAN Stage I (make demo: train.gan.stage1 of the config)
ENV_EXTRAS = {"ml": ["ml"], "data": ["mp", "qm9"], "dft": []}


def test_conda_envs_pin_what_pyproject_pins(repo_root):
    project = tomllib.loads((repo_root / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    assert sorted(p.name for p in (repo_root / "envs").glob("*.yaml")) == sorted(
        f"{name}.yaml" for name in ENV_EXTRAS
    )
    for name, wanted in ENV_EXTRAS.items():
        env = yaml.safe_load((repo_root / "envs" / f"{name}.yaml").read_text())
        pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
        pins = [p for p in pip if not p.startswith("-")]
        expected = [*project["dependencies"], *(p for e in wanted for p in extras[e])]
        assert pins == expected, f"envs/{name}.yaml drifted from pyproject.toml"
    dft = yaml.safe_load((repo_root / "envs/dft.yaml").read_text())
    assert not any("torch" in str(d) for d in dft["dependencies"])  # no ML stack for DFT


def test_rules_use_envs_with_their_clients(repo_root):
    """download_mp (mp-api) and normalize_qm9 (qm9pack) run in the env that has them."""
    text = (repo_root / "workflow/rules/data.smk").read_text()
    for rule in ("download_mp", "normalize_qm9"):
        block = text[text.index(f"rule {rule}:") :].split("\n\n\n")[0]
        assert '"../../envs/data.yaml"' in block, rule


def _min_distance(structure) -> float:
    dmat = structure.distance_matrix + np.diag([np.inf] * len(structure))
    images = min(structure.lattice.abc)  # an atom and its own periodic image
    return float(min(dmat.min(), images))


def _check_rendered_report(report: Path, scratch: Path) -> None:
    """The report as a reader sees it in Chromium: every result opens, every figure shows
    a decoded, non-empty image, every caption is there, and no link leads nowhere."""
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing in CI (make test installs it as root)")
        pytest.skip("chromium is not installed (make test installs it as root)")
    view = render_report(report, scratch)
    assert view["results"], "no result in the report"
    for path, seen in view["results"].items():
        assert seen["caption"] > 0, path
        if seen["mime"].startswith("image/"):
            assert seen["shown"] and seen["natural_width"] > 100, (path, seen)
            assert seen["width"] > 100 and seen["height"] > 50, (path, seen)
    assert broken_links(view["links"], report.parent) == []


@pytest.mark.slow
def test_default_workflow_builds_the_library_and_runs(workdir, cli):
    """`make demo`'s DAG from scratch: the offline library, the merged table, encodings, the
    GAN, LoGAN and the self-supervised generator, the funnel with every step, DFT on
    dft.top_k candidates of each. Three savings for CI (each about 3 minutes on 2 cores): GAN
    Stage I runs CI_STAGE1_EPOCHS instead of the demo's 100, the controls are skipped
    (tests/test_dft_workflow.py runs them through these rules), and the self-supervised
    generator trains a few epochs and its 8 candidates (16 in the demo) end at select_dft."""
    config = workdir / "config/config.yaml"  # the copy's: every later call sees the same
    cfg = yaml.safe_load(config.read_text())
    cfg["train"]["gan"]["stage1"]["epochs"] = CI_STAGE1_EPOCHS
    cfg["dft"]["controls"] = {"qsh": None, "trivial": None}
    # the self-supervised generator's candidates stop after select_dft here (its DFT runs
    # the same rules as the others'; a full demo run sent ZrBr2 and InSe to a verdict)
    cfg["dft"]["candidates"] = [f"results/screen/{n}/selected.parquet" for n in ("gan", "logan")]
    ssl = cfg["train"]["ssl"]
    ssl["sample"]["n"] = 8
    ssl["pretrain"]["epochs"], ssl["gan"]["epochs"] = 5, 2  # denoises already (0.2 of 0.1)
    for head in ssl["finetune"].values():
        head["epochs"] = 3
    config.write_text(yaml.safe_dump(cfg, sort_keys=False))
    res = snakemake(workdir, "--cores", "2", timeout=3600)
    assert res.returncode == 0, res.stderr[-3000:]
    library = read_records(workdir / "results/data/prototypes.parquet")
    assert len(library) >= 200
    assert len({r.id for r in library}) == len(library)
    for r in library:
        p = r.properties
        assert p["relaxed"] and p["relaxer"] == "CHGNet" and p["converged"], r.id
        assert p["dim"] == 2 and r.structure.lattice.c - p["thickness"] >= 15.0, r.id
        assert _min_distance(r.structure) >= 0.7, r.id
    assert {r.properties["topo2d"] for r in library} == {0, 1, None}
    rejected = read_quarantine(workdir / "results/data/prototypes.parquet.quarantine.csv")
    assert all(q.reason for q in rejected)
    merged = read_records(workdir / "results/data/structures.parquet")
    assert [r.id for r in merged] == [r.id for r in library]
    graphs = load_encoded(workdir / "results/encode/graphs.pt", "graphs")
    assert graphs["ids"] == [r.id for r in library]
    summary = json.loads((workdir / "results/report/structures.json").read_text())
    assert summary["rows"] == len(library)
    assert summary["quarantined"] == {"prototypes": len(rejected), "structures": 0}
    lineage = cli("provenance", "results/encode/tokens.pt", cwd=workdir)
    assert lineage.returncode == 0, lineage.stderr
    for step in ("topogen encode tokens", "topogen data merge", "topogen data prototypes"):
        assert step in lineage.stdout
    assert "resources/topo2d_labels.csv" in lineage.stdout
    # nothing left to do; a forced merge reruns merge and what follows it, not the library
    assert "Nothing to be done" in snakemake(workdir, "-n").stdout
    plan = snakemake(workdir, "-n", "--forcerun", "merge_structures").stdout
    for rule in ("merge_structures", "summarize_structures", "encode_graphs", "encode_tokens"):
        assert f"rule {rule}:" in plan
    assert "build_prototypes" not in plan
    # the GAN: images -> three stages -> candidates, each stage with per-epoch metrics
    ae = json.loads((workdir / "results/models/autoencoder/metrics.json").read_text())
    assert ae["held_out"]["n"] >= 40 and ae["held_out"]["reproduced"] >= 0.8, ae["held_out"]
    gan = yaml.safe_load((workdir / "config/config.yaml").read_text())["train"]["gan"]
    for stage in (1, 2, 3):
        epochs = gan[f"stage{stage}"]["epochs"]
        m = pd.read_csv(workdir / f"results/models/gan/stage{stage}/metrics.csv")
        assert m["epoch"].tolist() == list(range(epochs)), stage
    m3 = pd.read_csv(workdir / "results/models/gan/stage3/metrics.csv")
    assert m3["oracle_stable"].between(0, 1).all() and m3["oracle_insulating"].isna().all()
    of_record = json.loads((workdir / "results/models/gan/stage3/metrics.json").read_text())
    assert of_record["rescored"]["counts"]["stable"]["n"] == 128  # fresh samples, 90% interval
    candidates = read_records(workdir / "results/generate/gan/candidates.parquet")
    bad = read_quarantine(workdir / "results/generate/gan/candidates.parquet.quarantine.csv")
    n = gan["sample"]["n"]
    assert len(candidates) + len(bad) == n and len(candidates) > 0
    lineage = cli("provenance", "results/generate/gan/candidates.parquet", cwd=workdir)
    assert lineage.returncode == 0, lineage.stderr
    for step in ("topogen generate gan", "--stage 3", "--stage 2", "--stage 1", "encode images"):
        assert step in lineage.stdout, step
    # the funnel: band gap (CGCNN on the MC2D gaps) ran on every candidate that passed the
    # phonons; the CGCNN beats predicting the mean
    cg = json.loads((workdir / "results/models/cgcnn/metrics.json").read_text())
    assert cg["n_train"] + cg["n_val"] + cg["n_test"] == 258
    assert cg["test_mae_ev"] < cg["test_mae_of_train_mean_ev"]
    funnel = pd.read_parquet(workdir / "results/screen/gan/funnel.parquet")
    stable = funnel[funnel["phonons"] == "pass"]
    assert (stable["band_gap"] != "skipped").all()
    assert stable["predicted_band_gap"].notna().all()
    # the topology step (score_topology, rank mode): the CrystalBERT classifier, pretrained
    # and cross-validated on the library's labels, scored every candidate that reached it
    # (its relaxed structure); the survivors come ordered by score
    from topogen.models.crystalbert.scorer import TopologyClassifier

    topo = json.loads((workdir / "results/models/crystalbert/topology.json").read_text())
    assert topo["crystals"] == sum(r.properties["topo2d"] is not None for r in library)
    assert {row["model"] for row in topo["cross_validation"]} == {"crystalbert", "majority"}
    scorer = TopologyClassifier(workdir / "results/models/crystalbert/topology.ckpt")
    for name in ("gan", "logan", "ssl"):
        table = pd.read_parquet(workdir / f"results/screen/{name}/funnel.parquet")
        reached = table[table["band_gap"] == "pass"].set_index("id")
        assert (reached["topology"] == "pass").all() and (table["topology"] != "fail").all()
        assert table.loc[table["band_gap"] != "pass", "topology_score"].isna().all()
        survivors = read_records(workdir / f"results/screen/{name}/survivors.parquet")
        assert sorted(r.id for r in survivors) == sorted(reached.index), name
        if survivors:
            expected = scorer([r.structure for r in survivors])
            got = reached.loc[[r.id for r in survivors], "topology_score"].to_numpy()
            np.testing.assert_allclose(got, expected, rtol=1e-4)
            assert list(got) == sorted(got, reverse=True), name
    # LoGAN: every member's samples (or their quarantine rows), screened by the same funnel
    logan = yaml.safe_load((workdir / "config/config.yaml").read_text())["train"]["logan"]
    members = len(logan["targets"]) * len(logan["members"]["seeds"]) * len(logan["members"]["sets"])
    sampled = read_records(workdir / "results/generate/logan/candidates.parquet")
    bad = read_quarantine(workdir / "results/generate/logan/candidates.parquet.quarantine.csv")
    assert len(sampled) + len(bad) == members * logan["sample"]["n"]
    targets = {Composition(t["formula"]).reduced_formula for t in logan["targets"].values()}
    assert {r.structure.composition.reduced_formula for r in sampled} <= targets
    logan_funnel = pd.read_parquet(workdir / "results/screen/logan/funnel.parquet")
    assert sorted(logan_funnel["id"]) == sorted(r.id for r in sampled)
    # the self-supervised generator: pretrained on the MC2D monolayers, a classifier and a
    # regressor on its backbone, the GAN stage; its metrics on the held-out crystals (the
    # same corruptions for both generators) and its candidates, screened like the others
    ssl = yaml.safe_load((workdir / "config/config.yaml").read_text())["train"]["ssl"]
    m = pd.read_csv(workdir / "results/models/ssl/metrics.csv")  # and its figure (report)
    noises = ssl["metrics"]["noises"]
    assert len(m) == 2 * 3 * len(noises) and set(m["model"]) == {"pretrained", "gan"}
    assert (m["n"] == 26).all()  # 10% of the 258 MC2D monolayers
    assert (m.loc[m["noise"] == min(noises), "structural_similarity"] > 0).all()  # denoises
    clf = json.loads((workdir / "results/models/ssl/classifier.json").read_text())
    assert clf["property"] == "band_gap" and clf["n_held_out"] == 26
    sampled = read_records(workdir / "results/generate/ssl/candidates.parquet")
    bad = read_quarantine(workdir / "results/generate/ssl/candidates.parquet.quarantine.csv")
    assert len(sampled) + len(bad) == ssl["sample"]["n"] and sampled
    library_ids = {r.id for r in library}
    for r in sampled:
        assert r.properties["parent"] in library_ids
        assert r.properties["element"] != r.properties["replaced"]
    ssl_funnel = pd.read_parquet(workdir / "results/screen/ssl/funnel.parquet")
    assert sorted(ssl_funnel["id"]) == sorted(r.id for r in sampled)
    # the metamaterial branch: metrics on the validation set, a design that closes the p/d
    # gap it starts from, an exploration with its exact check
    tbnn = yaml.safe_load((workdir / "config/config.yaml").read_text())["tbnn"]
    metrics = json.loads((workdir / "results/tbnn/metrics.json").read_text())
    assert metrics["n_potentials"] == tbnn["sets"]["valid"]["n"] and metrics["n_kpoints"] == 325
    assert metrics["speed"]["speedup_over_lanczos"] > 100
    design = json.loads((workdir / "results/tbnn/design.json").read_text())["inversion"]
    assert abs(design["history"][-1][1]) < abs(design["history"][0][1])
    explored = json.loads((workdir / "results/tbnn/explore.json").read_text())
    assert explored["random"]["n_potentials"] == tbnn["explore"]["n"]
    assert explored["validation"]["exact"]["n_potentials"] == tbnn["sets"]["valid"]["n"]
    # DFT: a verdict row for each generator's selected candidates, nothing else (no controls)
    selected = {}
    dft = yaml.safe_load((workdir / "config/config.yaml").read_text())["dft"]
    for name, table in (("gan", funnel), ("logan", logan_funnel), ("ssl", ssl_funnel)):
        picked = read_records(workdir / f"results/screen/{name}/selected.parquet")
        slots = dft["top_k_per_set"].get(name, dft["top_k"])
        assert len(picked) == min(slots, int(table["passed"].sum())), name
        if f"results/screen/{name}/selected.parquet" in dft["candidates"]:
            selected |= {r.id: name for r in picked}
    summary = pd.read_csv(workdir / "results/dft/summary.csv").set_index("candidate")
    assert set(summary.index) == set(selected)
    for rid, name in selected.items():
        assert summary.at[rid, "status"] in ("ok", "failed"), rid
        assert summary.at[rid, "source"] == name, rid
    # a card per candidate, listed in the index: its verdict, funnel, provenance and pictures
    index = (workdir / "results/candidates/index.md").read_text()
    for rid in selected:
        card = (workdir / f"results/candidates/{rid}/card.md").read_text()
        assert f"- **verdict: {summary.at[rid, 'verdict']}**" in card, rid
        assert "| phonons | pass |" in card and "topogen dft invariants" in card, rid
        assert f"[card]({rid}/card.md)" in index
        assert (workdir / f"results/candidates/{rid}/structure.png").stat().st_size > 10_000
    # the report `make demo` ends with: every captioned figure is in it
    res = snakemake(workdir, "--report", "results/report.html")
    assert res.returncode == 0, res.stderr[-3000:]
    lines = (res.stdout + res.stderr).splitlines()
    added = [ln.split()[1] for ln in lines if ln.startswith("Adding ")]
    assert added.count("metrics.png") == 3 and added.count("structures.png") == 1, added
    assert added.count("summary.png") == added.count("summary.html") == 1, added
    assert added.count("funnels.png") == 1
    assert added.count("predicted_bands.png") == added.count("design.png") == 1, added
    assert added.count("generation_metrics.png") == 1, added
    per_candidate = ("edge_states.png", "wannier_flow.png", "structure.png", "bands.png")
    for figure in (*per_candidate, "spin_flow.png", "chgnet.png"):
        assert added.count(figure) == len(selected), figure
    trained = ["autoencoder", "cgcnn", "crystalbert-pretrain", "crystalbert-topology", "tbnn"]
    trained += [f"ssl-{n}" for n in ("pretrain", "classifier", "regressor", "gan")]
    trained += [f"logan-{t}-s{s}-h{k}" for t in logan["targets"] for s in logan["members"]["seeds"]
                for k in range(len(logan["members"]["sets"]))]  # fmt: skip
    assert sorted(n for n in added if n.endswith(".png") and n[:-4] in trained) == sorted(
        f"{n}.png" for n in trained
    )
    counts = pd.read_csv(workdir / "results/report/funnels.csv").set_index("after")
    assert counts.loc["candidates", "gan"] == len(funnel) and counts.loc["topology", "gan"] == (
        funnel["passed"].sum()
    )
    # each candidate's CHGNet record: relaxed from the generator's own structure, with the
    # funnel's phonon verdict (it passed the phonon step) and a dispersion on the 2D path
    for rid in selected:
        chg = json.loads((workdir / f"results/candidates/{rid}/chgnet.json").read_text())
        assert chg["start"].startswith("results/generate/") and chg["relax"]["converged"], rid
        assert chg["phonons"]["stable"] and chg["phonons"]["labels"][0] == "G", rid
        assert len(chg["phonons"]["frequencies"]) == len(chg["phonons"]["distance"]), rid
    _check_rendered_report(workdir / "results/report.html", workdir)
    # rerunning stage 2 plans it and everything after it, nothing before it
    plan = snakemake(workdir, "-n", "--forcerun", "train_gan_stage2").stdout
    for rule in ("train_gan_stage2", "train_gan_stage3", "sample_gan"):
        assert f"rule {rule}:" in plan, rule
    for rule in ("train_gan_stage1", "encode_images", "build_prototypes", "merge_structures"):
        assert f"rule {rule}:" not in plan, rule


@pytest.mark.slow
def test_import_sets_merge_after_the_library(workdir):
    """Local files as an import set, merged into the structure table (tiny library)."""
    override = (
        "data={'merge':['import/demo'],'imports':{'demo':{'files':"
        "['resources/structures/hBN.cif','resources/structures/honeycombs.extxyz'],"
        "'source':'demo'}}}"
    )
    res = snakemake(
        workdir, "--cores", "2", "--config", override, "--", "results/data/structures.parquet"
    )
    assert res.returncode == 0, res.stderr[-3000:]
    merged = read_records(workdir / "results/data/structures.parquet")
    assert {r.id for r in merged} == {
        "hBN",
        "graphene",
        "silicene",
        "germanene",
        "stanene",
        "Sb-bilayer",
        "Bi-bilayer",
    }
    assert all(r.source == "demo" for r in merged)


def _override(workdir: Path, text: str) -> str:
    """A config file merged over the default (typed YAML, unlike --config's strings)."""
    (workdir / "override.yaml").write_text(text)
    return "override.yaml"


def test_screen_dag_grows_with_chunks_not_candidates(workdir):
    cfg = _override(
        workdir, "screen: {candidates: {imported: results/data/structures.parquet}, chunks: 3}"
    )
    res = snakemake(workdir, "-n", "results/screen/imported/selected.parquet", "--configfile", cfg)
    assert res.returncode == 0, res.stdout + res.stderr
    for rule, count in (
        ("split_candidates", 1),
        ("screen_chunk", 3),
        ("merge_screen", 1),
        ("score_topology", 1),
        ("select_dft", 1),
    ):
        assert res.stdout.count(f"rule {rule}:") == count, rule


@pytest.mark.slow
def test_screen_stage_runs_on_imported_candidates(workdir, cli):
    """Candidates -> 2 chunks -> funnel (CHGNet relax + phonons) -> merge -> DFT selection."""
    override = (
        "data={'merge':['import/demo'],'imports':{'demo':{'files':"
        "['resources/structures/hBN.cif','resources/structures/MoS2.cif',"
        "'resources/structures/honeycombs.extxyz'],'source':'demo'},"
        "'known':{'files':['resources/structures/hBN.cif'],'source':'known'}}}"
    )
    screen = _override(
        workdir,
        "screen: {candidates: {demo: results/data/structures.parquet}, chunks: 2,"
        " training: results/data/import/known.parquet, band_gap_model: null,"
        " topology: {model: null}}\ndft: {top_k: 2}",
    )
    res = snakemake(
        workdir,
        "--cores",
        "2",
        "results/screen/demo/selected.parquet",
        "--configfile",
        screen,
        "--config",
        override,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    funnel = pd.read_parquet(workdir / "results/screen/demo/funnel.parquet")
    assert len(funnel) == 8, funnel  # every candidate has a row, whatever its verdict
    verdicts = funnel.set_index("id")
    assert verdicts.at["hBN", "novelty"] == "fail"
    assert "matches training structure hBN" in verdicts.at["hBN", "novelty_reason"]
    assert verdicts.at["MoS2", "phonons"] == "pass" and bool(verdicts.at["MoS2", "passed"])
    selected = read_records(workdir / "results/screen/demo/selected.parquet")
    assert len(selected) == 2
    lineage = cli("provenance", "results/screen/demo/selected.parquet", cwd=workdir)
    assert lineage.returncode == 0, lineage.stderr
    for step in (
        "topogen screen select",
        "topogen screen topology",
        "topogen screen merge",
        "topogen screen chunk",
        "topogen screen split",
        "topogen data import",
    ):
        assert step in lineage.stdout


def test_rule_all_is_computed_from_the_config(workdir):
    """Per generator its candidates and funnel; no generators: neither; DFT when activated
    (the default: rule all reaches results/dft/summary.csv), the controls' check when a
    control is configured."""
    plan = snakemake(workdir, "-n").stdout
    for rule in (
        "sample_gan",
        "sample_logan",
        "pretrain_ssl",
        "finetune_ssl",
        "train_ssl_gan",
        "ssl_metrics",
        "sample_ssl_gan",
        "screen_chunk",
        "merge_screen",
        "pretrain_crystalbert",
        "train_topology_classifier",
        "score_topology",
        "select_dft",
        "plot_funnels",
    ):
        assert f"rule {rule}:" in plan, rule
    funnels = next(ln for ln in plan.splitlines() if "topogen report funnels" in ln)
    names = ("gan", "logan", "ssl")
    assert " ".join(f"results/screen/{n}/funnel.parquet" for n in names) in funnels
    assert "--names gan logan ssl" in funnels
    # dft.candidates null: DFT takes the selection of every generator
    block = plan.split("checkpoint dft_candidates:")[1].split("\n\n")[0]
    inputs = block.split("input:")[1].splitlines()[0]
    assert [x.strip() for x in inputs.split(",")] == [
        f"results/screen/{n}/selected.parquet" for n in names
    ], block
    assert "results/dft/summary.csv" in plan and "rule dft_summary:" in plan
    plan = snakemake(workdir, "-n", "--configfile", _override(workdir, "dft: {activate: false}"))
    assert "dft_candidates" not in plan.stdout and "dft_summary" not in plan.stdout
    cfg = _override(
        workdir,
        "generators: []\ndft: {activate: true, candidates: results/data/structures.parquet}",
    )
    plan = snakemake(workdir, "-n", "--configfile", cfg).stdout
    assert "rule sample_gan:" not in plan and "rule screen_chunk:" not in plan
    assert "rule plot_funnels:" not in plan  # nothing screened: no funnel to plot
    assert "checkpoint dft_candidates:" in plan and "rule dft_controls:" in plan
    # no control configured: the candidates' summary, no controls' check (it would have none)
    cfg = _override(workdir, "dft: {controls: {qsh: null, trivial: null}}")
    plan = snakemake(workdir, "-n", "--configfile", cfg).stdout
    assert "rule dft_summary:" in plan and "dft_controls" not in plan and "control-" not in plan


def test_option_sections_become_flags(workdir):
    """Config option keys -> flags (booleans both ways); the config's seed reaches each rule."""
    cfg = _override(
        workdir,
        "screen: {candidates: {imported: results/data/structures.parquet},"
        " funnel: {phonons: false, fmax: 0.1, oxidation_states_set: smact14}}\n",
    )
    plan = snakemake(workdir, "-n", "-p", "--configfile", cfg).stdout
    assert "--no-phonons --fmax 0.1 --oxidation-states-set smact14" in plan
    for stage in (1, 2, 3):
        assert f" --stage {stage} " in plan, stage
    for command in ("train gan", "generate gan", "encode images", "screen select"):
        lines = [ln for ln in plan.splitlines() if f"topogen {command} " in ln]
        assert lines and all("--seed 20251122" in ln for ln in lines), command


def test_default_funnel_runs_the_band_gap_and_topology_steps(workdir):
    """The default: CGCNN trained on the shipped MC2D gaps, its checkpoint passed to every
    screen_chunk; the CrystalBERT classifier (pretrained, then fine-tuned on the library's
    labels) scores the merged survivors in rank mode, and select_dft ranks by its score;
    k-means picks dft.top_k."""
    plan = snakemake(workdir, "-n", "-p").stdout
    for rule in ("normalize_mc2d_gaps", "encode_table_graphs", "train_cgcnn"):
        assert f"rule {rule}:" in plan, rule
    assert "topogen data normalize mc2d-gaps resources/mc2d_gaps.json.gz" in plan
    assert "--graphs results/encode/mc2d_gaps/graphs.pt --table results/data/mc2d_gaps.parquet" in (
        plan
    )
    assert "--table mc2d_gaps" not in plan  # an input of the rule, not a flag
    chunks = [ln for ln in plan.splitlines() if "topogen screen chunk " in ln]
    generators = yaml.safe_load((workdir / "config/config.yaml").read_text())["generators"]
    assert len(chunks) == 4 * len(generators)  # screen.chunks per generator
    for ln in chunks:
        assert "--band-gap-model results/models/cgcnn/model.ckpt" in ln
        assert "topology" not in ln  # scored after the merge
    scores = [ln for ln in plan.splitlines() if "topogen screen topology " in ln]
    assert len(scores) == len(generators)
    for ln in scores:
        assert "--model results/models/crystalbert/topology.ckpt" in ln
        assert "--mode rank --topology-min 0.5" in ln
    # dft.top_k per screened set, dft.top_k_per_set where it names the set
    dft = yaml.safe_load((workdir / "config/config.yaml").read_text())["dft"]
    for ln in (ln for ln in plan.splitlines() if "topogen screen select " in ln):
        name = ln.split("results/screen/")[1].split("/")[0]
        assert f"--slots {dft['top_k_per_set'].get(name, dft['top_k'])} " in ln + " ", ln
    assert "ssl" in dft["top_k_per_set"] and dft["top_k_per_set"]["ssl"] != dft["top_k"]
    classifier = next(ln for ln in plan.splitlines() if "topogen train topology-classifier" in ln)
    assert "--pretrained results/models/crystalbert/pretrained.ckpt" in classifier
    assert "--width 64 --layers 2 --epochs 30 --folds 5" in classifier
    pretrain = next(ln for ln in plan.splitlines() if "topogen train crystalbert " in ln)
    assert "--table results/data/structures.parquet" in pretrain and "--epochs 20" in pretrain
    select = [ln for ln in plan.splitlines() if "topogen screen select " in ln]
    assert select and "--slots 2" in select[0] and "--rank-by topology_score" in select[0]
    cfg = _override(
        workdir,
        "screen: {band_gap_model: null, topology: {model: null}}\n"
        "train: {crystalbert: {pretrain: {table: null}}}",
    )
    plan = snakemake(workdir, "-n", "-p", "--configfile", cfg).stdout
    assert "rule train_cgcnn:" not in plan and "rule train_topology_classifier:" not in plan
    assert "--band-gap-model" not in plan and "--rank-by" not in plan
    scores = [ln for ln in plan.splitlines() if "topogen screen topology " in ln]
    assert scores and all("--model" not in ln for ln in scores)  # the step: skipped
    cfg = _override(
        workdir,
        "screen: {topology: {mode: filter}}\ntrain: {crystalbert: {pretrain: {table: null}}}",
    )
    plan = snakemake(workdir, "-n", "-p", "--configfile", cfg).stdout
    classifier = next(ln for ln in plan.splitlines() if "topogen train topology-classifier" in ln)
    assert "rule pretrain_crystalbert:" not in plan and "--pretrained" not in classifier
    assert "--mode filter" in plan and "--rank-by" not in plan


def test_stage3_takes_the_topology_classifier_as_an_oracle_when_configured(workdir):
    """train.gan.stage3.topology_model names an input: the classifier's rule runs before
    Stage III and its checkpoint reaches `train gan --stage 3`; off by default."""
    plan = snakemake(workdir, "-n", "-p").stdout
    line = next(ln for ln in plan.splitlines() if "train gan" in ln and "--stage 3" in ln)
    assert "--topology-model" not in line and "topology_model" not in line
    cfg = _override(
        workdir,
        "train: {gan: {stage3: {topology_model: results/models/crystalbert/topology.ckpt,"
        " topology_min: 0.6}}}",
    )
    plan = snakemake(workdir, "-n", "-p", "--configfile", cfg).stdout
    line = next(ln for ln in plan.splitlines() if "train gan" in ln and "--stage 3" in ln)
    assert "--topology-model results/models/crystalbert/topology.ckpt" in line
    assert "--topology-min 0.6" in line
    lines = plan.splitlines()
    order = [i for i, ln in enumerate(lines) if "topogen train topology-classifier" in ln]
    assert order and order[0] < lines.index(line)


def test_full_mc2d_is_downloaded_when_its_url_is_set(workdir):
    cfg = _override(workdir, "data: {mc2d_gaps: {url: https://example.org/structures.json}}")
    plan = snakemake(workdir, "-n", "-p", "results/data/mc2d_gaps.parquet", "--configfile", cfg)
    assert plan.returncode == 0, plan.stdout + plan.stderr
    assert "rule download_mc2d_gaps:" in plan.stdout
    assert "normalize mc2d-gaps results/data/raw/mc2d/structures.json" in plan.stdout


def test_paper_config_sends_200_to_dft_with_a_dense_wannier_mesh(repo_root):
    paper = yaml.safe_load((repo_root / "config/paper.yaml").read_text())
    assert paper["dft"]["top_k"] == 200 and set(paper["dft"]["top_k_per_set"].values()) == {200}
    assert paper["dft"]["settings"]["nscf_kgrid"][:2] >= [8, 8]


def _rule_blocks(repo_root: Path) -> dict[str, str]:
    """Every rule of workflow/rules/ (also `use rule ... as name`): its name -> its text."""
    blocks = {}
    for path in sorted((repo_root / "workflow/rules").rglob("*.smk")):
        for block in re.split(r"\n(?=(?:rule|checkpoint|use rule) )", path.read_text()):
            m = re.match(r"(?:rule|checkpoint) (\w+):|use rule \w+ as (\w+) with:", block)
            if m:
                blocks[m.group(1) or m.group(2)] = block
    return blocks


def test_profiles_name_only_rules_that_exist(repo_root):
    rules = set(_rule_blocks(repo_root))
    assert {"screen_chunk", "train_gan_stage1", "dft_relax"} <= rules
    for profile in sorted((repo_root / "profiles").glob("*/config.yaml")):
        named = yaml.safe_load(profile.read_text()).get("set-resources") or {}
        assert not set(named) - rules, f"{profile}: no such rule(s) {set(named) - rules}"


def test_every_rule_has_log_and_benchmark_and_every_report_a_caption(repo_root):
    blocks = _rule_blocks(repo_root)
    for name, block in blocks.items():
        assert "\n    log:" in block and "\n    benchmark:" in block, name
        for plot in re.findall(r"report\((.*?)\n\s*\)", block, flags=re.S):
            assert "caption=" in plot, name
            caption = re.search(r'caption="([^"]+)"', plot).group(1)
            assert (repo_root / "workflow/report" / Path(caption).name).is_file(), caption


def test_logan_plans_one_member_per_target_seed_and_set(workdir):
    """train.logan: targets (the default's and Bi2; a config file adds to the default's
    dict) x 2 seeds x 2 sets train_logan jobs, one sample_logan."""
    override = workdir / "logan.yaml"
    override.write_text(
        yaml.safe_dump(
            {
                "train": {
                    "logan": {
                        "targets": {
                            "Bi2": {"formula": "Bi2", "lattice": [4.28, 4.28, 20, 90, 90, 120]},
                        },
                        "members": {
                            "seeds": [0, 7],
                            "sets": [{"r_cut": 4.0}, {"radial": "bessel"}],
                        },
                    }
                }
            }
        )
    )
    target = "results/generate/logan/candidates.parquet"
    res = snakemake(workdir, "-n", "-p", target, "--configfile", "config/config.yaml", override)
    assert res.returncode == 0, res.stdout + res.stderr
    jobs = [line for line in res.stdout.splitlines() if "topogen train logan" in line]
    default = yaml.safe_load((workdir / "config/config.yaml").read_text())["train"]["logan"]
    formulas = {t["formula"] for t in default["targets"].values()} | {"Bi2"}
    assert len(jobs) == len(formulas) * 2 * 2
    for formula in formulas:
        assert sum(f"--formula {formula} " in j for j in jobs) == 4, formula
    assert (
        sum("--seed 7" in j and "--radial bessel" in j and "--formula Bi2" in j for j in jobs) == 1
    )
    assert sum("--r-cut 4.0" in j for j in jobs) == 2 * len(formulas)
    sample = next(line for line in res.stdout.splitlines() if "topogen generate logan" in line)
    assert sample.count("model.ckpt") == len(jobs)
