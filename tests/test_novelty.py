"""Uniqueness and novelty (StructureMatcher on slabs, primitive cells, supercells, matcher
errors as reasons, undecodable training rows reported) and the chunk split that keeps
possible twins together."""

from __future__ import annotations

import numpy as np

from topogen.data import prototypes as P
from topogen.io.tables import Record, records_to_frame, write_records
from topogen.screen import chunks as C
from topogen.screen.novelty import duplicates, training_index
from topogen.structure.slabs import VACUUM, canonical_slab


def mos2(vacuum: float = VACUUM):
    return canonical_slab(P.mx2_2h("Mo", "S"), vacuum)


def test_uniqueness_and_novelty_are_slab_aware(tmp_path):
    a = P.rattle(mos2(), 0.01, 0, "a")
    b = P.rattle(mos2(vacuum=25.0), 0.01, 1, "b")  # same layer, more vacuum
    t1 = P.mx2_1t("Mo", "S")  # same formula and size, another structure
    assert [x.match for x in duplicates(["a", "b", "t"], [a, b, t1])] == [None, "a", None]
    big = P.rattle(t1 * (2, 1, 1), 0.01, 2, "big")  # a 2x1 supercell: not new
    assert [x.match for x in duplicates(["t", "big"], [t1, big])] == [None, "t"]
    path = tmp_path / "train.parquet"
    train = [Record("t-1T", "x", t1), Record("t-graphene", "x", P.honeycomb("C"))]
    write_records(train, path)
    index = training_index(path=path, formulas={"MoS2"})
    assert len(index) == 1  # only the rows with a wanted formula were decoded
    assert index.find(P.rattle(t1, 0.02, 0, "x")) == "t-1T"
    assert index.find(a) is None
    assert index.find(P.rattle(t1 * (1, 2, 1), 0.01, 3, "y")) == "t-1T"  # supercell: not novel
    df = records_to_frame(train)
    df.loc[1, "structure"] = '{"not": "a structure"}'
    from topogen.io.tables import write_table

    write_table(df, path)
    index = training_index(path=path)
    assert len(index) == 1 and index.undecodable == ["t-graphene"]  # reported, not dropped


def test_matcher_errors_are_reasons_not_no_match():
    from topogen.screen.novelty import Index, Lookup

    index = Index()
    index.add("t", P.mx2_1t("Mo", "S"))
    broken = P.mx2_1t("Mo", "S")
    broken.lattice._matrix = broken.lattice.matrix * np.array([[1.0], [1.0], [np.nan]])
    look = index.lookup(P.mx2_1t("Mo", "S"))
    assert look == Lookup("t", None, 0)
    entry = index.buckets[("MoS2", True)][0]
    entry.structure = broken  # pymatgen raises comparing with it
    look = index.lookup(P.mx2_1t("Mo", "S"))
    assert look.match is None and look.n_errors == 1 and look.error.startswith("with t: ")
    verdict, reason = look.reason("matches training structure")
    assert verdict == "failed" and reason.startswith("StructureMatcher raised on 1 comparison")


def test_split_keeps_possible_twins_together():
    recs = []
    for k in range(30):
        s = [mos2(), P.mx2_1t("W", "Se"), P.honeycomb("C"), P.honeycomb("B", "N")][k % 4]
        recs.append(Record(f"c{k}", "gen", s))
    recs.append(Record("big", "gen", mos2() * (2, 1, 1)))  # a supercell may be a twin too
    df = records_to_frame(recs)
    parts = C.split_chunks(df, 3)
    assert len(parts) == 3 and sum(map(len, parts)) == len(df)
    assert sorted(i for p in parts for i in p["id"]) == sorted(df["id"])
    where = {i: k for k, p in enumerate(parts) for i in p["id"]}
    for k in range(4, 30):  # same formula as c{k % 4}
        assert where[f"c{k}"] == where[f"c{k % 4}"]
    assert where["big"] == where["c0"]
    assert max(map(len, parts)) - min(map(len, parts)) <= 9
    again = C.split_chunks(df, 3)
    assert [list(p["id"]) for p in again] == [list(p["id"]) for p in parts]
    assert [len(p) for p in C.split_chunks(df, 8)].count(0) == 4  # 4 formulas, 8 chunks
