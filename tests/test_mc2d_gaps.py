"""The shipped MC2D gap table (resources/mc2d_gaps.json.gz) and its reader (source mc2d-gaps)."""

from __future__ import annotations

import gzip
import json

import pytest

from topogen.data.mc2d import load_mc2d_file, write_gap_table
from topogen.data.shared import ReferenceDataError, shared_data_root
from topogen.io.tables import read_records


def test_shipped_table_reads_every_monolayer_with_its_gap(repo_root):
    path = repo_root / "resources/mc2d_gaps.json.gz"
    assert path.stat().st_size < 40_000  # small enough to ship
    result = load_mc2d_file(path, source="mc2d_gaps")
    assert len(result.records) == 258 and not result.rejected
    by_id = {r.id: r for r in result.records}
    mos2 = by_id["MoS2-c63547f0"]  # 2H-MoS2: PBE gap 1.6 eV in MC2D
    assert mos2.source == "mc2d_gaps"
    assert mos2.properties["band_gap"] == pytest.approx(1.6)
    assert mos2.structure.composition.reduced_formula == "MoS2"
    assert by_id["BN-0e329ca7"].properties["band_gap"] == pytest.approx(4.7)
    assert by_id["C2-fdcf3c57"].properties["band_gap"] == 0.0  # graphene
    assert all(0 <= r.properties["band_gap"] < 7 for r in result.records)
    assert sum(r.properties["band_gap"] > 0 for r in result.records) == 166
    assert mos2.properties["magnetic_state"] == "NM"
    assert 2.9 < mos2.structure.lattice.a < 3.3


def test_derived_table_is_reproducible_from_the_reference_copy(repo_root, tmp_path):
    root = shared_data_root()
    if root is None:
        pytest.skip("../shared/data is absent (set TOPOGEN_SHARED_DATA)")
    out = tmp_path / "gaps.json.gz"
    assert write_gap_table(root / "mc2d-v4/structures.json", out) == 258
    assert out.read_bytes() == (repo_root / "resources/mc2d_gaps.json.gz").read_bytes()
    assert write_gap_table(root / "mc2d-v4/structures.json", out, max_atoms=3) < 258


def test_bad_rows_are_quarantined_with_their_reason(repo_root, tmp_path):
    with gzip.open(repo_root / "resources/mc2d_gaps.json.gz") as fh:
        entries = json.load(fh)[:3]
    entries[1]["atomic_positions"] = entries[1]["atomic_positions"][:1] * 2  # two atoms at once
    entries[2]["cell"] = entries[2]["cell"][:2]
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(entries))
    result = load_mc2d_file(path)
    assert [r.id for r in result.records] == [entries[0]["structure_label"]]
    reasons = {r.id: r.reason for r in result.rejected}
    assert set(reasons) == {entries[1]["structure_label"], entries[2]["structure_label"]}
    assert "'cell' is not three" in reasons[entries[2]["structure_label"]]
    assert {r.item for r in result.rejected} == {"1", "2"}


def test_broken_file_is_a_clear_error(tmp_path):
    path = tmp_path / "cut.json.gz"
    path.write_bytes(gzip.compress(b'[{"structure_label": "x"')[:-6])
    with pytest.raises(ReferenceDataError, match=r"cut\.json\.gz: not valid"):
        load_mc2d_file(path)


def test_normalize_cli_writes_the_table(cli, repo_root, tmp_path):
    out = tmp_path / "gaps.parquet"
    res = cli(
        "data", "normalize", "mc2d-gaps", repo_root / "resources/mc2d_gaps.json.gz", "--out", out
    )
    assert res.returncode == 0, res.stderr
    records = read_records(out)
    assert len(records) == 258 and {r.source for r in records} == {"mc2d_gaps"}
