"""The self-supervised generator: an equivariant backbone (rotated input -> same species
logits, rotated displacements), the corruption recipe's statistics, pretraining that lowers
the loss on real monolayers, fine-tuning and GAN steps that start from the right weights, the
metrics' normalisation, and candidates in the common table schema (and the commands)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from pymatgen.core import Lattice, Structure
from scipy.spatial.transform import Rotation

from topogen.data.mc2d import load_mc2d_file
from topogen.encode import EncodingError
from topogen.io.tables import read_records, write_records
from topogen.models.ssl.corruption import corrupt
from topogen.models.ssl.crystals import MASK, collate, crystal, crystals
from topogen.models.ssl.evaluate import Training, generation_metrics
from topogen.models.ssl.model import Generator, PropertyModel, fake_inputs, one_hot
from topogen.models.ssl.sampling import sample_ssl
from topogen.models.ssl.settings import FinetuneSettings, GanSettings, PretrainSettings
from topogen.models.ssl.train import finetune, load, pretrain, split, train_gan

MC2D = Path(__file__).parents[1] / "resources/mc2d_gaps.json.gz"
SMALL = {"hidden": 16, "layers": 2, "n_rbf": 8}


@pytest.fixture(scope="module")
def monolayers():
    """40 real MC2D monolayers (the shipped gap table) with their PBE gaps."""
    return load_mc2d_file(MC2D).records[:40]


@pytest.fixture(scope="module")
def items(monolayers):
    kept, bad = crystals([r.structure for r in monolayers], 5.0, 24)
    assert not bad
    for c, r in zip(kept, monolayers, strict=True):
        c.label = r.properties["band_gap"]
    return kept


def _rotated(s: Structure, rot: np.ndarray) -> Structure:
    return Structure(Lattice(s.lattice.matrix @ rot.T), s.species, s.cart_coords @ rot.T,
                     coords_are_cartesian=True)  # fmt: skip


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_backbone_is_equivariant(monolayers, seed):
    """Rotating the crystal (cell and atoms) leaves the species logits and the pooled
    features unchanged and rotates the displacements, to 1e-5 (float64)."""
    torch.manual_seed(seed)
    s = monolayers[seed].structure
    rot = Rotation.random(random_state=seed).as_matrix()
    model = Generator(**PretrainSettings(**SMALL).hparams()).double()
    b1, b2 = collate([crystal(s, 5.0)]), collate([crystal(_rotated(s, rot), 5.0)])
    x = one_hot(b1.species, torch.float64)
    x[0] = 0
    x[0, MASK] = 1  # a masked atom, too
    with torch.no_grad():
        l1, d1 = model(x, b1)
        l2, d2 = model(x, b2)
    assert d1.abs().max() > 1e-4  # not trivially zero
    np.testing.assert_allclose(l1.numpy(), l2.numpy(), atol=1e-5)
    np.testing.assert_allclose(d1.numpy() @ rot.T, d2.numpy(), atol=1e-5)
    # a translated crystal: the same outputs
    b3 = collate([crystal(s.copy().translate_sites(range(len(s)), [0.1, 0.2, 0.0]), 5.0)])
    with torch.no_grad():
        l3, d3 = model(x, b3)
    np.testing.assert_allclose(l1.numpy(), l3.numpy(), atol=1e-5)
    np.testing.assert_allclose(d1.numpy(), d3.numpy(), atol=1e-5)


def test_corruption_follows_the_recipe(items):
    """Half of the crystals lose every atom of one species, the others 15% of their atoms
    (at least one); noise sigma = ratio x shortest edge; the target undoes the noise up to
    the crystal's mean."""
    batch = collate(items)
    rng = np.random.default_rng(0)
    whole, draws, residual = 0, 0, []
    species, graph = batch.species.numpy(), batch.graph.numpy()
    for _ in range(25):
        c = corrupt(batch, rng, noise_ratio=0.1, species_mask=0.5, mask_fraction=0.15)
        masked = c.masked.numpy()
        assert (c.inputs.argmax(-1).numpy()[masked] == MASK).all()
        assert (c.inputs.argmax(-1).numpy()[~masked] == species[~masked]).all()
        for g in range(batch.size):
            at = graph == g
            m, sp = masked[at], species[at]
            one_species = len(set(sp[m])) == 1 and (sp == sp[m][0])[~m].sum() == 0
            fraction = m.sum() == max(1, round(0.15 * at.sum()))
            assert m.any() and (one_species or fraction)
            whole += one_species and not fraction
            draws += not (one_species and fraction)  # a draw whose kind can be told
            noise = (c.noisy - batch.positions).numpy()[at] / (0.1 * batch.min_edge[g].item())
            residual.append(noise)
            back = (c.noisy + c.target - batch.positions).numpy()[at]
            np.testing.assert_allclose(back, np.broadcast_to(back.mean(0), back.shape),
                                       atol=1e-9)  # fmt: skip
    assert abs(whole / draws - 0.5) < 0.08  # binomial, n ~ 1000: sd 0.016
    z = np.concatenate(residual).ravel()
    assert abs(z.std() - 1.0) < 0.05 and abs(z.mean()) < 0.05


