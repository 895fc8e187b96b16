"""`topogen topology invariants | edges` on models written as _hr.dat files, in both spinor
orders, against z2pack; the spin-order and time-reversal checks; the lattice/centre files."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_topology import _h, _z2pack_chern, _z2pack_z2, z2pack  # noqa: F401

from topogen.errors import TopogenError
from topogen.topology import TBModel, bhz, haldane, hamiltonian, kane_mele, write_hr
from topogen.topology.analysis import analyse, choose_spin_order
from topogen.topology.cell_files import read_centres, read_lattice


def to_blocks(model: TBModel) -> TBModel:
    """The same model with the orbitals reordered from interleaved (o1 up, o1 down, ...) to
    blocks (every up orbital, then every down one)."""
    n = model.num_wann
    perm = np.r_[np.arange(0, n, 2), np.arange(1, n, 2)]
    return TBModel(model.r_vectors, model.hoppings[:, perm][:, :, perm], source=model.source)


MODELS = {  # name: (model, occupied bands)
    "haldane": (haldane(), 1),
    "kane_mele": (kane_mele(lambda_v=0.1, lambda_r=0.05), 2),
    "bhz": (bhz(delta=0.3), 2),
    "bhz_trivial": (bhz(m=-1.0), 2),
}


def _invariants(cli, tmp_path, model: TBModel, nocc: int, *extra: str):
    hr = tmp_path / "model_hr.dat"
    write_hr(model, hr)
    out = tmp_path / "inv.json"
    res = cli("topology", "invariants", hr, "--occupied", nocc, "--json", out, *extra)
    return res, out


@pytest.mark.parametrize(
    ("name", "order"),
    [(name, order) for name in sorted(MODELS) for order in ("interleaved", "blocks")
     if name != "haldane" or order == "interleaved"],  # spinless: one order
)  # fmt: skip
def test_invariants_of_hr_files_match_z2pack_in_both_spin_orders(
    cli,
    tmp_path,
    z2pack,  # noqa: F811
    name,
    order,
):
    model, nocc = MODELS[name]
    if order == "blocks":
        model = to_blocks(model)
    res, out = _invariants(cli, tmp_path, model, nocc)
    assert res.returncode == 0, res.stderr
    r = json.loads(out.read_text())
    h = _h(model)
    assert r["chern"] == -_z2pack_chern(z2pack, h, nocc)  # z2pack's WCC sign is opposite
    assert f"Chern number: {r['chern']}" in res.stdout
    if name == "haldane":
        assert r["z2"] is None and "not Kramers pairs" in r["z2_error"]
        assert r["spin_chern"] is None and "--spin-order" in r["spin_chern_error"]
        assert r["chern"] == -1
        return
    z2 = _z2pack_z2(z2pack, h, nocc)
    assert r["time_reversal"] and r["z2_by_direction"] == list(z2) and r["z2"] == z2[0]
    assert r["spin_order"] == order and r["spin_order_checked"]
    assert abs(r["spin_chern"]) % 2 == r["z2"]
    assert r["gap_direct"] > 0.05 and r["gap_indirect"] <= r["gap_direct"]


def test_spin_chern_of_each_order_matches_the_spin_up_block(cli, tmp_path, z2pack):  # noqa: F811
    """S_z conserved (BHZ, no coupling): C_s is the Chern number of the spin-up block, from
    z2pack, whichever order the file is written in."""
    model = bhz()
    up = lambda k: hamiltonian(model, k)[..., 0::2, 0::2]  # noqa: E731
    expected = -_z2pack_chern(z2pack, up, 1)
    assert expected != 0
    for order, m in (("interleaved", model), ("blocks", to_blocks(model))):
        res, out = _invariants(cli, tmp_path, m, 2, "--spin-order", order)
        assert res.returncode == 0, res.stderr
        assert json.loads(out.read_text())["spin_chern"] == expected, order


def test_a_wrong_spin_order_is_an_error_naming_the_right_one(cli, tmp_path):
    res, out = _invariants(
        cli, tmp_path, to_blocks(MODELS["bhz"][0]), 2, "--spin-order", "interleaved"
    )
    assert res.returncode == 1 and not out.exists()
    (line,) = res.stderr.strip().splitlines()
    assert "spin pairs in the 'blocks' order, not 'interleaved'" in line
    assert line.endswith("use --spin-order blocks")


def test_time_reversal_breaking_leaves_z2_undefined_and_the_spin_order_unchecked():
    km = MODELS["kane_mele"][0]
    zeeman = km.hoppings.copy()
    zeeman[np.flatnonzero((km.r_vectors == 0).all(axis=1))[0]] += 0.05 * np.kron(
        np.eye(2), np.diag([1, -1])
    )
    broken = TBModel(km.r_vectors, zeeman, source="kane-mele + zeeman")
    r = analyse(broken, 2)
    assert not r["time_reversal"] and r["z2"] is None and "Z2 is undefined" in r["z2_error"]
    assert r["spin_chern"] is None and "cannot be checked" in r["spin_chern_error"]
    named = analyse(broken, 2, spin_order="interleaved")  # the user vouches for the order
    assert named["spin_order"] == "interleaved" and not named["spin_order_checked"]
    assert named["spin_chern"] == analyse(km, 2)["spin_chern"]  # a small Zeeman term
    with pytest.raises(TopogenError, match="between 1 and 3"):
        analyse(km, 4)
    order, _, why = choose_spin_order(
        TBModel(km.r_vectors, km.hoppings[:, :3, :3], source="odd"), "auto"
    )
    assert order is None and "odd number of orbitals" in why


def test_gap_closing_leaves_every_invariant_undefined(cli, tmp_path):
    res, out = _invariants(cli, tmp_path, haldane(m=3 * np.sqrt(3) * 0.1), 1, "--plot",
                           tmp_path / "flow.png")  # fmt: skip
    assert res.returncode == 1 and "bands touch" in res.stderr
    assert not out.exists() and not (tmp_path / "flow.png").exists()  # nothing half-written
    r = analyse(haldane(m=3 * np.sqrt(3) * 0.1), 1)
    assert r["gap_direct"] < 1e-6
    assert r["chern"] is None and r["z2"] is None and r["spin_chern"] is None
    assert "bands touch" in r["chern_error"]


def test_wannier_flow_plot_and_centres_from_a_win_file(cli, tmp_path):
    model, nocc = MODELS["kane_mele"]
    cell = np.array([[2.46, 0.0, 0.0], [-1.23, 2.130422, 0.0], [0.0, 0.0, 20.0]])
    reduced = np.repeat([[1 / 3, 2 / 3, 0.5], [2 / 3, 1 / 3, 0.5]], 2, axis=0)  # spin pairs
    (tmp_path / "m.win").write_text(
        "num_wann = 4\nspinors = true\nbegin unit_cell_cart\nbohr\n"
        + "".join(" ".join(f"{x / 0.529177210903:.10f}" for x in row) + "\n" for row in cell)
        + "end unit_cell_cart\n"
    )
    xyz = "".join(f"X {x:.8f} {y:.8f} {z:.8f}\n" for x, y, z in reduced @ cell)
    (tmp_path / "m_centres.xyz").write_text(f"6\ncentres\n{xyz}C 0 0 0\nC 1 1 1\n")
    np.testing.assert_allclose(read_lattice(tmp_path / "m.win"), cell, atol=1e-8)
    got = read_centres(tmp_path / "m_centres.xyz", cell, 4)
    np.testing.assert_allclose(got, reduced, atol=1e-8)
    plot = tmp_path / "flow.png"
    res, out = _invariants(cli, tmp_path, model, nocc, "--win", tmp_path / "m.win",
                           "--centres", tmp_path / "m_centres.xyz", "--plot", plot)  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert json.loads(out.read_text())["z2"] == 1
    import matplotlib.image

    image = matplotlib.image.imread(plot)
    assert image.shape[0] > 300 and image.shape[1] > 600
    assert image[..., :3].std() > 0.05  # not a blank canvas
    res, _ = _invariants(cli, tmp_path, model, nocc, "--centres", tmp_path / "m_centres.xyz")
    assert res.returncode == 1 and "give the lattice (--lattice or --win)" in res.stderr
    (tmp_path / "bad.txt").write_text("1 0 0\n0 1 0\n")
    with pytest.raises(TopogenError, match="3 rows of 3 numbers"):
        read_lattice(tmp_path / "bad.txt")
    with pytest.raises(TopogenError, match=r"4 Wannier centres .* 6 orbitals"):
        read_centres(tmp_path / "m_centres.xyz", cell, 6)


@pytest.mark.parametrize(("name", "edge_states"), [("kane_mele", True), ("bhz_trivial", False)])
def test_edges_command_shows_in_gap_states_only_for_the_topological_model(
    cli, tmp_path, name, edge_states
):
    model, nocc = MODELS[name]
    hr = tmp_path / "model_hr.dat"
    write_hr(model, hr)
    res = cli("topology", "edges", hr, "--occupied", nocc, "--plot", tmp_path / "e.png",
              "--data", tmp_path / "e.npz", "--nk", "41", "--ne", "21", "--window", "-0.1",
              "0.1")  # fmt: skip
    assert res.returncode == 0, res.stderr
    d = np.load(tmp_path / "e.npz")
    assert d["surface_dos"].shape == (41, 21)
    assert d["vbm_eV"] < d["energies"][10] < d["cbm_eV"]  # the window sits in the gap
    mid_gap = d["surface_dos"][:, 10].max()
    bulk = d["bulk_dos"][:, 10].max()
    assert (mid_gap > 20 * bulk) == edge_states, (mid_gap, bulk)
