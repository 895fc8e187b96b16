"""`topogen data import` and `topogen data merge`: formats, quarantine, duplicate handling."""

from __future__ import annotations

import pytest

from topogen.data.importers import import_files
from topogen.io.quarantine import read_quarantine
from topogen.io.tables import read_records, write_records


def test_every_format_is_read(structure_files):
    good = [structure_files[k] for k in ("cif", "poscar", "extxyz", "db")]
    result = import_files(good, source="fixture")
    assert result.rejected == []
    by_id = {r.id: r for r in result.records}
    assert set(by_id) == {"MoS2", "POSCAR_graphene", "hBN-x", "Bi2-x", "graphene-db", "Bi2-db"}
    assert by_id["MoS2"].formula == "MoS2"
    assert by_id["hBN-x"].properties["gap"] == 4.6
    assert by_id["Bi2-x"].properties["topological"] is True
    assert by_id["Bi2-db"].properties["magstate"] == "NM"
    assert by_id["Bi2-db"].properties["origin"].endswith("library.db#2")
    assert all(r.source == "fixture" for r in result.records)
    # 2D crystals keep their vacuum axis
    assert by_id["MoS2"].structure.lattice.c > 15


def test_bad_inputs_are_quarantined_with_reasons(structure_files):
    files = [v for k, v in structure_files.items()]
    result = import_files(files)
    reasons = {r.file.rsplit("/", 1)[-1]: r.reason for r in result.rejected}
    assert "ValueError" in reasons["garbage.cif"]
    assert "empty.xyz" in reasons
    assert reasons["nan.extxyz"] == "non-finite coordinates (site 1)"
    assert "overlapping atoms" in reasons["overlap.vasp"] and "0.100 A" in reasons["overlap.vasp"]
    assert "unknown file type '.txt'" in reasons["notes.txt"]
    assert reasons["same-site.cif"].startswith("ValueError: atoms overlap: two or more atom")
    assert len(result.records) == 6  # the good ones proceed


def test_a_path_that_does_not_exist_fails_before_anything_is_read(cli, structure_files, tmp_path):
    """A typo in a file name is the user's mistake, not a bad row: exit 1 naming it, and no
    table (it used to be quarantined, and the import exited 0 without the file)."""
    out = tmp_path / "t.parquet"
    res = cli("data", "import", structure_files["cif"], tmp_path / "typo.cif", "--out", out)
    assert res.returncode == 1
    typo = tmp_path / "typo.cif"
    assert res.stderr.strip() == f"topogen: error: {typo}: no such file; nothing imported"
    assert not out.exists() and not list(tmp_path.glob("t.parquet*"))


def test_unsupported_elements_are_quarantined(tmp_path):
    path = tmp_path / "CmO2.vasp"
    path.write_text(
        "CmO2\n1.0\n5.0 0 0\n0 5.0 0\n0 0 5.0\nCm O\n1 2\nDirect\n"
        "0 0 0\n0.25 0.25 0.25\n0.75 0.75 0.75\n"
    )
    (rej,) = import_files([path]).rejected
    assert rej.reason == "element Cm outside the supported set (Z = 1..94)"


def test_duplicate_ids_within_one_import_are_quarantined(structure_files, tmp_path):
    copy = tmp_path / "MoS2.cif"
    copy.write_bytes(structure_files["cif"].read_bytes())
    result = import_files([structure_files["cif"], copy])
    assert [r.id for r in result.records] == ["MoS2"]
    assert result.rejected[0].reason == "duplicate id 'MoS2'"


def test_import_cli_writes_table_and_quarantine(cli, structure_files, tmp_path):
    out = tmp_path / "t.parquet"
    res = cli("data", "import", *structure_files.values(), "--out", out)
    assert res.returncode == 0, res.stderr
    assert "6 structure(s)" in res.stderr and "6 quarantined" in res.stderr
    assert len(read_records(out)) == 6
    rejected = read_quarantine(f"{out}.quarantine.csv")
    assert len(rejected) == 6 and all(r.reason for r in rejected)


def test_import_with_nothing_usable_fails_with_one_line(cli, structure_files, tmp_path):
    out = tmp_path / "t.parquet"
    res = cli("data", "import", structure_files["bad_garbage"], "--out", out)
    assert res.returncode == 1
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("topogen: error: no usable structure")
    assert not out.exists()
    (rejected,) = read_quarantine(f"{out}.quarantine.csv")  # the reasons are kept
    assert rejected.file == str(structure_files["bad_garbage"]) and "ValueError" in rejected.reason
    assert f"every reason: {out}.quarantine.csv" in lines[0]


@pytest.fixture
def two_tables(structure_files, tmp_path):
    a = import_files([structure_files["cif"], structure_files["extxyz"]], source="a")
    b = import_files([structure_files["cif"], structure_files["db"]], source="b")
    # same id as in table a but another structure: a conflict
    conflict = import_files([structure_files["poscar"]], source="b").records[0]
    conflict.id = "hBN-x"
    pa_, pb = tmp_path / "a.parquet", tmp_path / "b.parquet"
    write_records(a.records, pa_)
    write_records([*b.records, conflict], pb)
    return pa_, pb


def test_merge_drops_duplicates_and_quarantines_conflicts(cli, two_tables, tmp_path):
    out = tmp_path / "m.parquet"
    res = cli("data", "merge", *two_tables, "--out", out)
    assert res.returncode == 0, res.stderr
    assert "merged 7 rows" in res.stderr and "-> 5 unique ids" in res.stderr
    assert "dropped 1 duplicate(s) and 1 conflicting id(s)" in res.stderr
    merged = read_records(out)
    assert [r.id for r in merged] == ["MoS2", "hBN-x", "Bi2-x", "graphene-db", "Bi2-db"]
    assert merged[0].source == "a"  # first table wins
    (conflict,) = read_quarantine(f"{out}.quarantine.csv")
    assert conflict.id == "hBN-x" and conflict.file == str(two_tables[1])
    assert "different structure" in conflict.reason