def test_mask_modes(items):
    batch = collate(items[:10])
    rng = np.random.default_rng(1)
    species, graph = batch.species.numpy(), batch.graph.numpy()
    masked = corrupt(batch, rng, noise_ratio=0.0, mode="species").masked.numpy()
    for g in range(batch.size):
        at = graph == g
        assert len(set(species[at][masked[at]])) == 1
        assert not np.isin(species[at][~masked[at]], species[at][masked[at]]).any()
    masked = corrupt(batch, rng, noise_ratio=0.0, mode="fraction", mask_fraction=0.3).masked
    for g in range(batch.size):
        at = graph == g
        assert masked.numpy()[at].sum() == max(1, round(0.3 * at.sum()))


def _loss(model: Generator, items) -> float:
    batch = collate(items).to("cpu", torch.float32)
    c = model.corruption(batch, np.random.default_rng(7))
    with torch.no_grad():
        nll, mse, _, _ = model.losses(batch, c)
    return float(nll + model.hparams.pos_weight * mse)


def test_pretraining_lowers_the_loss(tmp_path, items):
    torch.manual_seed(0)
    settings = PretrainSettings(**SMALL, epochs=15, lr=3e-3, batch_size=8)
    before = _loss(Generator(**settings.hparams()), items)
    model = pretrain(items, tmp_path, settings, threads=1, accelerator="cpu", log=lambda m: None)
    after = _loss(model, items)
    assert after < 0.85 * before, (before, after)
    again = load(tmp_path / "model.ckpt", Generator)
    assert _loss(again, items) == pytest.approx(after, rel=1e-6)


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory, items):
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("pre")
    settings = PretrainSettings(**SMALL, epochs=3, lr=2e-3, batch_size=8)
    pretrain(items, out, settings, threads=1, accelerator="cpu", log=lambda m: None)
    return out / "model.ckpt"


def test_finetuning_starts_from_the_pretrained_backbone(tmp_path, items, pretrained):
    gen = load(pretrained, Generator)
    s = FinetuneSettings(property="band_gap", threshold=0.0, positive="above", epochs=2,
                         lr=1e-3, hidden=8)  # fmt: skip
    assert [s.label(x) for x in (0.0, 1.2)] == [0.0, 1.0] and math.isnan(s.label(math.nan))
    labelled = [crystal_with(c, s.label(c.label)) for c in items]
    model, metrics = finetune(labelled, gen, tmp_path, s, threads=1, accelerator="cpu",
                              log=lambda m: None)  # fmt: skip
    train, held = split(len(labelled), s.held_out, s.seed)
    y = np.array([c.label for c in labelled])
    majority = float(y[train].mean() >= 0.5)
    assert metrics["n_held_out"] == len(held) == 4
    assert metrics["majority_accuracy"] == pytest.approx(np.mean(y[held] == majority))
    assert metrics["positive_fraction"] == pytest.approx(y[held].mean())
    # the head was trained, and so was the backbone, from the pretrained weights
    assert not torch.equal(model.backbone.embed.weight, gen.backbone.embed.weight)
    drift = (model.backbone.embed.weight - gen.backbone.embed.weight).abs().max()
    assert drift < 0.1
    regression = FinetuneSettings(task="regression", property="band_gap", epochs=1, hidden=8)
    model, metrics = finetune(items, gen, tmp_path / "r", regression, threads=1,
                              accelerator="cpu", log=lambda m: None)  # fmt: skip
    assert set(metrics) == {"n_held_out", "mae", "mean_predictor_mae"}
    gaps = np.array([c.label for c in items])
    assert model.hparams.mean == pytest.approx(gaps.mean(), abs=0.5)


