"""Crystal graph convolutional network (Xie & Grossman, PRL 120, 145301 (2018)) for band gaps.

Used by the three-stage GAN's Stage III and by the screening funnel as the band-gap oracle:
:func:`gap_score` maps a predicted gap to [0, 1] (0 metal, 1 for a gap of at least 1 eV).
Inputs are the graphs of ``topogen encode graphs`` (atom features, Gaussian-expanded
distances); the gap head ends in a softplus, so predictions are never negative.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch import nn
from torch_geometric.data import Batch, Data
from torch_geometric.loader import DataLoader
from torch_geometric.nn import CGConv, global_mean_pool

from topogen.encode.store import load_encoded
from topogen.io.atomic import atomic_path
from topogen.io.quarantine import Rejected
from topogen.io.tables import read_table
from topogen.models.training import make_trainer, resume_path

FULL_GAP = 1.0  # eV: a gap this large or larger scores 1


def gap_score(gap: torch.Tensor | float, full: float = FULL_GAP) -> torch.Tensor:
    """Predicted gap -> [0, 1]: 0 for a metal, 1 for a gap of at least ``full`` eV."""
    return torch.clamp(torch.as_tensor(gap) / full, 0.0, 1.0)


class CGCNN(L.LightningModule):
    """Atom embedding -> ``layers`` CGConv blocks -> mean pool -> MLP -> softplus gap (eV)."""

    def __init__(
        self,
        node_dim: int,
        edge_dim: int,
        hidden: int = 64,
        layers: int = 3,
        lr: float = 1e-3,
        graph_params: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.embed = nn.Linear(node_dim, hidden)
        self.convs = nn.ModuleList(
            CGConv(hidden, dim=edge_dim, batch_norm=True) for _ in range(layers)
        )
        self.head = nn.Sequential(nn.Linear(hidden, hidden), nn.Softplus(), nn.Linear(hidden, 1))

    def embedding(self, batch: Batch) -> torch.Tensor:
        """(B, hidden) crystal embeddings (CrystalBERT's graph token uses these)."""
        h = self.embed(batch.x)
        for conv in self.convs:
            h = nn.functional.softplus(conv(h, batch.edge_index, batch.edge_attr))
        return global_mean_pool(h, batch.batch)

    def forward(self, batch: Batch) -> torch.Tensor:
        return nn.functional.softplus(self.head(self.embedding(batch))).squeeze(-1)

    def _step(self, batch: Batch, stage: str) -> torch.Tensor:
        pred = self(batch)
        loss = nn.functional.mse_loss(pred, batch.y)
        mae = (pred - batch.y).abs().mean()
        self.log(f"{stage}_loss", loss, batch_size=batch.num_graphs, on_epoch=True, on_step=False)
        self.log(f"{stage}_mae", mae, batch_size=batch.num_graphs, on_epoch=True, on_step=False)
        return loss

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        self._step(batch, "val")

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr)


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
    trainer = make_trainer(workdir, epochs, accelerator=accelerator)
    trainer.fit(
        model,
        DataLoader(pick(train_idx), batch_size=batch_size, shuffle=True),
        DataLoader(pick(val_idx), batch_size=batch_size),
        ckpt_path=resume_path(workdir),
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


def load_cgcnn(path: str | os.PathLike[str]) -> CGCNN:
    """A trained model, loaded with ``weights_only=True`` (its hyperparameters are plain)."""
    return CGCNN.load_from_checkpoint(Path(path), map_location="cpu", weights_only=True).eval()


def predict_gaps(model: CGCNN, structures: list[Any]) -> torch.Tensor:
    """Predicted gaps (eV) of pymatgen structures, graphs built as the model was trained."""
    from topogen.encode.graphs import structure_graph

    p = model.hparams.graph_params
    keys = ("cutoff", "max_neighbors", "n_gaussians", "atom_features")
    graphs = [structure_graph(s, **{k: p[k] for k in keys}) for s in structures]
    batch = Batch.from_data_list(
        [
            Data(
                x=g.x.float(),
                edge_index=g.edge_index,
                edge_attr=g.edge_attr.float(),
                num_nodes=g.num_nodes,
            )
            for g in graphs
        ]
    )
    with torch.no_grad():
        return model(batch.to(model.device)).float().cpu()
