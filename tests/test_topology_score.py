"""The GAN's topology-aware discriminator as a topology scorer of the funnel's topology
step (`topogen screen topology --model CKPT --autoencoder CKPT`)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from topogen.io.tables import read_records
from topogen.models.autoencoder.train import load_autoencoder
from topogen.models.gan3.gan import GanError, load_gan
from topogen.models.gan3.scorer import TopologyScorer

FAST = ["--threads", "2", "--gpus", "0", "--width", "8", "--noise-dim", "16", "--batch-size", "16"]


@pytest.fixture(scope="module")
def gan_stages(tmp_path_factory):
    """Crystal images of the labelled prototypes (+ 10 more) and GAN Stages I and II."""
    from conftest import run

    from topogen.data import prototypes as P
    from topogen.io.tables import Record, write_records

    root = tmp_path_factory.mktemp("topo")
    records = P.labels_for(
        Record(c.id, "prototypes", c.structure, {"prototype": c.prototype}) for c in P.candidates()
    )
    chosen = [r for r in records if r.properties["topo2d"] is not None]
    chosen += [r for r in records if r.properties["topo2d"] is None][:10]
    table = root / "table.parquet"
    write_records(chosen, table)
    ae, images = root / "ae.ckpt", root / "images.pt"
    res = run(
        ["topogen", "encode", "images", str(table), "--out", str(images), "--model", str(ae),
         "--metrics", str(root / "ae.json"), "--workdir", str(root / "aew"), "--epochs", "2",
         "--threads", "2", "--gpus", "0"]
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    out = {"root": root, "table": table, "ae": ae}
    init: list[str] = []
    for stage in (1, 2):
        d = root / f"s{stage}"
        res = run(
            ["topogen", "train", "gan", "--stage", str(stage), "--images", str(images),
             "--table", str(table), "--out", str(d / "model.ckpt"), "--epochs", "2",
             "--metrics", str(d / "m.csv"), "--plot", str(d / "m.png"), "--workdir", str(d),
             *FAST, *init]
        )  # fmt: skip
        assert res.returncode == 0, res.stderr
        out[stage] = d / "model.ckpt"
        init = ["--init", str(d / "model.ckpt")]
    return out


def test_scores_are_the_discriminator_probabilities(gan_stages):
    scorer = TopologyScorer(gan_stages[2], gan_stages["ae"])
    structures = [r.structure for r in read_records(gan_stages["table"])[:6]]
    scores = scorer(structures)
    assert scores.shape == (6,) and ((scores > 0) & (scores < 1)).all()
    images = torch.as_tensor(load_autoencoder(gan_stages["ae"]).encode_many(structures))
    with torch.no_grad():
        logits = load_gan(gan_stages[2]).discriminator(images.float()).view(-1)
    np.testing.assert_allclose(scores, torch.sigmoid(logits).numpy(), rtol=1e-5)
    assert np.allclose(scorer(structures[2:3]), scores[2:3], rtol=1e-5)  # one at a time too


def test_stage_one_has_no_topology_discriminator(gan_stages):
    with pytest.raises(GanError, match="only Stages II and III"):
        TopologyScorer(gan_stages[1], gan_stages["ae"])


def test_screen_topology_applies_the_gan_scorer(gan_stages, cli, tmp_path):
    """chunk -> merge -> topology with --mode filter: the step passes exactly the survivors
    scored at or above --topology-min; the others keep their earlier verdicts."""
    cands = gan_stages["table"]
    args = ["screen", "chunk", cands, "--out", tmp_path / "s.parquet", "--funnel"]
    args += [tmp_path / "f.parquet", "--dos", tmp_path / "d.npz", "--no-phonons", "--steps", "5"]
    assert cli(*args).returncode == 0
    merged = ["--funnel", tmp_path / "mf.parquet", "--out", tmp_path / "ms.parquet"]
    res = cli("screen", "merge", "--funnel-in", tmp_path / "f.parquet", "--structures-in",
              tmp_path / "s.parquet", "--dos-in", tmp_path / "d.npz", "--dos",
              tmp_path / "md.npz", *merged)  # fmt: skip
    assert res.returncode == 0, res.stderr
    survivors = read_records(tmp_path / "ms.parquet")
    scores = TopologyScorer(gan_stages[2], gan_stages["ae"])([r.structure for r in survivors])
    threshold = float(np.median(scores))
    out = ["--funnel", tmp_path / "tf.parquet", "--out", tmp_path / "ts.parquet"]
    out += ["--mode", "filter", "--topology-min", str(threshold)]
    res = cli("screen", "topology", "--funnel-in", tmp_path / "mf.parquet", "--structures-in",
              tmp_path / "ms.parquet", "--model", gan_stages[2], "--autoencoder",
              gan_stages["ae"], *out)  # fmt: skip
    assert res.returncode == 0, res.stderr
    f = pd.read_parquet(tmp_path / "tf.parquet").set_index("id")
    scored = f.loc[[r.id for r in survivors]]
    np.testing.assert_allclose(scored["topology_score"], scores, rtol=1e-5)
    expected = np.where(scores >= threshold, "pass", "fail")
    assert (scored["topology"] == expected).all()
    kept = {r.id for r in read_records(tmp_path / "ts.parquet")}
    assert kept == set(scored.index[scored["topology"] == "pass"]) and kept
    others = f.drop(index=scored.index)
    assert others["topology_score"].isna().all() and (others["topology"] == "skipped").all()
