"""The tight-binding network's physics: exact solvers, the symmetric TB model, the
degenerate-safe eigh, and a short training on real solver output."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from topogen.errors import TopogenError
from topogen.models.tbnn.data import make_dataset, read_dataset
from topogen.models.tbnn.exact import PlaneWaves, fd_bands
from topogen.models.tbnn.potentials import VMAX, fourier_coefficients, random_potential
from topogen.models.tbnn.settings import DataSettings, NetworkSettings
from topogen.models.tbnn.symmetry import LATTICES, group_labels, wedge_grid
from topogen.models.tbnn.tb import TBModel

P6 = LATTICES["p6"]


def _free(lattice, k: np.ndarray, n: int) -> np.ndarray:
    """Lowest n free-electron energies |k + G|^2 by brute force."""
    g = np.array([(i, j) for i in range(-6, 7) for j in range(-6, 7)])
    q = lattice.cartesian_k(g + k)
    return np.sort((q**2).sum(axis=1))[:n]


@pytest.mark.parametrize("name", ["p6", "p4"])
def test_plane_waves_give_free_electron_bands(name):
    lattice = LATTICES[name]
    kpoints = np.vstack([wedge_grid(lattice, 4), [[0.13, 0.31]]])
    bands = PlaneWaves(lattice, 1200).bands(np.zeros((24, 24)), kpoints, 8)
    expected = np.array([_free(lattice, k, 8) for k in kpoints])
    np.testing.assert_allclose(bands.energies, expected, atol=1e-9)
    if name == "p6":  # |b| = 4 pi / sqrt(3): six plane waves at Gamma, three at K
        np.testing.assert_allclose(bands.points["G"][1:7], (4 * math.pi / math.sqrt(3)) ** 2)
        np.testing.assert_allclose(bands.points["K"][:3], (4 * math.pi / 3) ** 2)
        # the six plane waves of the first shell carry every C6 irrep once
        assert sorted(bands.labels["G"][1:7]) == [0, 1, 2, 3, 4, 5]


def test_random_potential_is_symmetric_and_digitised():
    image = random_potential(P6, 24, np.random.default_rng(3))
    assert set(np.unique(image)) == {0.0, VMAX}
    f = np.indices((24, 24)).reshape(2, -1)
    rotated = (P6.rotation_frac() @ f) % 24
    np.testing.assert_array_equal(image[rotated[0], rotated[1]].reshape(24, 24), image)
    c = fourier_coefficients(P6, image)
    assert np.abs(c.imag).max() < 1e-9 * VMAX  # C2 symmetric: real coefficients


def test_essential_degeneracies_of_a_random_potential():
    """p6 with time reversal: E1/E2 pairs at Gamma (labels j, 6 - j) and w/w* pairs at K
    (C2T maps a C3 eigenvalue to its conjugate) are degenerate; M has none."""
    image = random_potential(P6, 24, np.random.default_rng(5))
    bands = PlaneWaves(P6, 1200).bands(image, np.zeros((1, 2)), 12)
    for point, pairs in (("G", {1: 5, 2: 4}), ("K", {1: 2})):
        e, lab = bands.points[point], bands.labels[point]
        whole = e < e[-1] - 1e-6  # the top group may be cut
        e, lab = e[whole], lab[whole]
        for i in range(len(e) - 1):
            if lab[i] in pairs and i + 1 < len(e) and lab[i + 1] == pairs[lab[i]]:
                assert e[i + 1] - e[i] < 1e-8 * VMAX
        # every complex label comes with its partner, at the same energy
        for j, partner in pairs.items():
            np.testing.assert_allclose(np.sort(e[lab == j]), np.sort(e[lab == partner]), atol=1e-7)
            assert (lab == j).sum() == (lab == partner).sum()
    assert np.min(np.diff(bands.points["M"])) > 1e-6


def test_finite_differences_agree_with_plane_waves():
    image = random_potential(P6, 24, np.random.default_rng(0))
    k = np.array([[0.1, 0.05], [2 / 3, 1 / 3]])
    pw = PlaneWaves(P6, 4800).bands(image, k, 6).energies
    fd = fd_bands(P6, image, k, 6, grid=100)
    assert np.abs(fd - pw).max() < 0.005 * VMAX  # 100 x 100 grid against 337 plane waves


@pytest.mark.parametrize(
    ("name", "orbitals", "trs"), [("p6", "s s p p d d f", True), ("p4", "s p b p", False)]
)
def test_tb_model_has_its_symmetries_for_random_parameters(name, orbitals, trs):
    lattice = LATTICES[name]
    tb = TBModel(lattice, orbitals, 2.7, trs)
    params = torch.randn(
        2, tb.n_params, dtype=torch.float64, generator=torch.Generator().manual_seed(0)
    )
    k = np.random.default_rng(1).random((7, 2))
    h = tb.hamiltonian(params, k).numpy()
    assert np.abs(h - np.swapaxes(h, -1, -2).conj()).max() < 1e-12
    d = tb.rep()
    rotated = tb.hamiltonian(params, (lattice.rotation_recip() @ k.T).T).numpy()
    np.testing.assert_allclose(d @ h @ d.T, rotated, atol=1e-12)
    reversed_k = tb.hamiltonian(params, -k).numpy()
    if trs:
        np.testing.assert_allclose(reversed_k, h.conj(), atol=1e-12)
    else:  # class A: nothing ties H(-k) to H(k)*
        assert np.abs(reversed_k - h.conj()).max() > 1e-3
    # the per-shell products give t(R) = sum_p c_p basis[p] (the definition), gradients too
    x = params.clone().requires_grad_()
    basis = torch.as_tensor(tb.basis if not trs else tb.basis.real)
    dense = torch.einsum("bp,prij->brij", x.to(basis.dtype), basis)
    fast = tb.hoppings(x)
    assert fast.dtype == dense.dtype and fast.shape == dense.shape
    np.testing.assert_allclose(fast.detach().numpy(), dense.detach().numpy(), atol=1e-13)
    weights = torch.randn(
        fast.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(2)
    )
    (g_fast,) = torch.autograd.grad((fast.real * weights).sum(), x)
    (g_dense,) = torch.autograd.grad((dense.real * weights).sum(), x)
    np.testing.assert_allclose(g_fast.numpy(), g_dense.numpy(), atol=1e-12)
    # every parameter matters: the basis is linearly independent
    flat = tb.basis.reshape(tb.n_params, -1)
    assert np.linalg.matrix_rank(np.concatenate([flat.real, flat.imag], axis=1)) == tb.n_params


def test_tb_labels_match_its_blocks():
    tb = TBModel(P6)
    params = torch.randn(
        1, tb.n_params, dtype=torch.float64, generator=torch.Generator().manual_seed(4)
    )
    for point, (k, power) in P6.points.items():
        h = tb.hamiltonian(params, np.array([k]))[0, 0].numpy()
        e, v = np.linalg.eigh(h)
        labels = group_labels(e, v, tb.rep(power), P6.point_order(point), 1e-9)
        blocks = tb.sector_energies(params, point)
        pairs = sorted((round(float(x), 8), j) for j, ev in blocks.items() for x in ev[0])
        groups = [sorted(j for x, j in pairs if abs(x - y) < 1e-7) for y in e]
        assert [labels[i] in groups[i] for i in range(len(e))] == [True] * len(e)


def test_eigh_gradient_is_finite_at_a_degeneracy():
    """At Gamma the E1/E2 pairs are exactly degenerate; the gradient of a loss on the
    lowest bands (basis independent: eigenvalues) is finite there and matches finite
    differences."""
    tb = TBModel(P6)
    g = torch.Generator().manual_seed(7)
    params = torch.randn(tb.n_params, dtype=torch.float64, generator=g).requires_grad_()
    gamma = np.zeros((1, 2))

    from topogen.topology.batched import eigh

    e = tb.bands(params.detach(), gamma)[0]
    pair = int(torch.argmin(e[1:] - e[:-1]))
    assert e[pair + 1] - e[pair] < 1e-12  # a symmetry-enforced pair

    def loss(p: torch.Tensor) -> torch.Tensor:
        """Eigenvalues and the weight of orbital 0 in the pair's projector: both basis
        independent inside the pair; the projector needs the eigenvectors' gradient."""
        values, vectors = eigh(tb.hamiltonian(p, gamma)[0])
        weight = (vectors[0, pair : pair + 2].abs() ** 2).sum() + (
            vectors[2, pair : pair + 2].abs() ** 2
        ).sum()
        return (values[:6] ** 2).sum() + 100 * weight

    (grad,) = torch.autograd.grad(loss(params), params)
    assert torch.isfinite(grad).all()
    step = 1e-6
    for i in torch.randperm(tb.n_params, generator=g)[:8]:
        dp = torch.zeros_like(params)
        dp[i] = step
        fd = (loss(params.detach() + dp) - loss(params.detach() - dp)) / (2 * step)
        assert float(grad[i]) == pytest.approx(float(fd), rel=1e-4, abs=1e-6)


