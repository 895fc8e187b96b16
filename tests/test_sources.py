"""Normalisers of the public sources, on small fixture files written here (bad rows included)."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
import zipfile

import ase.db
import pytest
from conftest import monolayers
from pymatgen.core import Lattice, Structure

from topogen.io.quarantine import read_quarantine
from topogen.io.tables import read_records

METHANE = """5
gdb 1\t157.7118\t157.70997\t157.70699\t0.\t13.21\t-0.3877\t0.1171\t0.5048\t35.3641\t0.044749\t-40.47893\t-40.476062\t-40.475117\t-40.498597\t6.469
C\t-0.0126981359\t 1.0858041578\t 0.0080009958\t-0.535689
H\t 0.002150416\t-0.0060313176\t 0.0019761204\t 0.133921
H\t 1.0117308433\t 1.4637511618\t 0.0002765748\t 0.133922
H\t-0.540815069\t 1.4475266138\t-0.8766437152\t 0.133923
H\t-0.5238136345\t 1.4379326443\t 0.9063972942\t 0.133923
1341.307\t1341.3284\t1341.365\t1562.6731\t1562.7453\t3038.3205\t3151.6034\t3151.6788\t3151.7078
C\tC
InChI=1S/CH4/h1H4\tInChI=1S/CH4/h1H4
"""  # noqa: E501
WATER = """3
gdb 3\t799.58812\t437.90386\t282.94545\t1.8511\t6.31\t-0.2928\t0.0687\t0.3615\t19.0002\t0.021375\t-76.404702\t-76.401867\t-76.400922\t-76.422349\t6.002
O\t-0.0343604951\t 0.9775395708\t 0.0076015923\t-0.589706
H\t 0.0647664923\t 0.0205721989\t 0.0015346341\t 0.294853
H\t 0.8717903737\t 1.3007924048\t 0.000693\t 2.1*^-3
1591.0181\t3838.2657\t3881.7524
O\tO
InChI=1S/H2O/h1H2\tInChI=1S/H2O/h1H2
"""  # noqa: E501


def _tar_bz2(path, members: dict[str, str]):
    with tarfile.open(path, "w:bz2") as tar:
        for name, text in members.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_qm9_archive(cli, tmp_path):
    archive = tmp_path / "dsgdb9nsd.xyz.tar.bz2"
    broken = "4\ngdb 9\t1\t2\nC 0 0 0 0\n"
    renamed = WATER.replace("gdb 3", "gdb 7")
    _tar_bz2(
        archive,
        {
            "dsgdb9nsd_000001.xyz": METHANE,
            "dsgdb9nsd_000003.xyz": WATER,
            "dsgdb9nsd_000007.xyz": renamed,
            "dsgdb9nsd_000009.xyz": broken,
        },
    )
    unchar = tmp_path / "uncharacterized.txt"
    unchar.write_text("Uncharacterized molecules\n Index  SMILES\n------\n     7   O\n")
    out = tmp_path / "qm9.parquet"
    res = cli("data", "normalize", "qm9", archive, "--uncharacterized", unchar, "--out", out)
    assert res.returncode == 0, res.stderr
    recs = {r.id: r for r in read_records(out)}
    assert set(recs) == {"qm9-000001", "qm9-000003"}
    water = recs["qm9-000003"]
    assert water.formula == "H2O" and water.properties["U0"] == -76.404702
    assert water.properties["smiles"] == "O" and water.properties["A"] == 799.58812
    assert water.structure.site_properties["mulliken_charge"][2] == pytest.approx(2.1e-3)
    reasons = {
        q.item.rsplit("_", 1)[-1]: q.reason for q in read_quarantine(f"{out}.quarantine.csv")
    }
    assert "uncharacterized" in reasons["000007.xyz"]
    assert "malformed QM9 xyz" in reasons["000009.xyz"]


def test_qm9pack_csv(cli, tmp_path):
    header = (
        "XYZ_file,Index,SMILES,InChi,N_atoms,Stoichiometry,Elements,XYZ_Ang,Mulliken_pop,"
        "Harmonic_Freq_cmi,RotA_GHz,RotB_GHz,RotC_GHz,Dipole_debye,Polarizability_bohr3,"
        "HOMO_au,LUMO_au,HOMO_LUMO_gap_au,R2_bohr2,ZPVE_au,InternalEnergy_0K_au,"
        "InternalEnergy_298K_au,Enthalphy_298K_au,GibbsFreeEnergy_298K_au,"
        "Heatcapacity_Cv_cal_mol_K"
    )
    good = (
        '"dsgdb9nsd_000003.xyz",3,"O","InChI=1S/H2O/h1H2",3,"[2,0,0,1,0]","[\'O\',\'H\',\'H\']",'
        '"[[-0.034,0.977,0.007],[0.064,0.020,0.001],[0.871,1.300,0.0006]]",'
        '"[-0.58,0.29,0.29]","[1591.0,3838.2,3881.7]",799.58812,437.90386,282.94545,1.8511,'
        "6.31,-0.2928,0.0687,0.3615,19.0002,0.021375,-76.404702,-76.401867,-76.400922,"
        "-76.422349,6.002"
    )
    bad = good.replace(",3,", ",4,", 1).replace("[[-0.034", "[[oops")
    (tmp_path / "qm9_part1.csv").write_text(f"{header}\n{good}\n{bad}\n")
    out = tmp_path / "qm9.parquet"
    res = cli("data", "normalize", "qm9", "--qm9pack-dir", tmp_path, "--out", out)
    assert res.returncode == 0, res.stderr
    (water,) = read_records(out)
    assert water.id == "qm9-000003" and water.properties["G"] == -76.422349
    (rej,) = read_quarantine(f"{out}.quarantine.csv")
    assert rej.item == "3" and rej.reason


def test_c2db_database(cli, tmp_path):
    mono = monolayers()
    db_path = tmp_path / "c2db.db"
    broken = mono["hBN"].copy()
    broken.positions[1] = broken.positions[0]
    with ase.db.connect(db_path) as db:
        db.write(
            mono["Bi2"],
            uid="Bi2-1",
            gap=0.5,
            gap_nosoc=0.1,
            ehull=0.02,
            hform=-0.1,
            magstate="NM",
            Topology="QSHI",
            unrelated_key=3,
        )
        db.write(mono["MoS2"], uid="MoS2-1", gap=1.58, Topology="Trivial", dyn_stab="Yes")
        db.write(mono["graphene"], uid="C2-1", gap=0.0)
        db.write(broken, uid="BN-broken", gap=4.0)
        db.write(mono["hBN"], uid="BN-nogap", ehull=0.0)
    out = tmp_path / "c2db.parquet"
    res = cli("data", "normalize", "c2db", db_path, "--out", out)
    assert res.returncode == 0, res.stderr
    recs = {r.id: r for r in read_records(out)}
    assert set(recs) == {"Bi2-1", "MoS2-1", "C2-1"}
    bi = recs["Bi2-1"].properties
    assert bi["topo2d"] == 1 and bi["gap_nosoc"] == 0.1 and "unrelated_key" not in bi
    assert recs["MoS2-1"].properties["topo2d"] == 0
    assert "topo2d" not in recs["C2-1"].properties  # unlabelled stays unlabelled
    reasons = {q.id: q.reason for q in read_quarantine(f"{out}.quarantine.csv")}
    assert "overlapping atoms" in reasons["BN-broken"]
    assert reasons["BN-nogap"] == "missing property gap"


def test_jarvis_c2db_zip(cli, tmp_path):
    mos2 = monolayers()["MoS2"]
    atoms = {
        "lattice_mat": mos2.cell.array.tolist(),
        "coords": mos2.positions.tolist(),
        "elements": mos2.get_chemical_symbols(),
        "cartesian": True,
    }
    entries = [
        {"id": "MoS2-jv", "atoms": atoms, "gap": 1.6, "etot": -21.0, "wf": 5.9},
        {"id": "no-atoms", "gap": 1.0},
        {"id": "MoS2-jv", "atoms": atoms, "gap": 1.6},
    ]
    zpath = tmp_path / "c2db.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        zf.writestr("c2db_atoms.json", json.dumps(entries))
    out = tmp_path / "jarvis.parquet"
    res = cli("data", "normalize", "jarvis-c2db", zpath, "--out", out)
    assert res.returncode == 0, res.stderr
    (rec,) = read_records(out)
    assert rec.id == "MoS2-jv" and rec.formula == "MoS2" and rec.properties["gap"] == 1.6
    reasons = [q.reason for q in read_quarantine(f"{out}.quarantine.csv")]
    assert "KeyError" in reasons[0] and reasons[1] == "duplicate id 'MoS2-jv'"


def _mp_docs():
    bi2se3 = Structure(
        Lattice.hexagonal(4.14, 28.6), ["Bi", "Se"], [[0, 0, 0.4], [1 / 3, 2 / 3, 0.2]]
    )
    nacl = Structure(Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    squashed = Structure(Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.01, 0, 0]])
    doc = {
        "band_gap": 0.3,
        "energy_above_hull": 0.0,
        "formation_energy_per_atom": -0.7,
        "symmetry": {"symbol": "R-3m", "number": 166, "crystal_system": "Trigonal"},
    }
    return [
        {
            **doc,
            "material_id": "mp-541837",
            "structure": bi2se3.as_dict(),
            "database_IDs": {"icsd": ["icsd-617079", "icsd-42545"]},
        },
        {
            **doc,
            "material_id": "mp-22862",
            "structure": nacl.as_dict(),
            "database_IDs": {"icsd": ["icsd-240598"]},
        },
        {**doc, "material_id": "mp-bad", "structure": squashed.as_dict()},
        {**doc, "material_id": "mp-nostructure"},
        {**doc, "material_id": "mp-nogap", "band_gap": None, "structure": nacl.as_dict()},
    ]


@pytest.fixture
def mp_table(cli, tmp_path):
    raw = tmp_path / "mp.json.gz"
    with gzip.open(raw, "wt") as fh:
        json.dump(_mp_docs(), fh)
    out = tmp_path / "mp.parquet"
    res = cli("data", "normalize", "mp", raw, "--out", out)
    assert res.returncode == 0, res.stderr
    return out


def test_mp_documents(mp_table):
    recs = {r.id: r for r in read_records(mp_table)}
    assert set(recs) == {"mp-541837", "mp-22862"}
    assert recs["mp-541837"].properties["icsd_ids"] == [42545, 617079]
    assert recs["mp-541837"].properties["spacegroup_number"] == 166
    reasons = {q.id: q.reason for q in read_quarantine(f"{mp_table}.quarantine.csv")}
    assert "overlapping atoms" in reasons["mp-bad"] and "KeyError" in reasons["mp-nostructure"]
    assert reasons["mp-nogap"] == "missing property band_gap"


def test_mp_query_needs_the_key_from_the_environment(cli, tmp_path):
    res = cli("data", "query-mp", "--out", tmp_path / "x.json.gz", env={"MP_API_KEY": ""})
    assert res.returncode == 1 and "MP_API_KEY is not set" in res.stderr
    assert not (tmp_path / "x.json.gz").exists()


def test_tqc_export_joined_to_mp(cli, tmp_path, mp_table):
    export = tmp_path / "tqc.csv"
    export.write_text(
        "formula;icsd;sg;theory;ID;class\n"
        "Bi2Se3;42545;166;PBE;1001;NLC\n"
        "NaCl;240598;225;PBE;1002;LCEBR\n"
        "Xx;999999;12;PBE;1003;SEBR\n"
        "Yy;123;12;PBE;1004;WEIRD\n"
        "Zz;abc;12;PBE;1005;ES\n"
    )
    out = tmp_path / "tqc.parquet"
    res = cli("data", "normalize", "tqc", export, "--mp-table", mp_table, "--out", out)
    assert res.returncode == 0, res.stderr
    recs = {r.id: r for r in read_records(out)}
    assert recs["tqc-1001"].properties["topological"] == 1
    assert recs["tqc-1001"].properties["mp_id"] == "mp-541837"
    assert recs["tqc-1002"].properties["topological"] == 0
    reasons = {q.id: q.reason for q in read_quarantine(f"{out}.quarantine.csv")}
    assert reasons["tqc-1003"] == "no Materials Project structure with ICSD 999999"
    assert "unknown class 'WEIRD'" in reasons["1004"] and "not a number" in reasons["1005"]
    manifest = json.loads((tmp_path / "tqc.parquet.prov.json").read_text())
    assert {i["relpath"] for i in manifest["inputs"]} == {"tqc.csv", "mp.parquet"}