def crystal_with(c, label):
    import dataclasses

    return dataclasses.replace(c, label=label)


def test_a_classifier_without_enough_labels_is_a_clear_error(tmp_path, items, pretrained):
    unlabelled = [crystal_with(c, math.nan) for c in items]
    with pytest.raises(EncodingError, match="labelled crystals"):
        finetune(unlabelled, load(pretrained, Generator), tmp_path, FinetuneSettings(),
                 log=lambda m: None)  # fmt: skip


def test_gan_stage_starts_from_generator_and_classifier_and_trains_both(
    tmp_path, items, pretrained
):
    gen = load(pretrained, Generator)
    s = FinetuneSettings(property="band_gap", threshold=0.0, positive="above", epochs=1,
                         hidden=8)  # fmt: skip
    labelled = [crystal_with(c, s.label(c.label)) for c in items]
    clf, _ = finetune(labelled, gen, tmp_path / "clf", s, threads=1, accelerator="cpu",
                      log=lambda m: None)  # fmt: skip
    gan = train_gan(items, gen, clf, tmp_path / "gan", GanSettings(epochs=1, batch_size=8,
                    lr_d=1e-3, d_every=2), threads=1, accelerator="cpu",
                    log=lambda m: None)  # fmt: skip
    assert not torch.equal(gan.generator.species_head[0].weight, gen.species_head[0].weight)
    assert not torch.equal(gan.discriminator.head[0].weight, clf.head[0].weight)
    log = pd.read_csv(next((tmp_path / "gan").glob("logs/version_*/metrics.csv")))
    row = log.dropna(subset=["train_d_loss"]).iloc[-1]  # the discriminator stepped
    assert np.isfinite(row[["train_d_loss", "train_adversarial", "train_g_loss"]]).all()
    # a GAN checkpoint serves as a generator; a classifier does not
    assert isinstance(load(tmp_path / "gan/model.ckpt", Generator), Generator)
    with pytest.raises(EncodingError, match="not a Generator"):
        load(tmp_path / "clf/model.ckpt", Generator)
    with pytest.raises(EncodingError, match="regressor"):
        regressor = PropertyModel(
            PretrainSettings(**SMALL).hparams()["backbone"], "regression", 8, 1e-3, 0
        )
        train_gan(items, gen, regressor, tmp_path / "x", log=lambda m: None)


def test_fake_species_are_distributions_without_the_mask_token(items):
    batch = collate(items[:4]).to("cpu", torch.float32)
    c = corrupt(batch, np.random.default_rng(0), noise_ratio=0.1)
    logits = torch.randn(len(batch.species), 118)
    x = fake_inputs(c, logits)
    np.testing.assert_allclose(x.sum(-1).numpy(), 1.0, rtol=1e-6)
    assert (x[:, MASK] == 0).all()
    assert torch.equal(x[~c.masked], c.inputs[~c.masked])


def test_a_model_that_moves_nothing_has_zero_structural_similarity(items, monolayers):
    """Structural similarity is normalised by the corruption: no displacement -> 0."""
    model = Generator(**PretrainSettings(**SMALL).hparams())
    torch.nn.init.zeros_(model.vector_head.weight)
    training = Training([r.structure for r in monolayers[10:]])
    m = generation_metrics(model, items[:10], training, "fraction", 0.3, 0.2)
    assert m["n"] == 10 and m["structural_similarity"] == pytest.approx(0.0, abs=1e-6)
    # novelty: a training crystal (even slightly moved) is not novel, a substituted one is
    s = monolayers[12].structure.copy()
    assert not training.is_novel(s)
    s.perturb(0.01)
    assert not training.is_novel(s)
    old = s.composition.elements[0]
    s.replace_species({old: "Ne" if old.symbol != "Ne" else "Ar"})
    assert training.is_novel(s)


