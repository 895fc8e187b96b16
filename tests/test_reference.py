"""Reference-data loaders: small fixture files (always run) and the real shared data (skipped
when ``../shared/data`` / ``$TOPOGEN_SHARED_DATA`` is absent)."""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pymatgen.core import Composition, Molecule, Structure

from topogen.data.c2db import bond_ratio, c2db_structure, cell_matrix, load_c2db_subset
from topogen.data.logan import LOGAN_SETS, load_logan, smiles_graph
from topogen.data.mc2d import load_mc2d
from topogen.data.shared import ENV_VAR, ReferenceDataError, shared_data_root
from topogen.data.topoa import load_topoa, normalise_formula


def min_distance(structure, a: str, b: str) -> float:
    """Shortest a-b distance (periodic images included for crystals)."""
    d = np.array(structure.distance_matrix, dtype=float)
    np.fill_diagonal(d, np.inf)
    ia = [i for i, s in enumerate(structure) if s.specie.symbol == a]
    ib = [i for i, s in enumerate(structure) if s.specie.symbol == b]
    return float(d[np.ix_(ia, ib)].min())


# ------------------------------------------------------------------ root resolution


def test_shared_data_root_resolution(tmp_path, monkeypatch):
    assert shared_data_root(tmp_path) == tmp_path
    assert shared_data_root(tmp_path / "absent") is None
    monkeypatch.setenv(ENV_VAR, str(tmp_path))
    assert shared_data_root() == tmp_path
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "absent"))
    assert shared_data_root() is None


def test_missing_files_raise_naming_the_file(tmp_path):
    with pytest.raises(ReferenceDataError, match=r"logan/nope\.extxyz: no such file"):
        load_logan(tmp_path, "nope")
    with pytest.raises(ReferenceDataError, match=r"ti_ccmp\.txt: no such file"):
        load_topoa(tmp_path)
    with pytest.raises(ReferenceDataError, match=r"structures\.json: no such file"):
        load_mc2d(tmp_path)
    with pytest.raises(ReferenceDataError, match=r"data\.csv: no such file"):
        load_c2db_subset(tmp_path)


# ------------------------------------------------------------------ fixture files: LoGAN


METHANOL = """C 0.000 0.000 0.000
O 1.430 0.000 0.000
H -0.360 1.030 0.000
H -0.360 -0.510 0.890
H -0.360 -0.510 -0.890
H 1.750 0.900 0.000
"""


def test_logan_extxyz_fixture(tmp_path):
    d = tmp_path / "logan"
    d.mkdir()
    qm9 = "gdb=T 17=T 1.5=T 2.5=T 3.5=T 0.9=T 10.0=T -0.25=T 0.08=T 0.33=T 100.0=T"
    frames = [
        f'6\nProperties=species:S:1:pos:R:3 {qm9} pbc="F F F"\n{METHANOL}',
        '2\nProperties=species:S:1:pos:R:3 pbc="F F F"\nC 0 0 0\nO 0.1 0 0\n',  # overlap
        '1\nProperties=species:S:1:pos:R:3 pbc="F F F"\nXx 0 0 0\n',  # unknown element
        '1\nLattice="3 0 0 0 3 0 0 0 3" Properties=species:S:1:pos:R:3 energy=-1.5 '
        'spacegroup="P 1" pbc="T T T"\nNa 0 0 0\n',
        '5\nProperties=species:S:1:pos:R:3 pbc="F F F"\nC 0 0 0\n',  # truncated
    ]
    (d / "toy_ground_truth.extxyz").write_text("".join(frames))
    (d / "toy_ground_truth.smi").write_text("OC\nCCO\nC1CC\n")
    res = load_logan(tmp_path, "toy_ground_truth")

    assert [r.id for r in res.records] == ["toy_ground_truth-000", "toy_ground_truth-003"]
    mol, crystal = (r.structure for r in res.records)
    assert isinstance(mol, Molecule) and isinstance(crystal, Structure)
    props = res.records[0].properties
    assert props["qm9_index"] == 17 and props["homo"] == -0.25 and props["r2"] == 100.0
    assert props["smiles"] == "OC"  # matched by bond graph, not by position
    assert props["role"] == "ground_truth" and props["target"] == "toy"
    assert res.records[1].properties["energy"] == -1.5
    assert res.records[1].properties["spacegroup"] == "P 1"
    assert all(r.source == "logan" for r in res.records)

    why = {(Path(r.file).suffix, r.item): r.reason for r in res.rejected}
    assert "overlapping atoms" in why[(".extxyz", "1")]
    assert why[(".extxyz", "2")]  # unknown element: any reader error, with a reason
    assert "truncated" in why[(".extxyz", "4")]
    assert why[(".smi", "2")] == "matches no molecule"
    assert "incomplete SMILES" in why[(".smi", "3")]


