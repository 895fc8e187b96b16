"""CGCNN band-gap model: trains, checkpoints, resumes, loads weights-only, predicts, learns."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import monolayers

from topogen.data.shared import shared_data_root
from topogen.encode.encoded import encode_table
from topogen.errors import TopogenError
from topogen.io.tables import Record, read_records, write_records
from topogen.models.cgcnn.model import gap_score, load_cgcnn, predict_gaps
from topogen.models.cgcnn.train import load_graph_set, train_cgcnn
from topogen.models.training import read_metrics
from topogen.runtime import set_threads

GRAPH_PARAMS = {"cutoff": 6.0, "max_neighbors": 8, "n_gaussians": 16, "atom_features": "onehot"}


def _encode(records, tmp_path):
    table = tmp_path / "table.parquet"
    write_records(records, table)
    graphs = tmp_path / "graphs.pt"
    assert encode_table(records, "graphs", graphs, GRAPH_PARAMS) == []
    return table, graphs


def test_gap_score_maps_to_unit_interval():
    assert gap_score(torch.tensor([-0.1, 0.0, 0.5, 1.0, 3.0])).tolist() == [0, 0, 0.5, 1, 1]


def test_trains_resumes_and_predicts(tmp_path, capsys):
    set_threads(2)
    mono = monolayers()
    from pymatgen.io.ase import AseAtomsAdaptor

    records = []
    for i, (name, atoms) in enumerate(sorted(mono.items()) * 3):
        gap = {"graphene": 0.0, "hBN": 4.6, "Bi2": 0.5, "MoS2": 1.8}[name]
        props = {"band_gap": gap} if i != 5 else {}  # one row without a gap
        records.append(Record(f"{name}-{i}", "t", AseAtomsAdaptor.get_structure(atoms), props))
    table, graphs = _encode(records, tmp_path)
    data = load_graph_set(graphs, table, "band_gap")
    assert len(data.graphs) == 11 and data.rejected[0].reason == "no finite 'band_gap'"
    work, out = tmp_path / "work", tmp_path / "cgcnn.ckpt"
    first = train_cgcnn(data, work, out, epochs=2, batch_size=4, hidden=16, accelerator="cpu")
    assert first["epochs"] == 2 and (work / "checkpoints/last.ckpt").exists()
    again = train_cgcnn(data, work, out, epochs=4, batch_size=4, hidden=16, accelerator="cpu")
    assert again["epochs"] == 4  # resumed from last.ckpt: two more epochs, not four
    metrics = read_metrics(work)  # both runs' logs kept, one row per epoch
    assert metrics["epoch"].tolist() == [0, 1, 2, 3]
    assert metrics[["train_mae", "val_mae"]].notna().all().all()
    # fewer epochs than the checkpoint holds: one clear line, nothing trained or moved
    with pytest.raises(TopogenError, match="already holds 4 epochs, more than the 3 asked for"):
        train_cgcnn(data, work, tmp_path / "x.ckpt", epochs=3, batch_size=4, hidden=16,
                    accelerator="cpu")  # fmt: skip
    assert not (tmp_path / "x.ckpt").exists()
    # a changed setting: the checkpoint is not resumed; the old work folder is kept aside
    capsys.readouterr()
    changed = train_cgcnn(data, work, tmp_path / "lr.ckpt", epochs=1, batch_size=4, hidden=16,
                          lr=3e-3, accelerator="cpu")  # fmt: skip
    assert changed["epochs"] == 1 and read_metrics(work)["epoch"].tolist() == [0]
    assert read_metrics(tmp_path / "work.stale-1")["epoch"].tolist() == [0, 1, 2, 3]
    said = capsys.readouterr().out
    assert "trained with other settings (lr)" in said and "work.stale-1" in said
    model = load_cgcnn(out)
    gaps = predict_gaps(model, [r.structure for r in records[:4]])
    assert gaps.shape == (4,) and bool((gaps >= 0).all())
    # a checkpoint from before the trunk moved into GraphEncoder (keys without "encoder.")
    ckpt = torch.load(out, map_location="cpu", weights_only=True)
    ckpt["state_dict"] = {k.removeprefix("encoder."): v for k, v in ckpt["state_dict"].items()}
    assert any(k.startswith("convs.") for k in ckpt["state_dict"])
    torch.save(ckpt, tmp_path / "legacy.ckpt")
    legacy = predict_gaps(load_cgcnn(tmp_path / "legacy.ckpt"), [r.structure for r in records[:4]])
    assert torch.equal(legacy, gaps)


@pytest.mark.slow
def test_learns_c2db_gaps_better_than_the_mean(tmp_path, cli):
    """On 600 structures of the C2DB subset, held-out MAE beats predicting the mean."""
    root = shared_data_root()
    if root is None:
        pytest.skip("../shared/data is absent (set TOPOGEN_SHARED_DATA)")
    set_threads(2)
    full = tmp_path / "c2db.parquet"
    assert cli("data", "normalize", "c2db-subset", root, "--out", full).returncode == 0
    records = read_records(full)[:600]
    table, graphs = _encode(records, tmp_path)
    data = load_graph_set(graphs, table, "band_gap")
    m = train_cgcnn(
        data, tmp_path / "w", tmp_path / "m.ckpt", epochs=8, hidden=32, accelerator="cpu"
    )
    print(json.dumps({k: v for k, v in m.items() if k != "test_ids"}))
    assert m["test_mae_ev"] < 0.85 * m["test_mae_of_train_mean_ev"]


def test_screening_uses_the_band_gap_model(cli, tmp_path):
    """`topogen screen chunk --band-gap-model`: the CGCNN fills the funnel's band-gap step."""
    import pandas as pd
    from pymatgen.io.ase import AseAtomsAdaptor

    set_threads(2)
    mono = monolayers()
    records = [
        Record(f"{name}-{i}", "t", AseAtomsAdaptor.get_structure(atoms), {"band_gap": gap})
        for i in range(2)
        for name, atoms, gap in (("hBN", mono["hBN"], 4.6), ("graphene", mono["graphene"], 0.0))
    ]
    table, graphs = _encode(records, tmp_path)
    model = tmp_path / "cgcnn.ckpt"
    train_cgcnn(
        load_graph_set(graphs, table, "band_gap"),
        tmp_path / "w",
        model,
        epochs=1,
        batch_size=2,
        hidden=8,
        accelerator="cpu",
    )
    cands = tmp_path / "cands.parquet"
    write_records(records[:2], cands)
    res = cli(
        "screen",
        "chunk",
        cands,
        "--out",
        tmp_path / "s.parquet",
        "--funnel",
        tmp_path / "f.parquet",
        "--dos",
        tmp_path / "d.npz",
        "--no-phonons",
        "--band-gap-model",
        model,
        "--band-gap-min",
        "-1",
    )
    assert res.returncode == 0, res.stderr
    assert "band_gap: 2 of 2 pass (" in res.stderr  # a progress line per funnel step
    funnel = pd.read_parquet(tmp_path / "f.parquet").set_index("id")
    assert (funnel["band_gap"] == "pass").all()
    assert funnel["predicted_band_gap"].ge(0).all()
    manifest = json.loads((tmp_path / "f.parquet.prov.json").read_text())
    assert any(i["relpath"] == "cgcnn.ckpt" for i in manifest["inputs"])


