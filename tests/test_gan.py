"""Three-stage GAN: every stage trains through the CLI and writes checkpoints and metrics,
a killed stage resumes, sampling records checkpoint and seeds; Stage III's checkpoint is the
generator it scored, its model is re-scored on fresh samples with binomial intervals, and its
reward model is checked on every new oracle batch and learns the verdicts of the real
CHGNet + phonopy oracle."""

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
from topogen.models.gan3.gan import CrystalGAN, GanError, generator_digest, load_gan
from topogen.models.gan3.oracle import wilson_interval
from topogen.models.gan3.reward import pos_weights, rank_correlation, reward_check, roc_auc
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
        "--reward-steps", "5", "--rescore-samples", "4",
        "--summary", str(gan_inputs["root"] / "s3" / "metrics.json"),
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
    for col in ("oracle_stable", "oracle_decodable", "stage_metric"):
        assert m3[col].between(0, 1).all(), col
    assert m3["oracle_insulating"].isna().all()  # no band-gap model given
    assert m3["reward_auc_gap"].isna().all() and m3["reward_rank_gap"].isna().all()
    assert np.isfinite(m3["reward_fit_loss"]).all()
    summary = json.loads((s3 / "metrics.json").read_text())
    epochs = summary["epochs"]
    assert [r["epoch"] for r in epochs] == [0, 1] and summary["initial"]["epoch"] == -1
    for row, rec in zip(m3.itertuples(), epochs, strict=True):  # AUC: NaN iff one class
        one_class = rec["counts"]["stable"]["k"] in (0, rec["n"])
        assert np.isnan(row.reward_auc_stable) == one_class
    # the per-epoch metrics describe the generator the epoch's checkpoints hold
    last = torch.load(s3 / "work/checkpoints/last.ckpt", map_location="cpu", weights_only=True)
    assert len(last["oracle_buffer"]["scores"]) == 9  # 3 oracle samples x (start + 2 epochs)
    last_gan = CrystalGAN(**last["hyper_parameters"])
    last_gan.load_state_dict(last["state_dict"])
    assert generator_digest(last_gan.generator) == epochs[-1]["generator_sha256"]
    best = int(m3["stage_metric"].idxmax())  # the stage's model is its best epoch
    model = load_gan(s3 / "model.ckpt")
    assert summary["model_epoch"] == best == model.history[-1]["epoch"]
    assert generator_digest(model.generator) == epochs[best]["generator_sha256"]
    assert summary["model_generator_sha256"] == epochs[best]["generator_sha256"]
    scored = model.buffer_images[-3:]  # that epoch's oracle samples, regenerated from its seed
    again = model.sample_images(3, model.oracle_seed(best))  # (thread count: last bits differ)
    assert torch.allclose(again, scored, atol=1e-5)
    # the metric of record: fresh seeds, counts with 90% Wilson intervals
    rescored = summary["rescored"]
    assert rescored["seed"] not in [r["seed"] for r in [summary["initial"], *epochs]]
    stable = rescored["counts"]["stable"]
    assert stable["n"] == 4 and stable["fraction"] == rescored["stable"] == stable["k"] / 4
    assert stable["interval"] == pytest.approx(list(wilson_interval(stable["k"], 4)))
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


def test_generator_element_rows_are_fully_on_or_exactly_zero_and_presence_learns():
    """The presence head gates each element row (the lattice row never): a row is either the
    convolutions' output unchanged or exactly zero, and the gate's logits get gradients
    through the straight-through estimator."""
    from topogen.models.gan3.networks import Generator

    torch.manual_seed(0)
    g = Generator(noise_dim=16, rows=80, cols=32, width=8).eval()
    z = torch.randn(64, 16)
    out = g(z)
    with torch.no_grad():
        h = g.fc(z).view(64, 16, 80, g.w0)
        ungated = torch.tanh(g.net(h)[:, 0, :, :32])
        on = g.presence(z) > 0
    assert torch.equal(out[:, 0], ungated[:, 0])
    assert torch.equal(out[:, 1:][on], ungated[:, 1:][on])
    assert not out[:, 1:][~on].any()
    assert 0 < on.float().mean() < 1  # some rows on, some off at initialisation
    out.sum().backward()
    assert g.presence[-1].weight.grad.abs().sum() > 0


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
    logged = d / "work/logs/version_0/metrics.csv"
    deadline = time.time() + 300
    # killed once the first epoch is checkpointed and its metrics logged (Lightning logs them
    # just after the checkpoint hook: a kill in between loses that epoch's row, which is
    # training.LastCheckpoint's documented window, not what this test is about)
    while (
        proc.poll() is None
        and time.time() < deadline
        and not (last.exists() and logged.exists() and "d_loss" in logged.read_text())
    ):
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
    gan.add_scored(images, gan.reward_targets(scores)[:2])
    assert torch.equal(gan.buffer_scores[:, 0], torch.tensor(scores.stability[:2]).float())
    assert gan.fit_reward() < 0.3
    reward = gan.predicted_reward(images)[:, 0]
    assert reward[0] > 0.8 and reward[1] < 0.3, reward
    check = reward_check(  # both classes: defined, and right on verdicts it ranks right
        gan.predicted_reward(images).numpy(),
        np.stack([scores.stability[:2], scores.gap_score[:2]], axis=1),
        np.stack([scores.stable[:2], scores.insulating[:2]], axis=1),
        heads=[0],
    )
    assert check["reward_auc_stable"] == 1.0 and check["reward_rank_stable"] == pytest.approx(1.0)
    assert np.isnan(check["reward_auc_gap"]) and np.isnan(check["reward_rank_gap"])