def test_smiles_graph():
    ring = smiles_graph("C1CCCCC1")
    assert ring.number_of_nodes() == 6 and ring.number_of_edges() == 6
    branched = smiles_graph("CC(C)(C)CO")
    assert sorted(d for _, d in branched.degree()) == [1, 1, 1, 1, 2, 4]
    assert smiles_graph("[NH4+].[Cl-]").number_of_edges() == 0
    with pytest.raises(ValueError):
        smiles_graph("C(C")


# ------------------------------------------------------------------ fixture files: TopoA


def test_topoa_fixture(tmp_path):
    d = tmp_path / "topoa"
    d.mkdir()
    (d / "ti_ccmp.txt").write_text("2, Ag1F6Pd1\n12, Bi2Se3\nnot a line\n999, Cu1\n")
    (d / "tci_ccmp.txt").write_text("2, AgPdF6\n")  # same material as ti line 1: merged
    (d / "case3_ccmp.txt").write_text("5, Nb1S2\n5, Nb1S2\n")  # repeated: merged
    (d / "case1_ccmp.txt").write_text("12, Bi2Se3\n3, Xx2O1\n\n7, Si1O2")  # conflict, bad
    res = load_topoa(tmp_path)
    df = res.labels
    assert list(df.columns[:4]) == ["space_group", "formula", "label", "category"]
    assert df.to_dict("records") == [
        {"space_group": 2, "formula": "AgPdF6", "label": 1, "category": "ti",
         "categories": "ti+tci"},
        {"space_group": 5, "formula": "NbS2", "label": 1, "category": "case3",
         "categories": "case3"},
        {"space_group": 7, "formula": "SiO2", "label": 0, "category": "case1",
         "categories": "case1"},
    ]  # fmt: skip
    assert res.duplicates_merged == 2 and res.conflicts_dropped == 1 and res.lines_read == 10
    why = {(Path(r.file).name, r.item): r.reason for r in res.rejected}
    assert "expected 'space group, formula'" in why[("ti_ccmp.txt", "3")]
    assert "outside 1-230" in why[("ti_ccmp.txt", "4")]
    assert why[("case1_ccmp.txt", "2")]
    conflict = next(r for r in res.rejected if r.id == "12 Bi2Se3")
    assert "ti_ccmp.txt:2" in conflict.reason and "case1_ccmp.txt:1" in conflict.reason


def test_normalise_formula():
    assert normalise_formula("Ag1F6Pd1") == normalise_formula("AgPdF6") == "AgPdF6"
    assert normalise_formula("Nb2S4") == "NbS2"


# ------------------------------------------------------------------ fixture files: MC2D


def _mc2d_entry(label: str, positions, n: int | None = None, **extra):
    return {
        "structure_label": label,
        "cell": [["a1", 2.46, 0.0, 0.0], ["a2", -1.23, 2.1304, 0.0], ["a3", 0.0, 0.0, 20.0]],
        "atomic_positions": positions,
        "number_of_atoms": len(positions) if n is None else n,
        "band_gap": 0.0,
        "magnetic_state": "NM",
        "be_df2": 20.1,
        "be_rvv10": "-",
        "spg": "P6/mmm",
        "all_3D_parents": [{"db_id": "1", "spg": "P6_3/mmc"}],
        "formula_parent": "C",
        **extra,
    }


