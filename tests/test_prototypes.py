"""The offline 2D library: prototypes built from scratch, relaxed with CHGNet, labelled."""

from __future__ import annotations

import csv
import math
from functools import partial

import numpy as np
import pytest

from topogen.calc.relax import SLAB_MASK, RelaxSettings, evaluate, load_model, relax_batch
from topogen.data import layer_checks as LC
from topogen.data import prototypes as P
from topogen.io.labels import LABELS_FILE, read_labels
from topogen.structure.slabs import layer_thickness

THREADS = 2
FEW = (
    "2H-MX2-MoS2",
    "1T'-MX2-WTe2",
    "honeycomb-X2-Bi",
    "honeycomb-AB-BN",
    "MXene-M2X-Ti2C",
    "decorated-honeycomb-AX-GeI",
)


@pytest.fixture(scope="module")
def model():
    return load_model()


@pytest.fixture(scope="module")
def by_id():
    return {c.id: c for c in P.candidates()}


@pytest.fixture(scope="module")
def few(model, by_id):
    cands = [by_id[i] for i in FEW]
    records, rejected = P.build_library(
        candidates_in=cands, seed=0, threads=THREADS, settings=RelaxSettings(steps=150), model=model
    )
    return cands, records, rejected


def _min_distance(structure) -> float:
    d = np.array(structure.distance_matrix)
    np.fill_diagonal(d, np.inf)
    return float(d.min())


# --- candidates (no CHGNet) ---------------------------------------------------------------


def test_candidates_are_2d_slabs_with_vacuum():
    cands = P.candidates()
    assert len(cands) >= 250
    assert len({c.id for c in cands}) == len(cands)
    assert len({c.prototype for c in cands}) >= 10
    for c in cands:
        m = c.structure.lattice.matrix
        assert np.allclose(m[2, :2], 0) and np.allclose(m[:2, 2], 0), c.id  # c is the normal
        assert c.structure.lattice.c - layer_thickness(c.structure) >= 15.0, c.id
        assert P.structure_problem(c.structure, 1.0) is None, c.id
        assert LC.n_fragments(c.structure) == 1, c.id
        props = c.describe()
        assert props["dim"] == 2 and props["prototype"] == c.prototype
        assert props["substitution"].startswith(next(iter(c.substitution)) + "=")


def test_select_spreads_over_prototypes_and_is_seeded():
    cands = P.candidates()
    a, b = P.select(cands, 11, seed=3), P.select(cands, 11, seed=3)
    assert [c.id for c in a] == [c.id for c in b]
    assert len({c.prototype for c in a}) == 11
    assert [c.id for c in P.select(cands, 11, seed=4)] != [c.id for c in a]
    assert len(P.select(cands, None, seed=0)) == len(cands)


def test_relaxed_problem_catches_broken_layers(by_id):
    ideal = by_id["honeycomb-AB-BN"].structure
    assert LC.relaxed_problem(ideal, ideal, -8.0) is None
    assert "non-finite" in LC.relaxed_problem(ideal, ideal, float("nan"))
    far = ideal.copy()
    far.translate_sites([1], [0, 0, 8.0], frac_coords=False)  # N leaves into the vacuum
    assert "thickness grew" in LC.relaxed_problem(ideal, far, -8.0)
    gei = by_id["decorated-honeycomb-AX-GeI"].structure
    loose = gei.copy()
    top = int(np.argmax(loose.cart_coords[:, 2]))
    loose.translate_sites([top], [0, 0, 2.5], frac_coords=False)  # one I lets go
    assert "pieces" in LC.relaxed_problem(gei, loose, -3.0)
    squashed = ideal.copy()
    squashed.replace(1, "N", squashed[0].coords + np.array([0.3, 0, 0]), coords_are_cartesian=True)
    assert "overlapping" in LC.relaxed_problem(ideal, squashed, -8.0)
    distorted = ideal.copy()
    distorted.translate_sites([0], [0.3, 0.0, 0.0], frac_coords=False)
    assert "left its prototype" in LC.relaxed_problem(ideal, distorted, -8.0)


def test_duplicates_are_dropped_by_structure(by_id):
    a = by_id["2H-MX2-MoS2"]
    twin = P.Candidate("MoS2-again", a.prototype, a.substitution, a.structure.copy())
    other = by_id["1T-MX2-MoS2"]  # same formula, different structure: kept
    records, rejected = P.build_library(candidates_in=[a, twin, other, a], relax=False)
    assert [r.id for r in records] == [a.id, other.id]
    assert [(r.id, r.reason) for r in rejected] == [
        (a.id, f"starting cell: duplicate id {a.id!r}"),
        ("MoS2-again", f"duplicate of {a.id} (StructureMatcher)"),
    ]