def test_training_lowers_the_loss(tmp_path):
    from topogen.models.tbnn.train import load_tbnn, tensors, train_tbnn

    settings = DataSettings(size=16, ecut=600, wedge=4)
    data = make_dataset(settings, 24, tmp_path / "train.npz", seed=0, log=lambda *_: None)
    again = read_dataset(tmp_path / "train.npz")
    np.testing.assert_array_equal(again["energies"], data["energies"])
    net = NetworkSettings(radius=1.0, channels=(4,), hidden=(32,), epochs=8, batch_size=8, lr=3e-3)
    model = train_tbnn(again, tmp_path / "run", net, val_fraction=0.0, log=lambda *_: None)
    loaded = load_tbnn(tmp_path / "run" / "model.ckpt")
    arrays = tensors(loaded, again)
    after = float(loaded.loss(arrays)["band"])
    torch.manual_seed(0)
    fresh = type(model)(**dict(model.hparams))
    fresh.start_at(float(arrays["energies"].mean()))  # where training starts: flat bands
    before = float(fresh.eval().loss(arrays)["band"])
    flat = float(((arrays["energies"] - arrays["energies"].mean()) ** 2).mean())
    assert before == pytest.approx(flat, rel=0.05)
    assert after < 0.5 * before


def test_a_bad_data_set_is_named(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(TopogenError, match=r"bad\.npz: not a tbnn data set"):
        read_dataset(bad)


@pytest.mark.slow
def test_commands_from_data_to_metrics(tmp_path):
    """`topogen tbnn data | train | evaluate` at toy scale: the metrics are those of the
    model and data they name (recomputed here), the figure is a real PNG."""
    import json

    from PIL import Image

    from topogen.cli import main
    from topogen.models.tbnn.train import load_tbnn

    small = ["--size", "16", "--ecut", "600"]
    assert (
        main(
            ["tbnn", "data", "--out", str(tmp_path / "t.npz"), "--n", "16", "--wedge", "4", *small]
        )
        == 0
    )
    assert (
        main(
            [
                "tbnn",
                "data",
                "--out",
                str(tmp_path / "v.npz"),
                "--n",
                "6",
                "--seed",
                "9",
                "--wedge",
                "6",
                *small,
            ]
        )
        == 0
    )
    train = ["--radius", "1.0", "--channels", "4", "--hidden", "16", "--epochs", "3"]
    t, v, m = (str(tmp_path / f) for f in ("t.npz", "v.npz", "m.ckpt"))
    work = str(tmp_path / "work")
    assert (
        main(["tbnn", "train", "--data", t, "--out", m, "--workdir", work, "--gpus", "0", *train])
        == 0
    )
    out = ["--metrics", str(tmp_path / "m.json"), "--plot", str(tmp_path / "b.png")]
    evaluate = ["tbnn", "evaluate", "--model", m, "--data", v, *out, "--speed-kpoints", "8"]
    assert main(evaluate) == 0
    metrics = json.loads((tmp_path / "m.json").read_text())
    valid = read_dataset(tmp_path / "v.npz")
    model = load_tbnn(tmp_path / "m.ckpt")
    images = torch.as_tensor(valid["images"], dtype=torch.float32)
    with torch.no_grad():
        pred = model.predict_energies(images, valid["kpoints"]).numpy()
    rms = np.sqrt((((pred - valid["energies"]) / VMAX) ** 2).mean())
    assert metrics["rms_over_vmax"] == pytest.approx(rms, rel=1e-6)
    assert metrics["n_kpoints"] == 28 and metrics["n_potentials"] == 6
    assert metrics["speed"]["speedup_over_lanczos"] > 10
    assert (tmp_path / "m.json.prov.json").exists()
    with Image.open(tmp_path / "b.png") as im:
        assert im.width > 600 and im.height > 400

    # design: gradient descent through the network closes the p/d gap it starts from
    design = ["--steps", "25", "--scan", "5", "--ecut", "600", "--lr", "0.02"]
    d_out = str(tmp_path / "d.json")
    assert main(["tbnn", "design", "--model", m, "--out", d_out, *design]) == 0
    inversion = json.loads((tmp_path / "d.json").read_text())["inversion"]
    gaps = [abs(g) for _, g in inversion["history"]]
    assert gaps[-1] < gaps[0] and len(inversion["scan"]["exact"]) == 5

    # explore: the exact half is the validation set's own band sets
    from topogen.models.tbnn.explore import band_sets

    e_out = str(tmp_path / "e.json")
    assert main(["tbnn", "explore", "--model", m, "--out", e_out, "--n", "30", "--valid", v]) == 0
    found = json.loads((tmp_path / "e.json").read_text())
    exact = found["validation"]["exact"]["fine"]["with_second_set"]
    energies = valid["energies"] / VMAX
    assert exact == sum(len(band_sets(e, 1e-3, 6)) > 1 for e in energies)
    assert found["random"]["n_potentials"] == 30


def _wells(sites: list[tuple[float, float]], radius: float = 0.15, size: int = 24) -> np.ndarray:
    """Deep wells (V = 0 discs in V = Vmax) at fractional ``sites``: orbitals there."""
    f = np.arange(size) / size
    frac = np.stack(np.meshgrid(f, f, indexing="ij"), axis=-1).reshape(-1, 2)
    image = np.full(size * size, VMAX)
    for site in sites:
        d = frac - np.array(site)
        d -= np.rint(d)
        image[np.linalg.norm(d @ P6.cell, axis=1) < radius] = 0.0
    return image.reshape(size, size)


@pytest.mark.parametrize(
    ("wyckoff", "sites"),
    [
        ("1a", [(0, 0)]),
        ("2b", [(1 / 3, 1 / 3), (2 / 3, 2 / 3)]),
        ("3c", [(0.5, 0), (0, 0.5), (0.5, 0.5)]),
    ],
)
def test_ebrs_match_the_lowest_bands_of_wells_at_their_sites(wyckoff, sites):
    """s-like states of deep wells at a Wyckoff position form its EBR induced from A: the
    exact solver's labels of the lowest bands equal the computed EBR's."""
    from topogen.models.tbnn.explore import ebrs, fingerprint, is_fragile

    table = ebrs(P6)
    bands = PlaneWaves(P6, 1200).bands(_wells(sites), np.zeros((1, 2)), 6)
    lowest = range(len(sites))
    vector = fingerprint(P6, bands.labels, lowest)
    np.testing.assert_array_equal(vector, table[f"{wyckoff}:A"])
    assert not is_fragile(vector, table)
    # a set with the p pair at Gamma but two C2-even bands at M is no sum of EBRs
    assert is_fragile(np.array([0, 1, 0, 0, 0, 1, 0, 1, 1, 2, 0]), table)


@pytest.mark.parametrize(("mass", "chern"), [(-1.0, 1), (1.0, -1), (3.0, 0), (-3.0, 0)])
def test_uniform_bhz_supercells_have_the_qwz_chern_number(mass, chern):
    """A uniform mass: the lower QWZ band (Chern +1 for -2 < m < 0, -1 for 0 < m < 2 in
    our convention, 0 beyond), folded into the 4 lowest bands of a 2 x 2 supercell."""
    from topogen.models.tbnn.bhz import supercell_bands

    one = supercell_bands(np.full((1, 1), mass), np.zeros((1, 2)), 1)
    assert one["chern"][0] == chern
    four = supercell_bands(np.full((2, 2), mass), np.zeros((1, 2)), 4)
    assert four["chern"][3] == chern


def test_bhz_cells_are_c4_symmetric_without_time_reversal():
    from topogen.models.tbnn.bhz import BHZ_SQUARE, Supercell, mass_map
    from topogen.models.tbnn.potentials import random_field

    image = (random_field(BHZ_SQUARE, 6, np.random.default_rng(2)) > 0).astype(float)
    cell = Supercell(mass_map(image, (-1.0, 3.0)))
    for point, (k, power) in BHZ_SQUARE.points.items():
        h, r = cell.hamiltonian(np.array(k)), cell.rotation(np.array(k), power)
        np.testing.assert_allclose(r @ h @ r.conj().T, h, atol=1e-12)
        order = BHZ_SQUARE.point_order(point)
        np.testing.assert_allclose(np.linalg.matrix_power(r, order), np.eye(len(r)), atol=1e-12)
    k = np.array([0.13, 0.27])
    h = cell.hamiltonian(k)
    assert np.abs(cell.hamiltonian(-k) - h.conj()).max() > 1e-3  # no time reversal


def test_bhz_training_reports_chern_accuracy(tmp_path):
    from topogen.models.tbnn.evaluate import evaluate
    from topogen.models.tbnn.train import train_tbnn

    settings = DataSettings(kind="bhz", size=4, wedge=4, n_bands=2, chern_grid=8)
    assert settings.vmax == 1.0 and settings.lattice == "p4"
    data = make_dataset(settings, 12, tmp_path / "bhz.npz", log=lambda *_: None)
    assert set(np.unique(data["chern"][np.isfinite(data["chern"])])) <= {-1.0, 0.0, 1.0}
    net = NetworkSettings(orbitals="s s p b", radius=1.5, channels=(4,), hidden=(16,), epochs=2)
    model = train_tbnn(
        read_dataset(tmp_path / "bhz.npz"), tmp_path / "run", net, log=lambda *_: None
    )
    assert not model.tb.time_reversal
    chern = evaluate(model, data)["chern"]
    for b in (1, 2):
        defined = int(np.isfinite(data["chern"][:, b - 1]).sum())
        if defined:
            assert chern[f"lowest_{b}"]["defined"] == defined
            assert sum(chern[f"lowest_{b}"]["exact_values"].values()) == defined


def test_chern_scores_tell_a_winding_off_by_four_from_a_wrong_symmetry_content():
    from topogen.models.tbnn.evaluate import chern_scores

    exact = np.array([0, 0, 1, -1, 0, 2])
    predicted = np.array([0, 4, -3, 1, 0, 2])
    open_gap = np.array([True, True, True, True, False, True])
    scores = chern_scores(predicted, exact, open_gap)
    # right: cells 0 and 5; right modulo 4 also 1 (0 vs 4) and 2 (1 vs -3); 3 is wrong
    # (1 vs -1 differ by 2); 4 has a closed gap
    assert scores == {"accuracy": 2 / 6, "accuracy_mod4": 4 / 6, "off_by_4k": 2 / 6}


@pytest.mark.slow
def test_benchmark_smoke(tmp_path):
    """bench/tbnn.py end to end at toy scale, both cases: the summary holds what the
    issue asks for (rms, labels, speed-up, Chern accuracy, exploration, design)."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    bench = Path(__file__).parents[1] / "bench" / "tbnn.py"
    common = [sys.executable, str(bench), "--out", str(tmp_path), "--threads", "1", "--gpus", "0"]
    step = ["--train", "12", "--valid", "3", "--epochs", "1", "--explore", "20", "--ecut", "600"]
    subprocess.run([*common, *step], check=True, timeout=600)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["validation"]["n_kpoints"] == 325 and summary["n_train"] == 12
    assert summary["speed"]["speedup_over_lanczos"] > 10
    assert summary["explore"]["random"]["n_potentials"] == 20
    assert len(summary["design"]["scan"]["exact"]) == 17
    bhz = ["--case", "bhz", "--bhz-size", "4", "--bhz-train", "8", "--bhz-valid", "4"]
    subprocess.run([*common, *bhz, "--bhz-epochs", "1"], check=True, timeout=600)
    summary = json.loads((tmp_path / "bhz" / "summary.json").read_text())
    assert summary["data"]["kind"] == "bhz" and summary["validation"]["n_potentials"] == 4
    assert "lanczos_fd_s" not in summary["speed"]