def test_candidates_replace_one_species_in_the_parent_cell(tmp_path, monolayers, pretrained):
    result = sample_ssl(pretrained, monolayers[:10], 12, seed=3, noise=0.1, temperature=1.0)
    assert len(result.records) + len(result.rejected) == 12 and result.records
    parents = {r.id: r.structure for r in monolayers}
    for r in result.records:
        p = r.properties
        parent = parents[p["parent"]]
        assert np.allclose(r.structure.lattice.matrix, parent.lattice.matrix)
        old = [str(s.specie) for s in parent]
        new = [str(s.specie) for s in r.structure]
        changed = {(a, b) for a, b in zip(old, new, strict=True) if a != b}
        assert changed == {(p["replaced"], p["element"])} and p["replaced"] != p["element"]
        assert p["replaced"] not in new  # every atom of that species
        assert 0 < p["element_probability"] <= 1
    again = sample_ssl(pretrained, monolayers[:10], 12, seed=3, noise=0.1, temperature=1.0)
    assert [r.structure for r in again.records] == [r.structure for r in result.records]


def test_not_a_checkpoint_is_a_clear_error(tmp_path):
    bad = tmp_path / "x.ckpt"
    bad.write_text("not a model")
    with pytest.raises(EncodingError, match=r"x\.ckpt"):
        load(bad, Generator)


@pytest.mark.slow
def test_commands_pretrain_finetune_gan_metrics_sample(tmp_path, cli, monolayers):
    table = tmp_path / "t.parquet"
    write_records(monolayers, table)
    small = ["--hidden", "16", "--layers", "2", "--n-rbf", "8"]
    run = lambda *a: cli("ssl", *a, "--threads", "1", cwd=tmp_path)  # noqa: E731
    res = run("pretrain", "--table", table, "--out", "pre.ckpt", "--workdir", "w/pre",
              "--epochs", "2", "--gpus", "0", *small)  # fmt: skip
    assert res.returncode == 0, res.stderr
    res = run("finetune", "--table", table, "--pretrained", "pre.ckpt", "--out", "clf.ckpt",
              "--workdir", "w/clf", "--metrics", "clf.json", "--property", "band_gap",
              "--threshold", "0", "--positive", "above", "--epochs", "1",
              "--gpus", "0")  # fmt: skip
    assert res.returncode == 0, res.stderr
    metrics = json.loads((tmp_path / "clf.json").read_text())
    insulating = np.array([r.properties["band_gap"] > 0 for r in monolayers])
    _, held = split(len(monolayers), 0.1, 0)
    assert metrics["n_held_out"] == 4 and metrics["positive"] == "above"
    assert metrics["positive_fraction"] == pytest.approx(insulating[held].mean())
    res = run("gan", "--table", table, "--generator", "pre.ckpt", "--classifier", "clf.ckpt",
              "--out", "gan.ckpt", "--workdir", "w/gan", "--epochs", "1",
              "--gpus", "0")  # fmt: skip
    assert res.returncode == 0, res.stderr
    res = run("metrics", "--table", table, "--models", "pretrained=pre.ckpt", "gan=gan.ckpt",
              "--out", "m.csv", "--noises", "0.1", "0.2")  # fmt: skip
    assert res.returncode == 0, res.stderr
    m = pd.read_csv(tmp_path / "m.csv")
    assert len(m) == 2 * 3 * 2 and set(m["mask"]) == {"species", "15%", "30%"}
    assert (m["n"] == 4).all() and m["compositional_validity"].notna().all()
    res = run("sample", "--model", "gan.ckpt", "--table", table, "--n", "6", "--out", "c.parquet")
    assert res.returncode == 0, res.stderr
    rows = read_records(tmp_path / "c.parquet")
    assert rows and all(r.source == "ssl" and r.properties["parent"] for r in rows)
    assert (tmp_path / "c.parquet.prov.json").exists()