def test_mc2d_fixture(tmp_path):
    d = tmp_path / "mc2d-v4"
    d.mkdir()
    good = [["C1", 0.0, 1.4202, 10.0, "C"], ["C2", 1.23, 0.7101, 10.0, "C"]]
    entries = [
        _mc2d_entry("C2-good", good, starting_magnetization_for_PWscf={"C1": 0.1}),
        _mc2d_entry("C2-count", good, n=3),
        "not an object",
        _mc2d_entry("C2-overlap", [good[0], ["C", 0.05, 1.4202, 10.0, "C"]]),
        _mc2d_entry("", good),
        _mc2d_entry("C2-short", [["C", 0.0, 0.0]]),
    ]
    (d / "structures.json").write_text(json.dumps(entries))
    res = load_mc2d(tmp_path)
    assert [r.id for r in res.records] == ["C2-good"]
    rec = res.records[0]
    assert math.isclose(min_distance(rec.structure, "C", "C"), 1.42, abs_tol=0.01)
    assert rec.structure.site_properties["kind"] == ["C1", "C2"]
    assert rec.properties["binding_energy_df2"] == 20.1
    assert "binding_energy_rvv10" not in rec.properties  # '-' in MC2D
    assert rec.properties["spacegroup_number"] == 191 and rec.properties["n_3d_parents"] == 1
    why = {r.item: r.reason for r in res.rejected}
    assert "number_of_atoms is 3 but 2" in why["1"]
    assert "not an object" in why["2"]
    assert "overlapping atoms" in why["3"]
    assert "no structure_label" in why["4"]
    assert "[kind, x, y, z, element]" in why["5"]


# ------------------------------------------------------------------ fixture files: C2DB


def _defective_cif(cell: tuple, species: list[str], cart: np.ndarray) -> str:
    """A P1 CIF with the subset's defect: 'fractional' coordinates = Cartesian / length."""
    a, b, c, alpha, beta, gamma = cell
    stored = cart / np.array([a, b, c])
    head = (
        "# generated using pymatgen\ndata_x\n_symmetry_space_group_name_H-M   'P 1'\n"
        f"_cell_length_a   {a}\n_cell_length_b   {b}\n_cell_length_c   {c}\n"
        f"_cell_angle_alpha   {alpha}\n_cell_angle_beta   {beta}\n_cell_angle_gamma   {gamma}\n"
        "loop_\n _symmetry_equiv_pos_site_id\n _symmetry_equiv_pos_as_xyz\n  1  'x, y, z'\n"
        "loop_\n _atom_site_type_symbol\n _atom_site_label\n _atom_site_symmetry_multiplicity\n"
        " _atom_site_fract_x\n _atom_site_fract_y\n _atom_site_fract_z\n _atom_site_occupancy\n"
    )
    rows = "".join(
        f"  {s}  {s}{i}  1  {x:.8f}  {y:.8f}  {z:.8f}  1\n"
        for i, (s, (x, y, z)) in enumerate(zip(species, stored, strict=True))
    )
    return head + rows


