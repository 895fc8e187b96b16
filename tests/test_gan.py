"""Three-stage GAN: every stage trains through the CLI and writes checkpoints and metrics,
a killed stage resumes, sampling records checkpoint and seeds, and Stage III's reward model
learns the verdicts of the real CHGNet + phonopy oracle."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from topogen.data import prototypes as P
from topogen.io.provenance import sha256
from topogen.io.tables import Record, read_records, write_records
from topogen.models.gan3.gan import CrystalGAN, GanError, load_gan
from topogen.models.gan3.sampling import generate
from topogen.models.gan3.train import image_set

FAST = ["--threads", "2", "--gpus", "0", "--width", "8", "--noise-dim", "16"]


@pytest.fixture(scope="module")
def gan_inputs(tmp_path_factory):
    """A table of unrelaxed library structures (every labelled one and 20 more) and its
    crystal images from autoencoders trained for 2 epochs."""
    from conftest import run

    root = tmp_path_factory.mktemp("gan")
    cands = P.candidates()
    records = P.labels_for(
        Record(c.id, "prototypes", c.structure, {"prototype": c.prototype}) for c in cands
    )
    labelled = [r for r in records if r.properties["topo2d"] is not None]
    chosen = labelled + [r for r in records if r.properties["topo2d"] is None][:20]
    table = root / "table.parquet"
    write_records(chosen, table)
    out = {"root": root, "table": table, "n": len(chosen), "labelled": len(labelled)}
    for name in ("images", "ae", "ae_metrics"):
        out[name] = root / {"images": "images.pt", "ae": "ae.ckpt", "ae_metrics": "ae.json"}[name]
    args = [
        "topogen", "encode", "images", str(table), "--out", str(out["images"]),
        "--model", str(out["ae"]), "--metrics", str(out["ae_metrics"]),
        "--workdir", str(root / "ae"), "--epochs", "2", "--threads", "2", "--gpus", "0",
    ]  # fmt: skip
    res = run(args)
    assert res.returncode == 0, res.stderr
    return out


def _stage(cli, inputs, stage: int, name: str, *extra: str):
    d = inputs["root"] / name
    res = cli(
        "train", "gan", "--stage", str(stage), "--images", str(inputs["images"]),
        "--table", str(inputs["table"]), "--out", str(d / "model.ckpt"),
        "--metrics", str(d / "metrics.csv"), "--plot", str(d / "metrics.png"),
        "--workdir", str(d / "work"), *FAST, *extra,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    return d


def test_encode_images_stage_writes_images_model_and_round_trip(gan_inputs):
    from topogen.encode.store import load_encoded

    store = load_encoded(gan_inputs["images"], "images")
    assert len(store["ids"]) == gan_inputs["n"]
    assert store["tensors"]["images"].shape == (gan_inputs["n"], 80, 32)  # lattice + 79 rows
    assert store["params"]["autoencoder_sha256"] == sha256(gan_inputs["ae"])
    metrics = json.loads(gan_inputs["ae_metrics"].read_text())
    assert metrics["held_out"]["n"] == round(0.2 * gan_inputs["n"])
    assert 0 <= metrics["held_out"]["reproduced"] <= 1
    rms = metrics["element_row_rms"]  # real rows against the decoder's presence threshold
    assert 0 < rms["min"] <= rms["p01"] <= rms["median"] <= 1 and rms["presence"] > 0
    assert Path(str(gan_inputs["images"]) + ".prov.json").exists()


def test_three_stages_and_sampling(cli, gan_inputs):
    s1 = _stage(cli, gan_inputs, 1, "s1", "--epochs", "2", "--batch-size", "16")
    s2 = _stage(
        cli, gan_inputs, 2, "s2", "--epochs", "2", "--batch-size", "16",
        "--init", str(s1 / "model.ckpt"),
    )  # fmt: skip
    s3 = _stage(
        cli, gan_inputs, 3, "s3", "--epochs", "2", "--batch-size", "16",
        "--init", str(s2 / "model.ckpt"), "--autoencoder", str(gan_inputs["ae"]),
        "--oracle-samples", "3", "--relax-steps", "5", "--min-repeat-2d", "2",
        "--reward-steps", "5",
    )  # fmt: skip
    for d, stage in ((s1, 1), (s2, 2), (s3, 3)):
        m = pd.read_csv(d / "metrics.csv")
        assert m["epoch"].tolist() == [0, 1], stage
        assert {"d_loss", "g_loss", "d_real", "d_fake"} <= set(m.columns)
        assert np.isfinite(m[["d_loss", "g_loss"]].to_numpy()).all()
        assert (d / "metrics.png").stat().st_size > 10_000
        assert (d / "work/checkpoints/last.ckpt").exists()
        model = load_gan(d / "model.ckpt")  # weights_only=True
        assert model.hparams.stage == stage
    m3 = pd.read_csv(s3 / "metrics.csv")
    for col in ("oracle_stable", "oracle_decodable", "stage_metric", "oracle_reward_loss"):
        assert m3[col].between(0, 1).all() or col == "oracle_reward_loss", col
    assert m3["oracle_insulating"].isna().all()  # no band-gap model given
    last = torch.load(s3 / "work/checkpoints/last.ckpt", map_location="cpu", weights_only=True)
    assert len(last["oracle_buffer"]["scores"]) == 6  # 3 oracle samples x 2 epochs
    best = m3["stage_metric"].idxmax()  # the stage's model is its best epoch
    assert len(load_gan(s3 / "model.ckpt").buffer_images) == 3 * (best + 1)
    # Stage II labels: only the labelled crystals; Stage II starts from Stage I's generator
    ids, _, labels = image_set(gan_inputs["images"], gan_inputs["table"], 2)
    assert len(ids) == gan_inputs["labelled"] and set(labels.tolist()) == {0.0, 1.0}

    out = gan_inputs["root"] / "cand.parquet"
    res = cli(
        "generate", "gan", "--generator", str(s3 / "model.ckpt"), "--autoencoder",
        str(gan_inputs["ae"]), "--n", "12", "--seed", "7", "--out", str(out),
    )  # fmt: skip
    quarantine = Path(str(out) + ".quarantine.csv")
    if res.returncode != 0:  # nothing decoded: the error says so and names the reason
        assert "no usable structure; 12 rejected" in res.stderr, res.stderr
        return
    rows = read_records(out)
    bad = pd.read_csv(quarantine)
    assert len(rows) + len(bad) == 12
    assert all(r.startswith("undecodable image") for r in bad["reason"])
    digest = sha256(s3 / "model.ckpt")
    seeds = sorted([r.properties["seed"] for r in rows] + [int(i[4:]) for i in bad["id"]])
    assert seeds == list(range(7, 19))
    assert all(r.properties["checkpoint_sha256"] == digest for r in rows)
    model = load_gan(s3 / "model.ckpt")  # any one sample can be regenerated alone
    assert torch.equal(generate(model, [11]), generate(model, list(range(7, 19)))[4:5])


def test_all_empty_generated_images_are_rejected_rows_with_a_reason(gan_inputs, tmp_path):
    """A generator whose output layer is zeroed makes all-empty images (tanh(0) = 0): each
    sample is a rejected row that says no element is present, not a crash and not H."""
    from topogen.models.gan3.sampling import sample_candidates

    gan = CrystalGAN(1, [80, 32], width=8, noise_dim=16)
    out_layer = gan.generator.net[-1]
    torch.nn.init.zeros_(out_layer.weight)
    torch.nn.init.zeros_(out_layer.bias)
    assert not generate(gan, [0, 1]).any()
    ckpt = tmp_path / "empty.ckpt"
    torch.save({"hyper_parameters": dict(gan.hparams), "state_dict": gan.state_dict()}, ckpt)
    result = sample_candidates(ckpt, gan_inputs["ae"], 3, seed=5)
    assert not result.records and [r.id for r in result.rejected] == ["gan-5", "gan-6", "gan-7"]
    assert all("undecodable image: no element present" in r.reason for r in result.rejected)


def test_stage_two_needs_both_labels(gan_inputs, tmp_path):
    records = [r for r in read_records(gan_inputs["table"]) if r.properties["topo2d"] != 1]
    table = tmp_path / "trivial.parquet"
    write_records(records, table)
    with pytest.raises(GanError, match="labelled topological"):
        image_set(gan_inputs["images"], table, 2)


def test_killed_stage_resumes_with_the_same_epochs(gan_inputs, tmp_path):
    """SIGKILL mid-run after the first epoch's checkpoint; the rerun resumes from it and
    the metrics have every epoch exactly once."""
    d = tmp_path / "s1"
    cmd = [
        sys.executable, "-m", "topogen.cli", "train", "gan", "--stage", "1",
        "--images", str(gan_inputs["images"]), "--table", str(gan_inputs["table"]),
        "--out", str(d / "model.ckpt"), "--metrics", str(d / "metrics.csv"),
        "--plot", str(d / "metrics.png"), "--workdir", str(d / "work"),
        "--epochs", "6", "--batch-size", "2", *FAST,
    ]  # fmt: skip
    cmd[cmd.index("--width") + 1] = "48"  # slow enough to be caught mid-run
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    last = d / "work/checkpoints/last.ckpt"
    deadline = time.time() + 300
    while not last.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "finished before it could be killed: make it slower"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = torch.load(last, map_location="cpu", weights_only=True)["epoch"]
    assert done < 5 and not (d / "model.ckpt").exists()
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    m = pd.read_csv(d / "metrics.csv")
    assert m["epoch"].tolist() == list(range(6))
    assert len(list((d / "work/logs").glob("version_*"))) == 2  # both runs' logs kept
    final = torch.load(last, map_location="cpu", weights_only=True)
    # manual optimisation: a generator and a discriminator step per batch
    assert final["epoch"] == 5 and final["global_step"] == 2 * 6 * (gan_inputs["n"] // 2)


@pytest.mark.slow
def test_reward_model_learns_the_oracle_verdicts(gan_inputs):
    """Relaxed MoS2 (stable) and squashed, flat silicene (imaginary modes at K): the real
    oracle's verdicts reach the reward model's buffer and the fitted reward ranks them."""
    from topogen.calc.relax import RelaxSettings, load_model, relax_batch
    from topogen.models.autoencoder.train import load_autoencoder
    from topogen.models.gan3.oracle import Oracle, OracleSettings

    chgnet = load_model()
    mos2 = relax_batch([P.mx2_2h("Mo", "S")], RelaxSettings(fmax=0.01, steps=300), model=chgnet)[
        0
    ].structure
    flat = P.honeycomb("Si", buckling=0.0)
    oracle = Oracle(OracleSettings(min_repeat_2d=4), chgnet=chgnet, threads=2)
    scores = oracle([mos2, flat, None])
    assert scores.stable.tolist() == [True, False, False]
    assert scores.stability[0] == 1.0 and scores.stability[1] < 0.2, scores.reasons
    assert scores.reasons[1].startswith("imaginary modes") and scores.reasons[2] == (
        "undecodable image"
    )
    assert np.isnan(scores.gap_score).all()

    ae = load_autoencoder(gan_inputs["ae"])
    images = torch.as_tensor(ae.encode_many([mos2, flat]))
    gan = CrystalGAN(3, images.shape[1:], width=8, noise_dim=16, reward_steps=300)
    gan.add_scored(images, scores.stability[:2], scores.gap_score[:2])
    assert torch.equal(gan.buffer_scores[:, 0], torch.tensor(scores.stability[:2]).float())
    assert gan.fit_reward() < 0.3
    reward = gan.predicted_reward(images)[:, 0]
    assert reward[0] > 0.8 and reward[1] < 0.3, reward
