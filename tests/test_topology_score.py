"""The funnel's topology step: the GAN's topology-aware discriminator as the scorer
(`topogen screen chunk --topology-model CKPT --autoencoder CKPT`)."""

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


def test_screen_chunk_runs_the_topology_step(gan_stages, cli, tmp_path):
    """--topology-min is applied: the step passes exactly the candidates scored above it."""
    cands = gan_stages["table"]
    scores = TopologyScorer(gan_stages[2], gan_stages["ae"])(
        [r.structure for r in read_records(cands)]
    )
    threshold = float(np.median(scores))
    funnel = tmp_path / "f.parquet"
    args = ["screen", "chunk", cands, "--out", tmp_path / "s.parquet", "--funnel", funnel]
    args += ["--dos", tmp_path / "d.npz", "--no-phonons", "--steps", "5", "--topology-min"]
    args += [str(threshold), "--topology-model", gan_stages[2]]
    res = cli(*args)
    assert res.returncode != 0 and "--topology-model needs --autoencoder" in res.stderr
    res = cli(*args, "--autoencoder", gan_stages["ae"])
    assert res.returncode == 0, res.stderr
    f = pd.read_parquet(funnel).set_index("id")
    scored = f[f["topology"].isin(["pass", "fail"])]
    assert len(scored) > 0 and scored["topology_score"].between(0, 1).all()
    expected = np.where(scored["topology_score"] >= threshold, "pass", "fail")
    assert (scored["topology"] == expected).all()
    assert (f["topology"] != "skipped").any()