def test_c2db_fixture_repair_and_rejects(tmp_path):
    d = tmp_path / "c2db-subset"
    d.mkdir()
    hex_cell = (2.50, 2.50, 15.0, 90.0, 90.0, 120.0)
    m = cell_matrix(*hex_cell)
    hbn = _defective_cif(
        hex_cell, ["B", "N"], np.array([[1 / 3, 2 / 3, 0.5], [2 / 3, 1 / 3, 0.5]]) @ m
    )
    # A 60-degree cell whose Cartesian positions were in the frame with x bisecting a and b.
    cell60 = (4.0, 4.0, 15.0, 90.0, 90.0, 60.0)
    m60 = cell_matrix(*cell60, frame="bisector_along_x")
    si2 = _defective_cif(cell60, ["Si", "Si"], np.array([[0, 0, 0.5], [0.5, 0.5, 0.5]]) @ m60)
    overlap = _defective_cif(hex_cell, ["B", "N"], np.array([[0, 0, 7.5], [0.1, 0, 7.5]]))
    squeezed = _defective_cif(hex_cell, ["Bi", "Bi"], np.array([[0, 0, 7.5], [0.8, 0, 7.5]]))
    rows = [
        ("BN-1", 4.6, 6.0, hbn),
        ("Si2-1", 0.0, 4.5, si2),
        ("bad-1", 1.0, 5.0, "data_broken\nnot a cif\n"),
        ("BN-2", 1.0, 5.0, overlap),
        ("BN-1", 4.6, 6.0, hbn),  # duplicate id
        ("BN-3", "n/a", 6.0, hbn),
        ("Bi2-1", 0.0, 4.0, squeezed),  # 0.8 A apart: past the 0.5 A check, not a bond
    ]
    df = pd.DataFrame(rows, columns=["material_id", "band_gap", "workfunction", "cif"])
    df.to_csv(d / "data.csv")

    res = load_c2db_subset(tmp_path)
    by_id = {r.id: r for r in res.records}
    assert set(by_id) == {"BN-1", "Si2-1"}
    assert math.isclose(min_distance(by_id["BN-1"].structure, "B", "N"), 2.5 / 3**0.5, abs_tol=1e-6)
    assert by_id["BN-1"].properties["coords_frame"] == "a_along_x"
    assert by_id["BN-1"].properties["band_gap"] == 4.6
    assert by_id["Si2-1"].properties["coords_frame"] == "bisector_along_x"
    assert math.isclose(min_distance(by_id["Si2-1"].structure, "Si", "Si"), 2.0, abs_tol=1e-6)
    why = {r.item: (r.id, r.reason) for r in res.rejected}
    assert why["2"][0] == "bad-1" and "_cell_length_a" in why["2"][1]
    assert why["3"][0] == "BN-2" and "overlapping atoms" in why["3"][1]
    assert why["4"] == ("BN-1", "duplicate id 'BN-1'")
    assert "band_gap 'n/a' is not a number" in why["5"][1]
    assert "covalent bond length after the repair in every cell frame" in why["6"][1]

    raw = load_c2db_subset(tmp_path, repair=False)
    bn_raw = next(r for r in raw.records if r.id == "BN-1")
    assert abs(min_distance(bn_raw.structure, "B", "N") - 1.443) > 0.2  # the defect is real


# ------------------------------------------------------------------ the real reference data


@pytest.fixture(scope="module")
def data_root() -> Path:
    root = shared_data_root()
    if root is None:
        pytest.skip(f"reference data absent (set {ENV_VAR} or provide ../shared/data)")
    return root


def _need(root: Path, folder: str) -> None:
    if not (root / folder).is_dir():
        pytest.skip(f"reference data folder {root / folder} absent")


def test_logan_qm9_isomers(data_root):
    _need(data_root, "logan")
    train = load_logan(data_root, "C5H12O_training")
    truth = load_logan(data_root, "C5H12O_ground_truth")
    assert train.rejected == [] and truth.rejected == []
    comps = [r.structure.composition.reduced_composition for r in train.records]
    assert len(comps) == 39
    assert comps.count(Composition("C4H10O")) == 7 and comps.count(Composition("C6H14O")) == 32
    assert all(isinstance(r.structure, Molecule) for r in train.records + truth.records)
    assert all(isinstance(r.properties["qm9_index"], int) for r in train.records)
    assert all(r.properties["U0"] < 0 for r in train.records)
    assert len(truth.records) == 14
    assert {r.formula for r in truth.records} == {Composition("C5H12O").reduced_formula}
    smiles = (data_root / "logan" / "C5H12O_ground_truth.smi").read_text().split()
    assert sorted(r.properties["smiles"] for r in truth.records) == sorted(smiles)


@pytest.mark.parametrize("target", ["mp-559550", "mp-554151", "mp-546794"])
def test_logan_sio2_sets(data_root, target):
    _need(data_root, "logan")
    train = load_logan(data_root, f"{target}_training")
    truth = load_logan(data_root, f"{target}_ground_truth")
    assert (len(train.records), len(truth.records)) == (167, 1)
    assert train.rejected == [] and truth.rejected == []
    assert {r.formula for r in train.records + truth.records} == {"SiO2"}
    assert all(isinstance(r.structure, Structure) for r in train.records + truth.records)
    assert truth.records[0].properties["target"] == target
    assert "energy" in truth.records[0].properties


def test_logan_set_names_exist(data_root):
    _need(data_root, "logan")
    assert all((data_root / "logan" / f"{name}.extxyz").is_file() for name in LOGAN_SETS)


