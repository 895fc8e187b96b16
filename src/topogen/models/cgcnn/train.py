"""Training the band-gap CGCNN (:class:`~topogen.models.cgcnn.model.CGCNN`) on encoded graphs
joined to a target property, with the one Trainer factory."""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from typing import Any

import lightning as L
import numpy as np
import torch
from torch_geometric.data import Batch, Data
from torch_geometric.loader import DataLoader

from topogen.encode.store import load_encoded
from topogen.io.atomic import atomic_path
from topogen.io.quarantine import Rejected
from topogen.io.tables import read_table
from topogen.models.cgcnn.model import CGCNN
from topogen.models.training import fingerprint, make_trainer, resume_path


@dataclass
class GraphSet:
    """Graphs joined to a target property of the structure table."""

    ids: list[str]
    graphs: list[Data]
    params: dict[str, Any]
    rejected: list[Rejected] = field(default_factory=list)


def load_graph_set(
    graphs_path: str | os.PathLike[str], table_path: str | os.PathLike[str], target: str
) -> GraphSet:
    """Join ``graphs.pt`` rows to ``properties[target]`` of the table; rows without it are
    rejected with the reason (they cannot train a regression)."""
    store = load_encoded(graphs_path, "graphs")
    df = read_table(table_path).set_index("id")
    t = store["tensors"]
    out = GraphSet([], [], store["params"])
    for i, rid in enumerate(store["ids"]):
        value = json.loads(df.at[rid, "properties"]).get(target) if rid in df.index else None
        if value is None or not math.isfinite(float(value)):
            reason = "not in the table" if rid not in df.index else f"no finite {target!r}"
            out.rejected.append(Rejected(str(graphs_path), str(i), rid, reason))
            continue
        out.ids.append(rid)
        out.graphs.append(
            Data(
                x=t["x"][i].float(),
                edge_index=t["edge_index"][i],
                edge_attr=t["edge_attr"][i].float(),
                y=torch.tensor([float(value)]),
                num_nodes=t["x"][i].shape[0],
            )
        )
    return out


def split(n: int, seed: int, val: float = 0.1, test: float = 0.1) -> tuple[np.ndarray, ...]:
    """Seeded train/val/test indices; val and test get at least one row each when n >= 3."""
    order = np.random.default_rng(seed).permutation(n)
    n_test = max(1, round(test * n)) if n >= 3 else 0
    n_val = max(1, round(val * n)) if n >= 3 else 0
    return order[n_test + n_val :], order[n_test : n_test + n_val], order[:n_test]


def train_cgcnn(
    data: GraphSet,
    workdir: str | os.PathLike[str],
    out: str | os.PathLike[str],
    epochs: int = 50,
    seed: int = 0,
    batch_size: int = 32,
    hidden: int = 64,
    layers: int = 3,
    lr: float = 1e-3,
    accelerator: str = "auto",
) -> dict[str, Any]:
    """Train on the train split (validating each epoch), write the model to ``out``, and
    return metrics including the held-out (test split) MAE in eV."""
    if len(data.graphs) < 3:
        raise ValueError(f"CGCNN needs at least 3 structures with a target; got {len(data.graphs)}")
    L.seed_everything(seed, verbose=False)
    train_idx, val_idx, test_idx = split(len(data.graphs), seed)
    pick = lambda idx: [data.graphs[i] for i in idx]  # noqa: E731
    g0 = data.graphs[0]
    model = CGCNN(g0.x.shape[1], g0.edge_attr.shape[1], hidden, layers, lr, data.params)
    stamp = fingerprint(model, data.graphs, batch_size=batch_size, seed=seed)
    ckpt = resume_path(workdir, stamp, epochs)
    trainer = make_trainer(workdir, epochs, accelerator=accelerator)
    trainer.fit(
        model,
        DataLoader(pick(train_idx), batch_size=batch_size, shuffle=True),
        DataLoader(pick(val_idx), batch_size=batch_size),
        ckpt_path=ckpt,
    )
    model.eval()
    with torch.no_grad():
        test = Batch.from_data_list(pick(test_idx)).to(model.device)
        pred = model(test).float().cpu()
    y = test.y.cpu()
    train_mean = float(np.mean([data.graphs[i].y.item() for i in train_idx]))
    with atomic_path(out) as tmp:
        trainer.save_checkpoint(tmp)
    return {
        "n_train": len(train_idx),
        "n_val": len(val_idx),
        "n_test": len(test_idx),
        "test_mae_ev": float((pred - y).abs().mean()),
        "test_mae_of_train_mean_ev": float((y - train_mean).abs().mean()),  # the baseline
        "test_ids": [data.ids[i] for i in test_idx],
        "epochs": trainer.current_epoch,
    }
