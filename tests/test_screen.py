"""The screening funnel: validity, uniqueness/novelty, CHGNet relaxation, phonons, hooks,
chunk files, and the diverse selection for DFT."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from pymatgen.core import Lattice, Structure

from topogen.calc import phonons as PH
from topogen.calc.relax import RelaxSettings, evaluate, evaluate_graphs, load_model, relax_batch
from topogen.data import prototypes as P
from topogen.io.tables import Record, read_records, records_to_frame, write_records
from topogen.screen import chunks as C
from topogen.screen import funnel as F
from topogen.screen.novelty import training_index
from topogen.screen.selection import element_power_spectra, kmeans, pca, select_diverse
from topogen.screen.validity import ValidityOptions, composition_problem, validity
from topogen.structure.slabs import (
    VACUUM,
    is_2d,
    layer_thickness,
    slab,
    vacuum_along_c,
    with_vacuum,
)

THREADS = 1


@pytest.fixture(scope="module")
def model():
    torch.set_num_threads(THREADS)
    return load_model()


def mos2(vacuum: float = VACUUM):
    s = P.mx2_2h("Mo", "S")
    a = s.lattice.a
    z = s.cart_coords[:, 2] - s.cart_coords[0, 2]
    return slab(
        [a, 0], [-a / 2, a * math.sqrt(3) / 2], ["Mo", "S", "S"], s.frac_coords[:, :2], z, vacuum
    )


def silicon():
    a = 5.47 / 2
    return Structure(
        Lattice([[0, a, a], [a, 0, a], [a, a, 0]]), ["Si", "Si"], [[0, 0, 0], [0.25] * 3]
    )


# --- slabs, validity, novelty (no CHGNet) ---------------------------------------------------


def test_slab_geometry():
    s = mos2()
    assert is_2d(s) and vacuum_along_c(s) == pytest.approx(VACUUM)
    assert layer_thickness(s) == pytest.approx(P.layer_thickness(s))
    assert not is_2d(silicon())
    # a tilted c and another vacuum: the same layer once normalised
    tilted = Structure(
        Lattice([s.lattice.matrix[0], s.lattice.matrix[1], [1.0, 0.5, 30.0]]),
        s.species,
        s.cart_coords,
        coords_are_cartesian=True,
    )
    a, b = with_vacuum(s, 20.0), with_vacuum(tilted, 20.0)
    assert a.lattice.c == pytest.approx(20.0 + layer_thickness(s))
    assert b.lattice.matrix[2, :2] == pytest.approx([0, 0])
    assert a.lattice.abc == pytest.approx(b.lattice.abc)
    assert np.sort(a.distance_matrix.ravel()) == pytest.approx(np.sort(b.distance_matrix.ravel()))


def test_validity_reasons():
    good = mos2()
    assert validity(good) == (True, "valid structure and composition")
    assert validity(silicon())[0]
    assert validity(P.honeycomb("C"))[0]  # one element: valid without SMACT
    overlap = P.honeycomb("B", "N")
    overlap.replace(1, "N", overlap[0].coords + np.array([0.1, 0, 0]), coords_are_cartesian=True)
    ok, why = validity(overlap)
    assert not ok and why.startswith("structure: overlapping atoms: B0 and N1 at 0.100 A")
    self_image = Structure(Lattice([[0.4, 0, 0], [0, 5, 0], [0, 0, 20]]), ["C"], [[0, 0, 0.5]])
    assert validity(self_image) == (
        False,
        "structure: overlapping atoms: C0 and its own periodic image at 0.400 A < 0.5 A",
    )
    ok, why = validity(Structure(Lattice.cubic(0.9), ["Si"], [[0, 0, 0]]))
    assert not ok and "squashed cell: volume per atom" in why
    nan = P.honeycomb("B", "N")
    nan = Structure(nan.lattice, nan.species, np.array([[np.nan, 0.1, 0.5], [0.6, 0.3, 0.5]]))
    assert validity(nan) == (False, "structure: non-finite coordinates (site 0)")
    skew = Structure(Lattice.from_parameters(3, 3, 20, 90, 90, 5), ["C"], [[0, 0, 0.5]])
    assert validity(skew) == (
        False,
        "structure: squashed cell: gamma = 5.0 deg outside [15, 165] deg",
    )
    ok, why = validity(P.mx2_2h("K", "F"))
    assert not ok and why == (
        "composition: KF2: no charge-neutral combination of oxidation states (SMACT)"
    )
    # the papers' older oxidation-state set rejects fluorostanene; the default accepts it
    assert composition_problem("SnF") is None
    assert "no charge-neutral" in composition_problem(
        "SnF", ValidityOptions(oxidation_states_set="smact14")
    )
    assert composition_problem("PtSn") is None  # all metals: an alloy
    assert composition_problem("Mo0.5S") is not None


def test_stability_criterion_and_score():
    recip = np.eye(3)
    q = np.array([[0, 0, 0], [0.03, 0, 0], [0.5, 0, 0]])
    w = np.array([1, 6, 3])
    fine = np.array([[0.0, 0.0, 5.0], [0.1, 1.0, 5.0], [2.0, 3.0, 6.0]])
    st = PH.stability(fine, q, w, recip)
    assert st.stable and st.score == 1.0 and st.min_frequency == 0.0
    soft_za = fine.copy()
    soft_za[1, 0] = -0.5  # near Gamma, within the 1 THz allowance
    assert PH.stability(soft_za, q, w, recip).stable
    optical = np.zeros(fine.shape, dtype=bool)
    optical[:, 1:] = True  # mode 0 marked optical: no allowance for it
    assert not PH.stability(soft_za, q, w, recip, acoustic=optical).stable
    assert not PH.stability(soft_za, q, w, recip, gamma_tol=0.3).stable
    bad = fine.copy()
    bad[2, 0] = -0.5  # at the zone boundary
    st = PH.stability(bad, q, w, recip)
    assert not st.stable and st.worst_q == (0.5, 0.0, 0.0)
    assert st.imaginary_fraction == pytest.approx(3 / (10 * 3))
    assert st.score == pytest.approx((1 - 0.1) * math.exp(-0.45))
    worse = bad.copy()
    worse[2] = -10.0
    assert PH.stability(worse, q, w, recip).score < 1e-4 < st.score < 1


def test_selection_picks_one_per_family_deterministically():
    fams = {
        "mos2": lambda k: P.rattle(mos2(), 0.05, k, "m"),
        "graphene": lambda k: P.rattle(P.honeycomb("C"), 0.05, k, "g"),
        "bn": lambda k: P.rattle(P.honeycomb("B", "N"), 0.05, k, "b"),
    }
    structures, family = [], []
    for name, make in fams.items():
        for k in range(4):
            structures.append(make(k))
            family.append(name)
    x, zs = element_power_spectra(structures)
    assert x.shape == (12, len(zs) * 105) and zs == [5, 6, 7, 16, 42]
    sel = select_diverse(structures, 3, seed=7)
    assert len(set(sel.indices)) == 3
    assert {family[i] for i in sel.indices} == set(fams)
    assert select_diverse(structures, 3, seed=7).indices == sel.indices
    assert select_diverse(structures, 20, seed=7).indices == list(range(12))
    comps, ratio = pca(x)
    labels, _, _ = kmeans(comps, 3, seed=1)
    assert len(set(labels)) == 3 and ratio.sum() <= 1 + 1e-9


# --- CHGNet ---------------------------------------------------------------------------------


def test_forces_only_and_topology_reuse_match_chgnet(model):
    from chgnet.model.dynamics import CHGNetCalculator
    from pymatgen.io.ase import AseAtomsAdaptor

    s = relax_batch([mos2()], RelaxSettings(steps=100), model=model)[0].structure
    sc = s * (4, 4, 1)
    disps = [(0, np.array([0.01, 0, 0])), (1, np.array([0, 0, -0.01]))]
    reused, fresh = PH.displaced_graphs(model, sc, disps)
    rebuilt, n = PH.displaced_graphs(model, sc, disps, reuse_topology=False)
    assert fresh == 0 and n == 2
    a = evaluate_graphs(model, reused, stress=False)
    b = evaluate_graphs(model, rebuilt, stress=False)
    for (ea, fa, sa), (eb, fb, _) in zip(a, b, strict=True):
        assert sa is None and ea == pytest.approx(eb, abs=1e-6)
        assert np.abs(fa - fb).max() < 1e-5
    moved = sc.copy()
    moved.translate_sites([0], [0.01, 0, 0], frac_coords=False, to_unit_cell=False)
    calc = CHGNetCalculator(model=model, use_device="cpu")
    atoms = AseAtomsAdaptor.get_atoms(moved)
    atoms.calc = calc
    assert np.abs(a[0][1] - atoms.get_forces()).max() < 1e-4
    _, f, stress = evaluate(model, [moved])[0]
    assert stress is not None and np.abs(f - a[0][1]).max() < 1e-5
    # a neighbour right at CHGNet's 6 A cutoff forces a fresh graph for that atom
    pair = Structure(Lattice.cubic(20.0), ["C", "C"], [[0, 0, 0], [0.3, 0, 0]])
    assert PH._borderline_atoms(pair, (6.0, 3.0), 0.011) == {0, 1}
    assert PH._borderline_atoms(pair, (6.5, 3.0), 0.011) == set()
    pair = Structure(Lattice.cubic(20.0), ["C", "C"], [[0, 0, 0], [6.005 / 20, 0, 0]])
    near = PH._borderline_pairs(pair, (6.0, 3.0), 0.011)
    for vec, crosses in (([-0.01, 0, 0], True), ([0.01, 0, 0], False), ([0, 0.01, 0], False)):
        assert PH._topology_changes(pair, near, 1, np.array(vec), (6.0, 3.0)) is crosses
        assert PH._topology_changes(pair, near, 0, -np.array(vec), (6.0, 3.0)) is crosses


def test_phonons_mos2_stable_squashed_unstable(model):
    relaxed = relax_batch([mos2()], RelaxSettings(fmax=0.01, steps=300), model=model)[0].structure
    assert PH.default_supercell(relaxed) == (6, 6, 1)
    assert PH.default_supercell(silicon()) == (3, 3, 3)
    res = PH.phonons(relaxed, model=model)
    assert res.error is None and res.supercell == (6, 6, 1)
    assert res.stable and res.score == 1.0
    assert res.min_frequency > -0.1 and res.min_frequency_off_gamma > 1.0
    assert not res.prescreened and res.rebuilt_graphs == 0
    assert res.n_evaluations <= res.n_displacements + 1
    # with the 3x3x1 pre-screen on, nothing clear there: the 6x6x1 runs too, same numbers
    pre = PH.phonons(relaxed, model=model, prescreen=3)
    assert not pre.prescreened and pre.supercell == (6, 6, 1) and pre.stable
    assert pre.min_frequency == pytest.approx(res.min_frequency, abs=1e-9)
    assert pre.n_evaluations > res.n_evaluations  # both runs' force calls
    f, d = res.dos_frequencies, res.dos
    assert f.shape == d.shape and len(f) > 50 and np.isfinite(d).all()
    assert np.trapezoid(d, f) == pytest.approx(9.0, rel=0.02)  # 3 x 3 atoms
    squashed = relaxed.copy()
    z = squashed.cart_coords[:, 2]
    for k in (1, 2):  # both S planes 30% closer to Mo
        squashed.translate_sites([k], [0, 0, -0.3 * (z[k] - z[0])], frac_coords=False)
    full = PH.phonons(squashed, model=model)
    assert not full.stable and full.min_frequency < -8.0 and full.score < 1e-3
    assert full.reason().startswith("imaginary modes: min -")
    assert not full.prescreened and full.supercell == (6, 6, 1)
    # clearly unstable on the 3x3x1 pre-screen: the 6x6x1 run is skipped, same verdict
    bad = PH.phonons(squashed, model=model, prescreen=3)
    assert bad.prescreened and bad.supercell == (3, 3, 1) and not bad.stable
    assert bad.reason().endswith("(3x3x1 pre-screen)")
    assert bad.n_evaluations == full.n_evaluations  # same displacements, 4x fewer atoms
    # the 3x3 q points are on the 18x18 mesh: the full minimum is at most the pre-screen's
    assert full.min_frequency <= bad.min_frequency + 0.05
    # the DOS is interpolated on the full mesh from the small supercell's force constants
    assert np.trapezoid(bad.dos, bad.dos_frequencies) == pytest.approx(9.0, rel=0.02)


@pytest.mark.timeout(300)
def test_phonon_workers_after_the_parent_ran_phonopy(model):
    """Worker processes forked after this process ran phonopy get the same phonons (phonopy
    4's default Rust backend would leave them waiting on a thread pool lost in the fork)."""
    from topogen.data import prototypes as P

    flat = P.honeycomb("Si", buckling=0.0)
    options = dict(min_repeat_2d=4, prescreen=0, dos=False, two_d=True)
    here = PH.phonons(flat, model=model, **options)
    there = PH.phonons_batch([flat, flat], model=model, workers=2, threads=2, **options)
    assert [r.error for r in there] == [None, None]
    assert [r.min_frequency for r in there] == pytest.approx([here.min_frequency] * 2, abs=1e-6)
    assert here.min_frequency < -1.0  # flat silicene: imaginary at K


class _Flaky(torch.nn.Module):
    """CHGNet's graph converter, raising for chosen formulas (to test the error paths)."""

    def __init__(self, inner, relax_formula, phonon_formula):
        super().__init__()
        self.inner = inner
        self.relax_formula, self.phonon_formula = relax_formula, phonon_formula
        self.atom_graph_cutoff = inner.atom_graph_cutoff
        self.bond_graph_cutoff = inner.bond_graph_cutoff

    def forward(self, s):
        formula = s.composition.reduced_formula
        if formula == self.relax_formula:
            raise RuntimeError("boom")
        if formula == self.phonon_formula and len(s) > 20:
            raise RuntimeError("supercell boom")
        return self.inner(s)


@pytest.fixture(scope="module")
def funnel_run(model, tmp_path_factory):
    """~20 candidates, good and broken, through the whole funnel once."""
    r = lambda s, k: P.rattle(s, 0.02, k, "t")  # noqa: E731
    squashed = mos2()
    squashed = Structure(
        Lattice(squashed.lattice.matrix * [[0.3], [0.3], [1.0]]),
        squashed.species,
        squashed.frac_coords,
    )
    overlap = P.honeycomb("B", "N")
    overlap.replace(1, "N", overlap[0].coords + np.array([0.1, 0, 0]), coords_are_cartesian=True)
    nan = Structure(
        overlap.lattice, overlap.species, np.array([[np.nan, 0.1, 0.5], [0.6, 0.3, 0.5]])
    )
    sparse = Structure(Lattice.cubic(20.0), ["Mo"], [[0, 0, 0.5]])
    zrs2 = relax_batch([P.mx2_1t("Zr", "S")], RelaxSettings(fmax=0.02), model=model)[0].structure
    stretched = Structure(  # 15% larger in-plane: no match before relaxing, a match after
        Lattice(zrs2.lattice.matrix * [[1.15], [1.15], [1.0]]), zrs2.species, zrs2.frac_coords
    )
    ws2 = P.mx2_2h("W", "S")
    m = ws2.lattice.matrix
    tilted = Structure(  # the same layer, c tilted by 25 and 20 deg
        Lattice([m[0], m[1], m[2] + 0.45 * m[2, 2] * m[0] / 3.2 + 0.35 * m[2, 2] * m[1] / 3.2]),
        ws2.species,
        ws2.cart_coords,
        coords_are_cartesian=True,
    )
    cands = [
        Record("MoS2", "gen", r(mos2(), 0)),
        Record("hBN", "gen", r(P.honeycomb("B", "N"), 1)),
        Record("graphene", "gen", r(P.honeycomb("C"), 2)),
        Record("WSe2", "gen", r(P.mx2_2h("W", "Se"), 3)),
        Record("Si-bulk", "gen", silicon()),
        Record("flat-silicene", "gen", P.honeycomb("Si", buckling=0.0)),
        Record("MoS2-twin", "gen", r(mos2(vacuum=25.0), 4)),
        Record("1T-MoS2-known", "gen", r(P.mx2_1t("Mo", "S"), 5)),
        Record("overlap", "gen", overlap),
        Record("nan", "gen", nan),
        Record("squashed", "gen", squashed),
        Record("sparse", "gen", sparse),
        Record("KF2", "gen", P.mx2_2h("K", "F")),
        Record("undecodable", "gen", None),
        Record("SnS2-crash", "gen", P.mx2_1t("Sn", "S")),
        Record("MoSe2-phonon-crash", "gen", r(P.mx2_2h("Mo", "Se"), 6)),
        Record("WS2", "gen", r(P.mx2_2h("W", "S"), 7)),
        Record("graphene-twin", "gen", r(P.honeycomb("C"), 8)),
        Record("MoSe2-known", "gen", r(P.mx2_1t("Mo", "Se"), 9)),
        Record("WS2-tilted", "gen", tilted),
        Record("1T-WS2-supercell", "gen", r(P.mx2_1t("W", "S") * (2, 1, 1), 10)),
        Record("ZrS2-stretched", "gen", stretched),
    ]
    training = training_index(
        [
            ("train-1T-MoS2", P.mx2_1t("Mo", "S")),
            ("train-1T-MoSe2", P.mx2_1t("Mo", "Se")),
            ("train-1T-WS2", P.mx2_1t("W", "S")),
            ("train-1T-ZrS2", zrs2),
        ]
    )
    gaps = {"MoS2": 1.7, "C": 0.0, "WSe2": 1.5, "Si": 0.6, "WS2": 1.9}
    topo = {"MoS2": 0.1, "WSe2": 0.9, "Si": float("nan"), "WS2": 0.7}

    def band_gap(structures):
        out = []
        for s in structures:
            f = s.composition.reduced_formula
            if f == "BN":
                raise ValueError("no gap for BN")
            out.append(gaps[f])
        return out

    def topology(structures):
        return [topo[s.composition.reduced_formula] for s in structures]

    inner = model.graph_converter
    model.graph_converter = _Flaky(inner, "SnS2", "MoSe2")
    try:
        res = F.screen(
            cands,
            training=training,
            model=model,
            options=F.FunnelOptions(fmax=0.05, steps=200),
            band_gap=band_gap,
            topology=topology,
            threads=THREADS,
            chunk="007",
        )
    finally:
        model.graph_converter = inner
    out = tmp_path_factory.mktemp("chunk")
    paths = (out / "s.parquet", out / "f.parquet", out / "d.npz")
    C.write_chunk(res, *paths)
    return res, paths


NOT_VALID = "not reached (fail at validity)"


def _verdicts(res):
    return {
        r["id"]: {s: (r[s], r[f"{s}_reason"]) for s in F.STEPS} | {"passed": r["passed"]}
        for r in res.rows
    }


def test_funnel_rejections_before_chgnet(funnel_run):
    v = _verdicts(funnel_run[0])
    expected_validity = {
        "overlap": "structure: overlapping atoms: B0 and N1 at 0.100 A < 0.5 A",
        "nan": "structure: non-finite coordinates (site 0)",
        "undecodable": "structure: does not decode",
        "KF2": "composition: KF2: no charge-neutral combination of oxidation states (SMACT)",
    }
    for id_, reason in expected_validity.items():
        assert v[id_]["validity"] == ("fail", reason), id_
        assert all(v[id_][s] == ("skipped", NOT_VALID) for s in F.STEPS[1:]), id_
        assert v[id_]["passed"] is False
    assert v["squashed"]["validity"][0] == "fail"
    assert v["squashed"]["validity"][1].startswith("structure: squashed cell: area per atom 0.")
    assert v["sparse"]["validity"] == (
        "fail",
        "structure: sparse cell: area per atom 400.00 A^2 outside [1, 40] A^2",
    )
    assert v["MoS2-twin"]["uniqueness"] == ("fail", "duplicate of MoS2 (StructureMatcher)")
    assert v["graphene-twin"]["uniqueness"] == ("fail", "duplicate of graphene (StructureMatcher)")
    for id_, match in (("1T-MoS2-known", "train-1T-MoS2"), ("MoSe2-known", "train-1T-MoSe2")):
        assert v[id_]["uniqueness"] == ("pass", "unique")
        assert v[id_]["novelty"] == (
            "fail",
            f"matches training structure {match} (StructureMatcher)",
        )
        assert v[id_]["relax"] == ("skipped", "not reached (fail at novelty)")
    assert v["MoS2-twin"]["novelty"] == ("skipped", "not reached (fail at uniqueness)")
    assert v["WS2-tilted"]["uniqueness"] == ("fail", "duplicate of WS2 (StructureMatcher)")
    assert v["1T-WS2-supercell"]["novelty"] == (
        "fail",
        "matches training structure train-1T-WS2 (StructureMatcher)",
    )


def test_funnel_chgnet_steps_and_hooks(funnel_run):
    res = funnel_run[0]
    v = _verdicts(res)
    rows = {r["id"]: r for r in res.rows}
    good = ("MoS2", "hBN", "graphene", "WSe2", "WS2", "Si-bulk")
    for id_ in (*good, "flat-silicene", "MoSe2-phonon-crash"):
        assert v[id_]["validity"] == ("pass", "valid structure and composition"), id_
        assert v[id_]["uniqueness"] == ("pass", "unique") and v[id_]["novelty"][0] == "pass"
        verdict, reason = v[id_]["relax"]
        assert verdict == "pass" and reason.startswith("converged in "), (id_, reason)
        assert rows[id_]["relax_converged"] and rows[id_]["relax_fmax"] < 0.05
        assert rows[id_]["energy_per_atom"] < 0
    for id_ in good:
        verdict, reason = v[id_]["phonons"]
        assert verdict == "pass" and reason.startswith("stable (min "), (id_, reason)
        assert rows[id_]["stability_score"] == 1.0
    assert rows["Si-bulk"]["dim"] == 3 and rows["Si-bulk"]["phonon_supercell"] == "3x3x3"
    assert rows["MoS2"]["dim"] == 2 and rows["MoS2"]["phonon_supercell"] == "6x6x1"
    assert rows["graphene"]["phonon_supercell"] == "8x8x1"
    verdict, reason = v["flat-silicene"]["phonons"]
    assert verdict == "fail" and reason.startswith("imaginary modes: min -")
    assert (
        rows["flat-silicene"]["min_frequency"] < -3
        and rows["flat-silicene"]["stability_score"] < 0.1
    )
    assert v["SnS2-crash"]["relax"] == ("failed", "CHGNet failed: RuntimeError: boom")
    assert v["SnS2-crash"]["phonons"] == ("skipped", "not reached (failed at relax)")
    assert v["MoSe2-phonon-crash"]["phonons"] == (
        "failed",
        "phonons failed: RuntimeError: supercell boom",
    )
    # hooks: band gap >= 0.1 eV, then topology score >= 0.5
    assert v["MoS2"]["band_gap"] == ("pass", "1.7 eV >= 0.1 eV")
    assert v["graphene"]["band_gap"] == ("fail", "0 eV < 0.1 eV")
    assert v["hBN"]["band_gap"] == ("failed", "band_gap model failed: ValueError: no gap for BN")
    assert v["flat-silicene"]["band_gap"] == ("skipped", "not reached (fail at phonons)")
    assert v["MoS2"]["topology"] == ("fail", "0.1 < 0.5")
    assert v["WSe2"]["topology"] == ("pass", "0.9 >= 0.5")
    assert v["Si-bulk"]["topology"] == ("failed", "topology model gave no finite value (nan)")
    assert v["graphene"]["topology"] == ("skipped", "not reached (fail at band_gap)")
    # a noisy copy of a training crystal that relaxes back into it is not novel
    assert v["ZrS2-stretched"]["novelty"] == ("pass", "novel")
    assert v["ZrS2-stretched"]["relax"][0] == "pass"
    assert v["ZrS2-stretched"]["relaxed_uniqueness"] == ("pass", "unique")
    assert v["ZrS2-stretched"]["relaxed_novelty"] == (
        "fail",
        "matches training structure train-1T-ZrS2 after relaxation (StructureMatcher)",
    )
    assert rows["ZrS2-stretched"]["relaxed_training_match"] == "train-1T-ZrS2"
    assert v["ZrS2-stretched"]["phonons"] == ("skipped", "not reached (fail at relaxed_novelty)")
    for id_ in good:
        assert v[id_]["relaxed_novelty"] == ("pass", "novel"), id_
    assert [r["id"] for r in res.rows if r["passed"]] == ["WSe2", "WS2"]
    assert {r["chunk"] for r in res.rows} == {"007"}


def test_funnel_files_and_merge(funnel_run, tmp_path):
    _, (structures, funnel, dos) = funnel_run
    recs = read_records(structures)
    relaxed = {"MoS2", "hBN", "graphene", "WSe2", "WS2", "Si-bulk", "flat-silicene"}
    assert {r.id for r in recs} == relaxed | {"MoSe2-phonon-crash", "ZrS2-stretched"}
    ws2 = next(r for r in recs if r.id == "WS2")
    assert ws2.properties["screen_passed"] and ws2.properties["screen_topology"] == "pass"
    assert ws2.properties["stability_score"] == 1.0 and ws2.properties["screen_dim"] == 2
    assert ws2.structure.lattice.c == pytest.approx(P.mx2_2h("W", "S").lattice.c, abs=1e-6)
    df = C.read_funnel(funnel)
    assert list(df.columns) == list(F.FUNNEL_COLUMNS) and len(df) == 22
    d = C.read_dos(dos)  # the phonon-stable ones' (the merge keeps no other)
    stable = set(df.loc[df["phonons"] == "pass", "id"])
    assert set(d) == stable and {"WSe2", "WS2"} <= stable and stable < relaxed
    for f, g in d.values():
        assert f.shape == g.shape and len(f) > 10 and np.isfinite(g).all()
    other = df.iloc[:2].copy()
    other["id"] = ["x1", "x2"]
    other_path = tmp_path / "f2.parquet"
    C.write_funnel(other, other_path)
    merged = C.merge_chunks([funnel, other_path])
    assert list(merged["id"]) == [*df["id"], "x1", "x2"]
    counts = C.summary(merged)
    assert counts["validity"]["fail"] == 6 and counts["topology"]["pass"] == 2
    with pytest.raises(ValueError, match="more than one chunk"):
        C.merge_chunks([funnel, funnel])
    survivors = C.merge_structures([structures])
    assert [r.id for r in survivors] == ["WSe2", "WS2"]
    assert set(C.merge_dos([dos], keep={"WS2"})) == {"WS2"}


def test_relaxation_that_does_not_converge_fails(model):
    res = F.screen(
        [("MoS2", P.rattle(mos2(), 0.1, 0, "x"))],
        model=model,
        options=F.FunnelOptions(steps=2, phonons=False),
        threads=THREADS,
    )
    row = res.rows[0]
    assert row["relax"] == "fail" and row["relax_reason"].startswith("not converged in 2 steps")
    assert row["phonons"] == "skipped" and row["phonons_reason"] == "not reached (fail at relax)"
    assert row["novelty"] == "skipped" and row["novelty_reason"] == "no training set"
    assert row["band_gap_reason"] == "not reached (fail at relax)"


def test_read_candidates_keeps_undecodable_rows(tmp_path):
    df = records_to_frame([Record("ok", "gen", mos2()), Record("bad", "gen", mos2())])
    df.loc[1, "structure"] = '{"not": "a structure"}'
    path = tmp_path / "c.parquet"
    from topogen.io.tables import write_table

    write_table(df, path)
    recs = C.read_candidates(path)
    assert [r.id for r in recs] == ["ok", "bad"] and recs[1].structure is None


def test_chunk_files_end_to_end(model, tmp_path):
    """split_file -> run_chunk per chunk -> merge_files -> select_file, as the rules do."""
    from topogen.io.tables import write_table

    cands = [
        Record("g1", "gen", P.rattle(P.honeycomb("C"), 0.02, 0, "g1")),
        Record("g1-twin", "gen", P.rattle(P.honeycomb("C"), 0.02, 1, "g1")),
        Record("bn", "gen", P.rattle(P.honeycomb("B", "N"), 0.02, 0, "bn")),
        Record("known", "gen", P.rattle(mos2(), 0.02, 0, "m")),
        Record("kf2", "gen", P.mx2_2h("K", "F")),
    ]
    table = tmp_path / "candidates.parquet"
    write_table(records_to_frame(cands), table)
    training = tmp_path / "training.parquet"
    write_records([Record("train-MoS2", "x", mos2(vacuum=22.0))], training)
    chunks = [tmp_path / f"{i:03d}" / "candidates.parquet" for i in range(3)]
    sizes = C.split_file(table, chunks)
    assert sorted(sizes) == [1, 2, 2]  # graphene and its twin share a chunk
    outs = []
    for i, path in enumerate(chunks):
        d = path.parent
        o = (d / "screened.parquet", d / "funnel.parquet", d / "phonon_dos.npz")
        C.run_chunk(
            path,
            out=o[0],
            funnel=o[1],
            dos=o[2],
            training=training,
            chunk=f"{i:03d}",
            options=F.FunnelOptions(phonons=False, steps=100),
            model=model,
            threads=THREADS,
        )
        outs.append(o)
    merged = tmp_path / "funnel.parquet"
    counts = C.merge_files(
        [o[1] for o in outs],
        [o[0] for o in outs],
        [o[2] for o in outs],
        funnel_out=merged,
        survivors_out=tmp_path / "survivors.parquet",
        dos_out=tmp_path / "dos.npz",
    )
    df = C.read_funnel(merged).set_index("id")
    assert sorted(df.index) == sorted(c.id for c in cands)
    assert df.loc["g1-twin", "uniqueness_reason"] == "duplicate of g1 (StructureMatcher)"
    assert df.loc["known", "novelty_reason"] == (
        "matches training structure train-MoS2 (StructureMatcher)"
    )
    assert df.loc["kf2", "validity"] == "fail"
    assert df.loc["g1", "phonons_reason"] == "phonons switched off"
    assert counts["relax"]["pass"] == 2 and counts["uniqueness"]["fail"] == 1
    survivors = read_records(tmp_path / "survivors.parquet")
    assert sorted(r.id for r in survivors) == ["bn", "g1"]
    assert C.read_dos(tmp_path / "dos.npz") == {}
    from topogen.screen.selection import select_file

    picked = select_file(tmp_path / "survivors.parquet", tmp_path / "selected.parquet", 1, seed=3)
    assert len(picked) == 1 and picked[0].properties["dft_cluster_size"] == 2
    assert [r.id for r in read_records(tmp_path / "selected.parquet")] == [picked[0].id]


def test_funnel_counts_per_step_and_the_report_command(cli, tmp_path):
    """Candidates left after each step: a fail or failed takes one out, a skipped step does
    not; the command writes the counts and the plot for the report."""
    from topogen.report.funnels import funnel_counts
    from topogen.screen.funnel import STEPS

    a = pd.DataFrame(
        {
            "id": ["a1", "a2", "a3", "a4"],
            "validity": ["pass", "pass", "pass", "fail"],
            "relax": ["pass", "failed", "pass", "skipped"],
            "phonons": ["fail", "skipped", "pass", "skipped"],
            "topology": ["skipped", "skipped", "skipped", "skipped"],
        }
    )
    b = pd.DataFrame({"id": ["b1"], "validity": ["pass"], "relax": ["pass"]})
    counts = funnel_counts({"a": a, "b": b}, STEPS)
    assert list(counts.index) == ["candidates", "validity", "relax", "phonons", "topology"]
    assert counts["a"].tolist() == [4, 3, 2, 1, 1] and counts["b"].tolist() == [1, 1, 1, 1, 1]
    paths = []
    for name, df in (("gan", a), ("logan", b)):
        (tmp_path / name).mkdir()
        df.to_parquet(tmp_path / name / "funnel.parquet")
        paths.append(tmp_path / name / "funnel.parquet")
    res = cli("report", "funnels", *paths, "--table", tmp_path / "f.csv", "--plot",
              tmp_path / "f.png")  # fmt: skip
    assert res.returncode == 0, res.stderr
    written = pd.read_csv(tmp_path / "f.csv").set_index("after")
    assert written["gan"].tolist() == [4, 3, 2, 1, 1] and list(written.columns) == ["gan", "logan"]
    assert "{'gan': 1, 'logan': 1} left after every step" in res.stderr


def test_inspect_relaxes_from_the_generated_structure_as_the_funnel_does(model, cli, tmp_path):
    """`topogen screen inspect` (a candidate's CHGNet figure): it starts from the generator's
    row of the candidate, relaxes with the funnel's settings to the funnel's energy, and
    gives the funnel's phonon verdict with a dispersion on the hexagonal path."""
    from topogen.dft.candidates import write_candidate

    generated = P.rattle(mos2(), 0.05, 0, "x")
    write_records([Record("MoS2-7", "gan", generated)], tmp_path / "gan.parquet")
    funnel = F.screen([("MoS2-7", generated)], model=model, threads=THREADS)
    row = funnel.rows[0]
    assert row["phonons"] == "pass", row
    relaxed = funnel.records[0].structure  # what select_dft hands to DFT
    write_candidate(Record("MoS2-7", "gan", relaxed), tmp_path / "cand.json")
    res = cli("screen", "inspect", tmp_path / "cand.json", "--generated", tmp_path / "gan.parquet",
              "--out", tmp_path / "chgnet.json", "--plot", tmp_path / "chgnet.png",
              "--threads", THREADS)  # fmt: skip
    assert res.returncode == 0, res.stderr
    data = json.loads((tmp_path / "chgnet.json").read_text())
    assert data["start"] == f"{tmp_path / 'gan.parquet'} (row MoS2-7)"
    relax = data["relax"]
    assert relax["converged"] and relax["steps"] == row["relax_steps"] > 0
    assert len(relax["energy_per_step"]) == relax["steps"] + 1
    assert relax["energy_per_step"][-1] == pytest.approx(row["energy_per_atom"], abs=1e-4)
    assert relax["energy_per_step"][0] > relax["energy_per_step"][-1]
    assert relax["fmax_per_step"][-1] < relax["fmax_limit"] < relax["fmax_per_step"][0]
    ph = data["phonons"]
    assert ph["stable"] and ph["labels"] == ["G", "M", "K", "G"]
    freqs = np.array(ph["frequencies"])
    assert freqs.shape == (len(ph["distance"]), 9)  # 3 atoms
    np.testing.assert_allclose(freqs[0, :3], 0.0, atol=0.5)  # acoustic modes at Gamma
    assert freqs.max() > 5.0 and len(ph["dos"]) == len(ph["dos_frequencies"]) > 10
    assert "screen inspect MoS2-7: relaxing from" in res.stderr


def _bench(name: str, args: list[str], out: Path) -> dict:
    import subprocess
    import sys

    script = Path(__file__).parents[1] / "bench" / name
    cmd = [sys.executable, str(script), *args, "--json", str(out)]
    subprocess.run(cmd, check=True, timeout=900)
    return json.loads(out.read_text())


@pytest.mark.slow
def test_screening_benchmarks_smoke(tmp_path):
    """bench/screening.py (funnel on two worker processes against the one-at-a-time
    baseline) and bench/phonon_prescreen.py end to end on a few library monolayers."""
    out = _bench(
        "screening.py", ["--n", "3", "--threads", "2", "--workers", "2"], tmp_path / "s.json"
    )
    assert out["n"] == 3 and out["workers"] == 2 and out["prescreen"] == 0
    assert out["verdicts_agree"], out["disagreements"]
    assert out["max_energy_diff_mev_per_atom"] < 1.0
    assert out["funnel_phonon_evaluations"] > 0 and out["funnel_prescreened"] == 0
    pre = _bench("phonon_prescreen.py", ["--n", "4"], tmp_path / "p.json")
    assert pre["n"] >= 3 and pre["prescreen"] == 3 and pre["false_unstable"] == 0
    for row in pre["structures"].values():
        assert math.isfinite(row["full_min_thz"]) and math.isfinite(row["prescreen_min_thz"])
        assert row["max_diff_thz"] >= abs(row["lowest_mode_lowering_thz"]) - 1e-9