def test_labels_table_is_sound_and_matches_prototypes():
    with open(LABELS_FILE, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert rows and set(rows[0]) == {"formula", "prototype", "label", "invariant", "reference"}
    keys = {(c.structure.composition.reduced_formula, c.prototype) for c in P.candidates()}
    from pymatgen.core import Composition

    for row in rows:
        assert row["label"] in ("0", "1") and row["reference"].strip(), row
        assert (Composition(row["formula"]).reduced_formula, row["prototype"]) in keys, row
    labels = read_labels()
    assert labels[("WTe2", "1T'-MX2")] == 1 and labels[("MoS2", "2H-MX2")] == 0


def test_labels_for_attaches_known_labels_only(by_id):
    ids = ["1T'-MX2-MoS2", "2H-MX2-MoS2", "1T-MX2-MoS2", "honeycomb-X2-Bi"]
    records, _ = P.build_library(candidates_in=[by_id[i] for i in ids], relax=False)
    got = {r.id: r.properties["topo2d"] for r in P.labels_for(records)}
    assert got == {ids[0]: 1, ids[1]: 0, ids[2]: None, ids[3]: 1}


# --- CHGNet ---------------------------------------------------------------------------------


def test_batched_evaluation_matches_chgnet(model, by_id):
    structures = [P.rattle(by_id[i].structure, 0.05, 0, i) for i in FEW[:3]]
    ours = evaluate(model, structures)
    for s, (e, f, stress) in zip(structures, ours, strict=True):
        ref = model.predict_structure(s, task="efs")
        assert e == pytest.approx(float(ref["e"]), abs=1e-5)
        assert np.abs(f - ref["f"]).max() < 1e-4
        assert np.abs(stress * 160.21766208 - ref["s"]).max() < 1e-3  # GPa


def test_batched_relaxation_matches_ase_fire(model, by_id):
    from ase.filters import UnitCellFilter
    from chgnet.model import StructOptimizer

    start = P.rattle(by_id["2H-MX2-MoS2"].structure, 0.05, 0, "x")
    ours = relax_batch([start], RelaxSettings(fmax=0.05, steps=200), model=model)[0]
    ref = StructOptimizer(model=model, optimizer_class="FIRE").relax(
        start,
        fmax=0.05,
        steps=200,
        ase_filter=partial(UnitCellFilter, mask=list(SLAB_MASK)),
        verbose=False,
    )
    assert ours.converged
    assert ours.energy_per_atom == pytest.approx(
        ref["trajectory"].energies[-1] / len(start), abs=2e-3
    )
    assert ours.structure.lattice.a == pytest.approx(ref["final_structure"].lattice.a, abs=0.02)
    assert ours.structure.lattice.c == pytest.approx(start.lattice.c, abs=1e-6)


def test_few_relaxed_structures_stay_2d(few):
    cands, records, rejected = few
    assert {r.id for r in records} | {r.id for r in rejected} == {c.id for c in cands}
    assert [r.id for r in records] == list(FEW), [(r.id, r.reason) for r in rejected]
    start = {c.id: c.structure for c in cands}
    proto = {c.id: c.prototype for c in cands}
    for r in records:
        s = r.structure
        assert s.lattice.c == pytest.approx(start[r.id].lattice.c, abs=1e-6)  # vacuum kept
        assert layer_thickness(s) < 8.0 and s.lattice.c - layer_thickness(s) > 15.0
        assert LC.n_fragments(s) == 1
        assert _min_distance(s) > LC.MIN_DISTANCE
        p = r.properties
        assert math.isfinite(p["energy_per_atom"]) and p["energy_per_atom"] < 0
        assert p["relaxed"] and p["relaxer"] == "CHGNet" and p["converged"]
        assert p["fmax"] < 0.05 and 0 <= p["steps"] <= 150
        assert p["dim"] == 2 and p["prototype"] == proto[r.id]
    mos2 = next(r for r in records if r.id == "2H-MX2-MoS2")
    assert 3.1 < mos2.structure.lattice.a < 3.3  # CHGNet: 3.19 A (experiment 3.16 A)


def test_broken_and_duplicate_candidates_are_rejected_with_reasons(model, by_id):
    good = by_id["honeycomb-AB-BN"]
    broken = good.structure.copy()
    broken.replace(1, "N", broken[0].coords, coords_are_cartesian=True)  # on top of B
    bad = P.Candidate("BN-broken", good.prototype, good.substitution, broken)
    twin = P.Candidate("BN-twin", good.prototype, good.substitution, good.structure.copy())
    records, rejected = P.build_library(
        candidates_in=[good, bad, twin],
        seed=0,
        threads=THREADS,
        settings=RelaxSettings(steps=100),
        model=model,
    )
    assert [r.id for r in records] == [good.id]
    reasons = {r.id: r.reason for r in rejected}
    assert "overlapping atoms" in reasons["BN-broken"]
    assert reasons["BN-twin"] == f"duplicate of {good.id} (StructureMatcher)"


def test_same_seed_same_library(model, by_id):
    cands = [by_id["honeycomb-X2-Sb"], by_id["GaS-MX-InSe"]]
    run = partial(
        P.build_library,
        candidates_in=cands,
        threads=THREADS,
        settings=RelaxSettings(steps=100),
        model=model,
    )
    (a, _), (b, _), (c, _) = run(seed=1), run(seed=1), run(seed=2)
    assert [r.id for r in a] == [r.id for r in b]
    for x, y in zip(a, b, strict=True):
        assert np.array_equal(x.structure.cart_coords, y.structure.cart_coords)
        assert x.properties == y.properties
    assert not np.array_equal(a[0].structure.cart_coords, c[0].structure.cart_coords)


def test_threads_are_pinned(model, by_id):
    import torch

    P.build_library(
        candidates_in=[by_id["honeycomb-AB-BN"]],
        threads=1,
        settings=RelaxSettings(steps=5),
        model=model,
    )
    assert torch.get_num_threads() == 1
    torch.set_num_threads(THREADS)


# --- the whole library ----------------------------------------------------------------------
