"""Topology labels by the spin-Chern criterion: the literature table, C2DB's Topology classes,
matching by space group, and what reaches Stage II of the three-stage GAN."""

from __future__ import annotations

import csv
from collections import Counter

import ase.db
import pytest
import torch
from conftest import monolayers

from topogen.data import prototypes as P
from topogen.data.c2db import TOPOLOGICAL, load_c2db_db, topology_class, topology_label
from topogen.encode.store import save_encoded
from topogen.io.labels import (
    INVARIANTS,
    LABELS_FILE,
    LabelError,
    read_labels,
    read_literature,
    topo2d_label,
)
from topogen.io.tables import Record, write_records
from topogen.models.gan3.train import image_set

HEADER = "formula,prototype,label,invariant,reference\n"


# --- C2DB's Topology key ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "topo_class", "default", "qshi_only"),
    [
        ("QSHI", "spin_chern", 1, 1),
        ("CRI", "mirror_chern", 1, None),  # excluded, never 0, when CRI is not listed
        ("QAHI", "chern", None, None),  # time reversal broken: never a Stage II label
        ("Trivial", "trivial", 0, 0),
        ("None", "trivial", 0, 0),  # C2DB wrote a value: computed, zero
        (None, None, None, None),  # key absent: not computed
        ("", None, None, None),
        ("Not checked", None, None, None),
        ("Z2=1,C_M=1", "spin_chern", 1, 1),  # ASR's invariant strings
        ("C_M=2", "mirror_chern", 1, None),
        ("C=-1", "chern", None, None),
        ("Z2=0", "trivial", 0, 0),
    ],
)
def test_c2db_topology_mapping(value, topo_class, default, qshi_only):
    assert TOPOLOGICAL == ("QSHI", "CRI")
    assert topology_class(value) == topo_class
    assert topology_label(value) == default
    assert topology_label(value, ["QSHI"]) == qshi_only


def test_chern_insulators_cannot_be_listed_topological():
    with pytest.raises(LabelError, match="QAHI is a Chern insulator"):
        topology_label("QSHI", ["QSHI", "QAHI"])
    with pytest.raises(LabelError, match="unrecognised C2DB Topology value 'QSH'"):
        topology_class("QSH")
    with pytest.raises(LabelError, match="unknown topology class"):
        topo2d_label("qsh")


def _c2db_db(path):
    """A C2DB-like database: one row per Topology value, plus one C2DB never checked."""
    mono = monolayers()
    rows = {
        "Bi2-qshi": ("Bi2", "QSHI"),
        "C2-qahi": ("graphene", "QAHI"),
        "MoS2-cri": ("MoS2", "CRI"),
        "BN-trivial": ("hBN", "Trivial"),
        "Bi2-unchecked": ("Bi2", "Not checked"),
        "C2-odd": ("graphene", "QSH?"),
    }
    with ase.db.connect(path) as db:
        for uid, (name, topology) in rows.items():
            db.write(mono[name], uid=uid, gap=0.3, Topology=topology)
    return path


def test_c2db_database_rows_get_class_and_label(tmp_path):
    res = load_c2db_db(_c2db_db(tmp_path / "c2db.db"))
    props = {r.id: r.properties for r in res.records}
    assert {k: (p.get("topo_class"), p.get("topo2d")) for k, p in props.items()} == {
        "Bi2-qshi": ("spin_chern", 1),
        "C2-qahi": ("chern", None),
        "MoS2-cri": ("mirror_chern", 1),
        "BN-trivial": ("trivial", 0),
        "Bi2-unchecked": (None, None),
    }
    assert "topo2d" not in props["C2-qahi"] and "topo2d" not in props["Bi2-unchecked"]
    (rej,) = res.rejected
    assert rej.id == "C2-odd" and "unrecognised C2DB Topology value 'QSH?'" in rej.reason


def test_cli_refuses_qahi_as_topological(cli, tmp_path):
    db = _c2db_db(tmp_path / "c2db.db")
    out = tmp_path / "c2db.parquet"
    res = cli("data", "normalize", "c2db", db, "--out", out, "--topological", "QSHI", "QAHI")
    assert res.returncode == 1 and "QAHI is a Chern insulator" in res.stderr
    assert not out.exists()