@pytest.mark.slow
def test_learns_the_shipped_mc2d_gaps_better_than_the_mean(repo_root, tmp_path):
    """The default band-gap model: the CGCNN on resources/mc2d_gaps.json.gz (258 MC2D
    monolayers), 30 epochs as in config/config.yaml; held-out MAE beats predicting the mean."""
    from topogen.data.mc2d import load_mc2d_file

    set_threads(2)
    records = load_mc2d_file(repo_root / "resources/mc2d_gaps.json.gz", source="mc2d_gaps").records
    table, graphs = _encode(records, tmp_path)
    data = load_graph_set(graphs, table, "band_gap")
    assert len(data.graphs) == 258 and not data.rejected
    m = train_cgcnn(data, tmp_path / "w", tmp_path / "m.ckpt", epochs=30, accelerator="cpu")
    print(json.dumps({k: v for k, v in m.items() if k != "test_ids"}))
    assert m["n_train"] + m["n_val"] + m["n_test"] == 258 and m["n_test"] == 26
    assert m["test_mae_ev"] < 0.9 * m["test_mae_of_train_mean_ev"]
    gaps = predict_gaps(load_cgcnn(tmp_path / "m.ckpt"), [records[0].structure])
    assert gaps.shape == (1,) and 0 <= float(gaps[0]) < 7