def test_topoa_labels(data_root):
    _need(data_root, "topoa")
    res = load_topoa(data_root)
    df = res.labels
    counts = df["label"].value_counts().to_dict()
    assert 10_600 <= len(df) <= 10_900
    assert abs(counts[1] - 4_695) <= 50 and abs(counts[0] - 6_088) <= 50
    assert not df.duplicated(["space_group", "formula"]).any()
    assert set(df.loc[df["label"] == 0, "category"]) == {"case1"}
    assert ((df["space_group"] == 2) & (df["formula"] == "AgPdF6")).sum() == 1
    assert res.conflicts_dropped > 0
    assert sum("labelled both ways" in r.reason for r in res.rejected) == res.conflicts_dropped


def test_mc2d(data_root):
    _need(data_root, "mc2d-v4")
    res = load_mc2d(data_root)
    assert len(res.records) == 258 and res.rejected == []
    assert {r.properties["magnetic_state"] for r in res.records} <= {"NM", "FM", "AFM"}
    assert all(isinstance(r.properties["band_gap"], float) for r in res.records)
    assert all(r.structure.lattice.c > 10 for r in res.records)  # vacuum axis kept


@pytest.fixture(scope="module")
def c2db(data_root):
    _need(data_root, "c2db-subset")
    return load_c2db_subset(data_root)


def test_c2db_subset_repaired(c2db):
    assert len(c2db.records) + len(c2db.rejected) == 4_033
    assert len(c2db.rejected) <= 20
    by_id = {r.id: r for r in c2db.records}
    hbn = next(r for r in c2db.records if r.formula == "BN" and len(r.structure) == 2)
    graphene = next(r for r in c2db.records if r.formula == "C" and len(r.structure) == 2)
    assert math.isclose(min_distance(hbn.structure, "B", "N"), 1.45, abs_tol=0.02)
    assert math.isclose(min_distance(graphene.structure, "C", "C"), 1.42, abs_tol=0.02)
    assert all(bond_ratio(r.structure) >= 0.5 for r in c2db.records)
    assert len(by_id) == len(c2db.records)


def test_c2db_subset_labels_follow_the_spin_chern_rule(c2db):
    """The subset has no Topology key: its labels come from the literature table, matched by
    formula and space group; every other monolayer stays unlabelled (never 0)."""
    props = {r.id: r.properties for r in c2db.records}
    counts = Counter(
        (p.get("topo2d"), p.get("topo_class"), p.get("topo_invariant")) for p in props.values()
    )
    assert counts == {
        (1, "spin_chern", "Z2"): 20,
        (0, "trivial", "Z2"): 4,
        (0, "trivial", "none"): 16,
        (None, None, None): len(c2db.records) - 40,
    }
    assert props["Mo2S4-b06001f565b8"]["topo2d"] == 1  # 1T'-MoS2, P2_1/m
    assert props["MoS2-b3b4685fb6e1"]["topo2d"] == 0  # 2H-MoS2, P-6m2
    assert props["MoS2-249ca8711314"]["topo2d"] is None  # 1T-MoS2: no literature row
    assert {p["label_match"] for p in props.values() if "label_match" in p} == {"space_group"}


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_c2db_repair_matters(data_root, c2db):
    df = pd.read_csv(data_root / "c2db-subset" / "data.csv")
    hbn_id = next(r.id for r in c2db.records if r.formula == "BN" and len(r.structure) == 2)
    cif = df.loc[df["material_id"] == hbn_id, "cif"].iloc[0]
    raw = c2db_structure(cif, repair=False)
    assert not math.isclose(raw.lattice.gamma, 90.0, abs_tol=1.0)
    assert abs(min_distance(raw, "B", "N") - 1.45) > 0.2
    # The 60-degree cells needed the second frame; it restores their hexagonal symmetry.
    frames = [r for r in c2db.records if r.properties["coords_frame"] == "bisector_along_x"]
    assert 0 < len(frames) <= 40
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    sga = SpacegroupAnalyzer(frames[0].structure, symprec=0.1)
    assert sga.get_crystal_system() == "hexagonal"
