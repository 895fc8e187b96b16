"""`topogen encode ...`: whole tables to weights-only data sets, with quarantine."""

from __future__ import annotations

import pytest
import torch
from pymatgen.core import Molecule

from topogen.encode import EncodingError
from topogen.encode.graphs import structure_graph
from topogen.encode.store import load_encoded
from topogen.io.quarantine import read_quarantine
from topogen.io.tables import Record, read_records, write_records


@pytest.fixture
def table(cli, repo_root, tmp_path):
    path = tmp_path / "demo.parquet"
    files = sorted((repo_root / "resources/structures").iterdir())
    assert cli("data", "import", *files, "--out", path).returncode == 0
    records = read_records(path)
    water = Molecule(["O", "H", "H"], [[0, 0, 0], [0.76, 0.59, 0], [-0.76, 0.59, 0]])
    write_records([*records, Record("water", "test", water, {})], path)
    return path


def test_graphs_match_the_library_and_load_weights_only(cli, table, tmp_path):
    out = tmp_path / "graphs.pt"
    res = cli("encode", "graphs", table, "--out", out, "--cutoff", "6", "--max-neighbors", "8")
    assert res.returncode == 0, res.stderr
    data = load_encoded(out, "graphs")  # torch.load(weights_only=True) inside
    records = {r.id: r for r in read_records(table)}
    assert data["ids"] == list(records)  # the molecule is a graph too (no periodicity)
    i = data["ids"].index("MoS2")
    ref = structure_graph(records["MoS2"].structure, cutoff=6, max_neighbors=8)
    assert torch.equal(data["tensors"]["edge_index"][i], ref.edge_index)
    assert torch.allclose(data["tensors"]["edge_attr"][i], ref.edge_attr)
    assert data["params"]["cutoff"] == 6.0


def test_tokens_quarantine_what_has_no_space_group(cli, table, tmp_path):
    out = tmp_path / "tokens.pt"
    res = cli("encode", "tokens", table, "--out", out)
    assert res.returncode == 0, res.stderr
    data = load_encoded(out, "tokens")
    assert "water" not in data["ids"] and len(data["ids"]) == 9
    assert data["tensors"]["token_ids"].shape == (9, 5)
    assert data["tensors"]["electron_bits"].shape == (9, 14)
    (rej,) = read_quarantine(f"{out}.quarantine.csv")
    assert rej.id == "water" and rej.reason


def test_a_row_that_does_not_decode_is_quarantined_not_fatal(cli, table, tmp_path):
    """A structure JSON without its lattice used to stop the whole stage with a bare
    'lattice' KeyError; now that row is quarantined with the reason and the rest encode."""
    import json

    from topogen.io.tables import read_table, write_table

    df = read_table(table)
    broken = json.loads(df.loc[2, "structure"])
    del broken["lattice"]
    df.loc[2, "structure"] = json.dumps(broken)
    write_table(df, tmp_path / "broken.parquet")
    out = tmp_path / "graphs.pt"
    res = cli("encode", "graphs", tmp_path / "broken.parquet", "--out", out)
    assert res.returncode == 0, res.stderr
    assert load_encoded(out, "graphs")["ids"] == [i for k, i in enumerate(df["id"]) if k != 2]
    (rej,) = read_quarantine(f"{out}.quarantine.csv")
    assert (rej.item, rej.id) == ("2", df["id"][2])
    assert rej.reason == "the structure column does not decode (KeyError: 'lattice')"


def test_descriptors_record_their_species(cli, table, tmp_path):
    out = tmp_path / "desc.pt"
    res = cli("encode", "descriptors", table, "--out", out, "--n-max", "2", "--l-max", "2")
    assert res.returncode == 0, res.stderr
    data = load_encoded(out, "descriptors")
    species = data["params"]["species"]
    assert species == sorted(species) and 42 in species and 8 in species
    mos2 = data["tensors"]["descriptors"][data["ids"].index("MoS2")]
    assert mos2.shape[0] == 3 and torch.isfinite(mos2).all()


def test_wrong_or_corrupt_files_are_named(cli, table, tmp_path):
    out = tmp_path / "tokens.pt"
    assert cli("encode", "tokens", table, "--out", out).returncode == 0
    with pytest.raises(EncodingError, match="holds 'tokens', expected 'graphs'"):
        load_encoded(out, "graphs")
    out.write_bytes(out.read_bytes()[:100])
    with pytest.raises(EncodingError, match="not a readable encoded data set"):
        load_encoded(out)