def test_a_chern_insulator_never_reaches_stage2_as_topological(tmp_path):
    res = load_c2db_db(_c2db_db(tmp_path / "c2db.db"), topological=["QSHI"])
    table = write_records(res.records, tmp_path / "c2db.parquet")
    ids = [r.id for r in res.records]
    images = tmp_path / "images.pt"
    save_encoded(images, "images", ids, {"images": torch.zeros(len(ids), 3, 4)})
    kept, _, labels = image_set(images, table, stage=2)
    got = dict(zip(kept, labels.tolist(), strict=True))
    assert got == {"Bi2-qshi": 1.0, "BN-trivial": 0.0}  # QAHI, CRI (unlisted), unchecked: out
    kept1, _, labels1 = image_set(images, table, stage=1)  # Stage I still sees every crystal
    assert kept1 == ids and labels1.tolist() == [1.0] * len(ids)


# --- the literature table ---------------------------------------------------------------


def test_literature_rows_parse_with_their_invariant():
    with open(LABELS_FILE, newline="", encoding="utf-8") as fh:
        raw = list(csv.DictReader(fh))
    assert all(r["invariant"] in INVARIANTS for r in raw)
    rows = read_literature()
    assert len(rows) == len(raw) == 43
    assert Counter((r.topo_class, r.invariant) for r in rows) == {
        ("spin_chern", "Z2"): 23,
        ("trivial", "Z2"): 4,  # functionalised germanene, Si et al. 2014
        ("trivial", "none"): 16,  # semiconductors with normal band order
    }
    bi = next(r for r in rows if (r.formula, r.prototype) == ("Bi", "honeycomb-X2"))
    assert bi.topo2d == 1 and bi.reference.startswith("Murakami")
    assert read_labels() == {(r.formula, r.prototype): r.topo2d for r in rows}


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ("Bi,honeycomb-X2,1,none,ref", "topological label cannot rest on invariant 'none'"),
        ("Bi,honeycomb-X2,1,Chern,ref", "topological label cannot rest on invariant 'Chern'"),
        ("Bi,honeycomb-X2,0,Chern,ref", "zero Chern number does not make a crystal trivial"),
        ("Bi,honeycomb-X2,chern,Z2,ref", "Chern-insulator label rests on the Chern number"),
        ("Bi,honeycomb-X2,2,Z2,ref", "label '2' is not one of"),
        ("Bi,honeycomb-X2,1,parity,ref", "invariant 'parity' is not one of"),
        ("Bi,honeycomb-X2,1,Z2,", "empty formula, prototype or reference"),
    ],
)
def test_literature_reader_refuses_rows_against_the_criterion(tmp_path, row, reason):
    path = tmp_path / "labels.csv"
    path.write_text(HEADER + "Sn,honeycomb-X2,1,Z2,ref\n" + row + "\n", encoding="utf-8")
    with pytest.raises(LabelError, match=rf"labels\.csv, line 3: .*{reason}"):
        read_literature(path)


def test_literature_reader_needs_the_invariant_column(tmp_path):
    path = tmp_path / "old.csv"
    path.write_text("formula,prototype,label,reference\nBi,honeycomb-X2,1,ref\n")
    with pytest.raises(LabelError, match=r"missing column\(s\) invariant"):
        read_literature(path)


def test_labels_for_chern_rows_and_matching_by_space_group(tmp_path):
    by_id = {c.id: c for c in P.candidates()}
    path = tmp_path / "labels.csv"
    path.write_text(
        HEADER
        + "MoS2,1T'-MX2,1,Z2,Qian\nMoS2,2H-MX2,0,none,Rasmussen\n"
        + "MoS2,1T-MX2,chern,Chern,made up for the test\n",
        encoding="utf-8",
    )
    ids = ["1T'-MX2-MoS2", "2H-MX2-MoS2", "1T-MX2-MoS2"]
    with_proto = [Record(i, "prototypes", by_id[i].structure, by_id[i].describe()) for i in ids]
    without = [Record(i, "c2db", by_id[i].structure, {}) for i in ids]
    a, b, chern = P.labels_for(with_proto, path)
    assert (a.properties["topo2d"], b.properties["topo2d"], chern.properties["topo2d"]) == (
        1,
        0,
        None,
    )
    assert chern.properties["topo_class"] == "chern" and a.properties["label_match"] == "prototype"
    a, b, chern = P.labels_for(without, path)  # no prototype: formula + space group + sites
    assert [r.properties.get("topo_class") for r in (a, b, chern)] == [
        "spin_chern",
        "trivial",
        "chern",
    ]
    assert a.properties["label_match"] == "space_group" and a.properties["topo_invariant"] == "Z2"
    assert chern.properties["topo2d"] is None