class _Decoded:
    """Decodes every image batch to the same real structures (cycled): an oracle batch with
    a stable and an unstable crystal, whatever the untrained generator draws."""

    def __init__(self, structures: list) -> None:
        self.structures = structures

    def decode_many(self, images) -> list:
        return [self.structures[i % len(self.structures)] for i in range(len(images))]


@pytest.mark.slow
def test_reward_check_is_logged_per_epoch_before_training(gan_inputs, tmp_path):
    """A Stage III epoch whose oracle batch holds both verdicts (relaxed MoS2: stable; flat
    silicene: not): the reward model's AUC and rank correlation on the batch are logged
    finite, measured before it trains on the batch (the buffer grows only afterwards), and the
    gap head's (no band-gap model) are NaN."""
    from topogen.calc.relax import RelaxSettings, load_model, relax_batch
    from topogen.models.gan3.oracle import Oracle, OracleSettings
    from topogen.models.training import make_trainer, quiet_lightning, read_metrics

    chgnet = load_model()
    mos2 = relax_batch([P.mx2_2h("Mo", "S")], RelaxSettings(fmax=0.01, steps=300), model=chgnet)
    decoded = _Decoded([mos2[0].structure, P.honeycomb("Si", buckling=0.0), None])
    _, images, labels = image_set(gan_inputs["images"], gan_inputs["table"], 2)
    gan = CrystalGAN(3, images.shape[1:], width=8, noise_dim=16, oracle_samples=3)
    gan.attach_oracle(decoded, Oracle(OracleSettings(min_repeat_2d=4), chgnet=chgnet, threads=2))
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(images, labels), batch_size=16, drop_last=True
    )
    with quiet_lightning():
        make_trainer(tmp_path, 1, accelerator="cpu", devices=1).fit(gan, loader)
    m = read_metrics(tmp_path)
    assert len(m) == 1 and m["oracle_stable"].iloc[0] == pytest.approx(1 / 3)
    for key in ("reward_auc_stable", "reward_rank_stable"):
        assert np.isfinite(m[key].iloc[0]), key
    assert m[["reward_auc_gap", "reward_rank_gap"]].isna().all(axis=None)
    first, epoch0 = gan.history
    assert first["epoch"] == -1 and epoch0["epoch"] == 0
    assert epoch0["reward_auc_stable"] == pytest.approx(m["reward_auc_stable"].iloc[0])
    assert len(gan.buffer_images) == 6


def test_wilson_interval_known_values():
    """Closed forms: k = 0 gives (0, z^2 / (n + z^2)); symmetric about 1/2 at k = n/2; and
    the textbook value for 5 of 10 at 90% (z = 1.6449): 0.2693 - 0.7307."""
    z2 = 1.6448536269514722**2
    assert wilson_interval(0, 10) == pytest.approx((0.0, z2 / (10 + z2)))
    assert wilson_interval(10, 10) == pytest.approx((10 / (10 + z2), 1.0))
    assert wilson_interval(5, 10) == pytest.approx((0.26927, 0.73073), abs=1e-5)
    lo, hi = wilson_interval(7, 40)
    assert lo < 7 / 40 < hi and wilson_interval(7, 40, 0.95)[0] < lo
    assert wilson_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError):
        wilson_interval(11, 10)


def test_reward_metrics_and_class_weights_known_values():
    assert roc_auc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == pytest.approx(0.75)
    assert roc_auc([0.5, 0.5, 0.5], [0, 1, 1]) == pytest.approx(0.5)  # ties count half
    assert np.isnan(roc_auc([0.1, 0.9], [0, 0]))  # one class: undefined
    assert rank_correlation([1, 2, 3, 4], [10, 20, 40, 30]) == pytest.approx(0.8)
    assert np.isnan(rank_correlation([1, 2, 3], [0, 0, 0]))
    nan = float("nan")
    y = torch.tensor([[1.0, nan], [0.0, nan], [0.0, nan], [0.5, nan]])
    w = pos_weights(y)  # negative mass 2.5 over positive mass 1.5; no gap targets: 1
    assert w.tolist() == pytest.approx([2.5 / 1.5, 1.0])
    assert pos_weights(torch.zeros(5, 2)).tolist() == [1.0, 1.0]


