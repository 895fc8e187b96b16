"""Structure tables: lossless Parquet round trip, schema checks, atomic writes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from pymatgen.core import Lattice, Molecule, Structure

from topogen.errors import TableSchemaError
from topogen.io.atomic import atomic_open, write_text
from topogen.io.tables import (
    COLUMNS,
    Record,
    iter_records,
    read_records,
    read_table,
    records_to_frame,
    write_records,
    write_table,
)


def _records() -> list[Record]:
    rng = np.random.default_rng(7)
    lattice = Lattice.from_parameters(3.19, 3.19, 20.0, 90, 90, 120)
    mos2 = Structure(lattice, ["Mo", "S", "S"], [[1 / 3, 2 / 3, 0.5], [2 / 3, 1 / 3, 0.58],
                                                 [2 / 3, 1 / 3, 0.42]])  # fmt: skip
    mos2.add_site_property("magmom", [0.0, 0.1, -0.1])
    triclinic = Structure(
        Lattice.from_parameters(4.1, 5.3, 6.7, 81.3, 99.1, 107.7),
        ["Si", "O", "O"],
        rng.random((3, 3)),
    )
    water = Molecule(["O", "H", "H"], [[0, 0, 0], [0.757, 0.586, 0], [-0.757, 0.586, 0]])
    return [
        Record("mos2", "test", mos2, {"gap": np.float64(1.8), "label": "trivial", "n": 3}),
        Record("tri", "test", triclinic, {"gap": float("nan"), "tags": [1, 2]}),
        Record("h2o", "qm9", water, {}),
    ]


def test_round_trip_is_lossless(tmp_path):
    records = _records()
    path = write_records(records, tmp_path / "t.parquet")
    back = read_records(path)
    assert [r.id for r in back] == [r.id for r in records]
    for a, b in zip(records, back, strict=True):
        assert type(a.structure) is type(b.structure)
        assert a.structure == b.structure
        # exact coordinates, not merely within a tolerance
        assert np.array_equal(a.structure.cart_coords, b.structure.cart_coords)
        assert a.structure.site_properties == b.structure.site_properties
        assert b.formula == a.formula
    assert back[0].properties == {"gap": 1.8, "label": "trivial", "n": 3}
    assert back[1].properties == {"gap": None, "tags": [1, 2]}  # NaN stored as null
    df = read_table(path)
    assert list(df.columns[:5]) == list(COLUMNS)
    meta = pq.read_schema(path).metadata
    assert meta[b"topogen.schema"] == b"structure-table/1"


def test_extra_columns_are_kept(tmp_path):
    df = records_to_frame(_records()).assign(score=[0.1, 0.2, 0.3])
    write_table(df, tmp_path / "t.parquet")
    assert read_table(tmp_path / "t.parquet")["score"].tolist() == [0.1, 0.2, 0.3]


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda df: df.drop(columns=["formula"]), "missing column(s) formula"),
        (lambda df: df.assign(id=["a", "a", "b"]), "row 1: duplicate id 'a'"),
        (lambda df: df.assign(source=["x", None, "y"]), "row 1: empty value in column 'source'"),
    ],
)
def test_schema_errors_name_file_row_and_reason(tmp_path, mutate, message):
    df = mutate(records_to_frame(_records()))
    bad = tmp_path / "bad.parquet"
    df.to_parquet(bad)  # written behind the schema check's back
    with pytest.raises(TableSchemaError) as err:
        read_table(bad)
    assert str(bad) in str(err.value) and message in str(err.value)
    with pytest.raises(TableSchemaError):
        write_table(df, tmp_path / "never.parquet")
    assert not (tmp_path / "never.parquet").exists()


def test_undecodable_row_is_named(tmp_path):
    df = records_to_frame(_records())
    df.loc[1, "structure"] = '{"not": "a structure"}'
    write_table(df, tmp_path / "t.parquet")
    with pytest.raises(TableSchemaError, match=r"t.parquet: row 1 \(id 'tri'\)"):
        list(iter_records(read_table(tmp_path / "t.parquet"), tmp_path / "t.parquet"))


def test_not_parquet_is_a_clear_error(tmp_path):
    p = tmp_path / "x.parquet"
    p.write_text("not parquet")
    with pytest.raises(TableSchemaError, match="not a readable Parquet file"):
        read_table(p)


def test_failed_write_keeps_previous_content_and_no_temp(tmp_path):
    target = tmp_path / "out.txt"
    write_text(target, "old\n")
    with pytest.raises(RuntimeError), atomic_open(target) as fh:
        fh.write("half of the new conte")
        raise RuntimeError("simulated crash mid-write")
    assert target.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_killed_writer_leaves_no_partial_file(tmp_path):
    """A real process is SIGKILLed in the middle of writing a table: nothing partial appears."""
    target = tmp_path / "big.parquet"
    script = textwrap.dedent(
        f"""
        import time
        from topogen.io.atomic import atomic_open
        with atomic_open({str(target)!r}, "wb") as fh:
            for _ in range(10_000):
                fh.write(b"x" * 65536)
                fh.flush()
                time.sleep(0.01)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script])
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            temps = [p for p in tmp_path.iterdir() if p.name.startswith(".big.parquet.tmp-")]
            if temps and temps[0].stat().st_size > 1_000_000:
                break
            time.sleep(0.05)
        else:
            pytest.fail("writer never started")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == -signal.SIGKILL
    assert not target.exists()


def test_properties_are_json(tmp_path):
    write_records(_records(), tmp_path / "t.parquet")
    df = pd.read_parquet(tmp_path / "t.parquet")
    assert json.loads(df.loc[0, "properties"])["label"] == "trivial"


def _tmpfs(path, options: str) -> None:
    path.mkdir()
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
                         capture_output=True, text=True)  # fmt: skip
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {res.stderr.strip()}")


@pytest.fixture
def full_disk(tmp_path):
    """A real, nearly full file system: a 64 KiB tmpfs with 60 KB taken (root only)."""
    _tmpfs(tmp_path / "full", "size=64k")
    (tmp_path / "full/filler").write_bytes(b"\0" * 60_000)
    yield tmp_path / "full"
    subprocess.run(["umount", str(tmp_path / "full")], check=True)


@pytest.fixture
def read_only_disk(tmp_path):
    """A real read-only file system (root ignores permissions, not a read-only mount)."""
    _tmpfs(tmp_path / "ro", "size=64k,ro")
    yield tmp_path / "ro"
    subprocess.run(["umount", str(tmp_path / "ro")], check=True)


def test_a_read_only_disk_is_found_before_the_work(read_only_disk, cli, tmp_path):
    table = tmp_path / "t.parquet"
    write_records(_records(), table)
    out = read_only_disk / "summary.png"
    res = cli("report", "table", table, "--plot", out, "--summary", tmp_path / "s.json")
    assert res.returncode == 1 and not (tmp_path / "s.json").exists()
    assert res.stderr == (
        f"topogen: error: {out}: cannot write there (Read-only file system); nothing was run\n"
    )


def test_a_full_disk_is_named_in_one_line_and_leaves_nothing(full_disk, cli, tmp_path):
    table = tmp_path / "t.parquet"
    write_records(_records(), table)
    out = full_disk / "summary.png"
    res = cli("report", "table", table, "--plot", out, "--summary", full_disk / "s.json")
    assert res.returncode == 1
    assert res.stderr == f"topogen: error: {out}: cannot write (No space left on device); " + (
        "nothing was written there\n"
    )
    assert sorted(p.name for p in full_disk.iterdir()) == ["filler"]  # no temp, no manifest