def test_a_non_finite_loss_stops_training_with_its_place(items):
    model = Generator(**PretrainSettings(**SMALL).hparams())
    with torch.no_grad():
        model.species_head[0].weight.fill_(float("nan"))
    batch = collate(items[:4]).to("cpu", torch.float32)
    with pytest.raises(EncodingError, match=r"non-finite loss .* epoch 0, batch 3"):
        model._step(batch, 3, "train")


def test_the_backbone_stays_finite_when_atoms_nearly_touch():
    """Two atoms 0.05 A apart (what strong position noise can make) and weights scaled up as
    training makes them: features stay finite (a LayerNorm after every block)."""
    s = Structure(Lattice.hexagonal(3.2, 20.0), ["Mo", "S", "S"],
                  [[0, 0, 0.5], [1 / 3, 2 / 3, 0.58], [1 / 3 + 0.01, 2 / 3, 0.58]])  # fmt: skip
    torch.manual_seed(0)
    model = Generator(**PretrainSettings(**SMALL).hparams())
    with torch.no_grad():
        for p in model.backbone.parameters():
            p.mul_(6.0)
    batch = collate([crystal(s, 5.0)]).to("cpu", torch.float32)
    logits, disp = model(one_hot(batch.species, torch.float32), batch)
    assert torch.isfinite(logits).all() and torch.isfinite(disp).all()


@pytest.mark.slow
def test_benchmark_smoke(tmp_path):
    """bench/ssl_generator.py end to end on 200 shared monolayers, one epoch each: the
    metrics of the three generators (pretrained, GAN, its control) for every mask and the
    asked noise."""
    import subprocess
    import sys

    from topogen.data.shared import shared_data_root

    root = shared_data_root()
    if root is None or not (root / "c2db-subset").exists() or not (root / "mc2d-v4").exists():
        pytest.skip("../shared/data (c2db-subset, mc2d-v4) is absent (set TOPOGEN_SHARED_DATA)")
    bench = Path(__file__).parents[1] / "bench" / "ssl_generator.py"
    res = subprocess.run(
        [sys.executable, str(bench), "--data", str(root), "--out", str(tmp_path), "--limit",
         "200", "--pretrain-epochs", "1", "--finetune-epochs", "1", "--gan-epochs", "1",
         "--n-test", "8", "--noises", "0.2", "--hidden", "16", "--layers", "2", "--threads",
         "1", "--accelerator", "cpu"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["n_crystals"] == 200 and summary["n_held_out"] == 20
    assert summary["n_test"] == 8
    rows = summary["metrics"]
    assert {(r["model"], r["mask"]) for r in rows} == {
        (m, k) for m in ("pretrained", "gan", "control (adv 0)") for k in ("species", "15%", "30%")
    }
    assert all(r["n"] == 8 and r["noise"] == 0.2 for r in rows)
    assert len(summary["compositional_validity_gain_over_pretrained"]) == 6
    assert (tmp_path / "metrics.png").stat().st_size > 10_000


def test_sampling_names_what_it_cannot_use(tmp_path, monolayers, pretrained):
    """No parents: a clear error; a parent without a neighbour in the cut-off: its samples
    are rejected rows with the reason, the others go on."""
    from topogen.io.tables import Record

    with pytest.raises(EncodingError, match="no parent crystals"):
        sample_ssl(pretrained, [], 3, seed=0)
    lonely = Record("lonely", "test", Structure(Lattice.cubic(12.0), ["Na"], [[0, 0, 0]]), {})
    result = sample_ssl(pretrained, [lonely, monolayers[0]], 8, seed=1)
    assert len(result.records) + len(result.rejected) == 8
    assert result.rejected and all("parent lonely" in r.reason for r in result.rejected)
    assert all(r.properties["parent"] == monolayers[0].id for r in result.records)