@pytest.mark.parametrize("mode", ["train", "freeze"])
def test_stage3_discriminator_trains_or_stays_as_stage2_left_it(mode, tmp_path):
    """``stage3_discriminator="freeze"`` (the paper's Stage III: no real data) leaves the
    discriminator's weights untouched while the generator learns; "train" updates both.
    The oracle hooks are switched off: this is about which networks step."""
    import lightning as L

    class NoOracle(CrystalGAN):
        def on_train_epoch_start(self) -> None:
            pass

        def on_train_batch_end(self, *args: object) -> None:
            pass

    torch.manual_seed(0)
    gan = NoOracle(3, [80, 32], width=8, noise_dim=16, stage3_discriminator=mode)
    before = {k: v.clone() for k, v in gan.state_dict().items()}
    data = torch.utils.data.TensorDataset(torch.rand(8, 80, 32) * 2 - 1, torch.ones(8))
    trainer = L.Trainer(
        max_steps=4, accelerator="cpu", logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path,
    )  # fmt: skip
    trainer.fit(gan, torch.utils.data.DataLoader(data, batch_size=4))
    after = gan.state_dict()

    def changed(prefix: str) -> bool:
        return any(not torch.equal(before[k], after[k]) for k in before if k.startswith(prefix))

    assert changed("generator.")
    assert changed("discriminator.") == (mode == "train")


@pytest.mark.slow
def test_stage3_with_the_topology_oracle(cli, gan_inputs, tmp_path):
    """A CrystalBERT topology classifier (trained here on the library's labels) as Stage
    III's third oracle: the oracle scores every relaxed crystal with it (the unstable one
    too), 0 where nothing relaxed; a third reward head learns those scores; the stage metric
    is "all" (stable and topological) and the per-epoch metrics carry it."""
    from topogen.calc.relax import RelaxSettings, load_model, relax_batch
    from topogen.models.crystalbert.scorer import TopologyClassifier
    from topogen.models.gan3.train import stage3_oracle
    from topogen.models.training import make_trainer, quiet_lightning, read_metrics

    ckpt = tmp_path / "topology.ckpt"
    res = cli("train", "topology-classifier", "--table", gan_inputs["table"], "--out", ckpt,
              "--metrics", tmp_path / "topology.json", "--workdir", tmp_path / "tw",
              "--epochs", "3", "--folds", "0", "--width", "16", "--layers", "1", "--heads", "2",
              "--threads", "2", "--gpus", "0")  # fmt: skip
    assert res.returncode == 0, res.stderr
    chgnet = load_model()
    mos2 = relax_batch([P.mx2_2h("Mo", "S")], RelaxSettings(fmax=0.01, steps=300), model=chgnet)
    decoded = _Decoded([mos2[0].structure, P.honeycomb("Si", buckling=0.0), None])
    _, images, labels = image_set(gan_inputs["images"], gan_inputs["table"], 2)
    gan = CrystalGAN(3, images.shape[1:], width=8, noise_dim=16, oracle_samples=3,
                     oracle={"min_repeat_2d": 4}, has_topology_model=True)  # fmt: skip
    _, oracle = stage3_oracle(gan, gan_inputs["ae"], None, 2, ckpt)
    oracle._chgnet = chgnet
    assert isinstance(oracle.topology_model, TopologyClassifier)

    scores = oracle(decoded.decode_many(range(3)))
    assert scores.stable.tolist() == [True, False, False], scores.reasons
    relaxed = scores.relaxed[:2]
    assert all(r is not None for r in relaxed) and scores.relaxed[2] is None
    expected = TopologyClassifier(ckpt)(relaxed)
    np.testing.assert_allclose(scores.topology_score[:2], expected, rtol=1e-5)
    assert scores.topology_score[2] == 0.0
    assert scores.topological.tolist() == [bool(x >= 0.5) for x in [*expected, 0.0]]
    verdicts = scores.verdicts()
    assert set(verdicts) == {"stable", "topological", "all"}  # no band-gap model
    assert verdicts["all"].tolist() == [bool(expected[0] >= 0.5), False, False]

    gan.attach_oracle(decoded, oracle)
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(images, labels), batch_size=16, drop_last=True
    )
    with quiet_lightning():
        make_trainer(tmp_path / "s3", 1, accelerator="cpu", devices=1).fit(gan, loader)
    assert gan.stage_metric == "all" and gan.buffer_scores.shape == (6, 3)
    np.testing.assert_allclose(gan.buffer_scores[:3, 2], scores.topology_score, rtol=1e-5)
    m = read_metrics(tmp_path / "s3")
    assert m["stage_metric"].iloc[0] == m["oracle_all"].iloc[0] == verdicts["all"].mean()
    assert m["oracle_topological"].iloc[0] == pytest.approx(scores.topological.mean())
    assert {"reward_auc_topology", "reward_rank_topology"} <= set(m.columns)
    assert m["oracle_insulating"].isna().all()


@pytest.mark.slow
def test_sigterm_exits_143_writes_nothing_and_the_rerun_resumes(gan_inputs, tmp_path):
    """SLURM and Snakemake stop a job with SIGTERM: Lightning turns it into a SystemExit that
    used to exit 0 with no outputs (SLURM: COMPLETED). Now: exit 143, one line naming the work
    folder, no model, and running the command again resumes from the last checkpoint."""
    import signal
    import subprocess
    import time

    from conftest import BIN

    d = tmp_path / "s1"
    cmd = [
        str(BIN / "topogen"), "train", "gan", "--stage", "1", "--images",
        str(gan_inputs["images"]), "--table", str(gan_inputs["table"]), "--out",
        str(d / "model.ckpt"), "--metrics", str(d / "metrics.csv"), "--plot",
        str(d / "metrics.png"), "--workdir", str(d / "work"), *FAST, "--batch-size", "16",
    ]  # fmt: skip
    proc = subprocess.Popen([*cmd, "--epochs", "500"], stderr=subprocess.PIPE, text=True)
    last = d / "work/checkpoints/last.ckpt"
    deadline = time.monotonic() + 120
    while not last.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert last.exists(), proc.stderr.read() if proc.poll() is not None else "no checkpoint"
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    line = err.strip().splitlines()[-1]
    assert "terminated (SIGTERM)" in line and f"resumes from {d / 'work'}" in line
    assert not (d / "model.ckpt").exists() and not (d / "metrics.csv").exists()
    done = torch.load(last, map_location="cpu", weights_only=True)["epoch"]  # last finished
    res = subprocess.run([*cmd, "--epochs", str(done + 2)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    second = pd.read_csv(d / "work/logs/version_1/metrics.csv")["epoch"].dropna().unique()
    assert second.tolist() == [done + 1]  # the rerun's only epoch: it resumed, no restart
    assert pd.read_csv(d / "metrics.csv")["epoch"].tolist() == list(range(done + 2))
    # a new learning rate (e.g. --forcerun after a config change) trains afresh, not resumes
    res = subprocess.run([*cmd, "--epochs", "1", "--lr", "1e-3"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "trained with other settings (lr); moved to" in res.stderr
    assert pd.read_csv(d / "metrics.csv")["epoch"].tolist() == [0]
    assert (d / "work.stale-1/checkpoints/last.ckpt").exists()  # kept, not deleted


def test_a_second_trainer_in_the_same_work_folder_is_refused(cli, gan_inputs, tmp_path):
    """After a killed Snakemake and --unlock, an orphan trainer may still run: a second one
    in its work folder stops at once, naming the first, and writes nothing."""
    import os

    from topogen.io.locks import folder_lock

    d = tmp_path / "s1"
    with folder_lock(d / "work"):
        res = cli(
            "train", "gan", "--stage", "1", "--images", gan_inputs["images"], "--table",
            gan_inputs["table"], "--out", d / "model.ckpt", "--metrics", d / "metrics.csv",
            "--plot", d / "metrics.png", "--workdir", d / "work", *FAST, "--epochs", "1",
        )  # fmt: skip
    assert res.returncode == 1
    (line,) = res.stderr.strip().splitlines()
    assert f"{d / 'work'}: another topogen process (pid {os.getpid()} on " in line
    assert not (d / "work").exists() and not (d / "model.ckpt").exists()


def test_an_output_folder_that_cannot_be_written_fails_before_training(cli, gan_inputs, tmp_path):
    """It used to be found only when the finished model was written, after the whole run."""
    blocker = tmp_path / "results"
    blocker.write_text("a file where the output folder should be\n")
    d = tmp_path / "s1"
    res = cli(
        "train", "gan", "--stage", "1", "--images", gan_inputs["images"], "--table",
        gan_inputs["table"], "--out", blocker / "model.ckpt", "--metrics", d / "metrics.csv",
        "--plot", d / "metrics.png", "--workdir", d / "work", *FAST, "--epochs", "50",
    )  # fmt: skip
    assert res.returncode == 1
    (line,) = res.stderr.strip().splitlines()
    assert line == (
        f"topogen: error: {blocker / 'model.ckpt'}: cannot write there ({blocker} is a file, "
        "not a folder); nothing was run"
    )
    assert not (d / "work").exists()
