"""Crystal graph convolutional network (Xie & Grossman, PRL 120, 145301 (2018)) for band gaps.

Used by the three-stage GAN's Stage III and by the screening funnel as the band-gap oracle:
:func:`gap_score` maps a predicted gap to [0, 1] (0 metal, 1 for a gap of at least 1 eV).
Inputs are the graphs of ``topogen encode graphs`` (atom features, Gaussian-expanded
distances); the gap head ends in a softplus, so predictions are never negative.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import nn
from torch_geometric.data import Batch, Data
from torch_geometric.nn import CGConv, global_mean_pool

FULL_GAP = 1.0  # eV: a gap this large or larger scores 1


def gap_score(gap: torch.Tensor | float, full: float = FULL_GAP) -> torch.Tensor:
    """Predicted gap -> [0, 1]: 0 for a metal, 1 for a gap of at least ``full`` eV."""
    return torch.clamp(torch.as_tensor(gap) / full, 0.0, 1.0)


class GraphEncoder(nn.Module):
    """Atom embedding -> ``layers`` CGConv blocks -> mean pool: (B, hidden) crystal
    embeddings (the band-gap CGCNN's trunk and CrystalBERT's graph token)."""

    def __init__(self, node_dim: int, edge_dim: int, hidden: int = 64, layers: int = 3) -> None:
        super().__init__()
        self.embed = nn.Linear(node_dim, hidden)
        self.convs = nn.ModuleList(
            CGConv(hidden, dim=edge_dim, batch_norm=True) for _ in range(layers)
        )

    def forward(self, batch: Batch) -> torch.Tensor:
        h = self.embed(batch.x)
        for conv in self.convs:
            h = nn.functional.softplus(conv(h, batch.edge_index, batch.edge_attr))
        return global_mean_pool(h, batch.batch, size=batch.num_graphs)


LEGACY_TRUNK = ("embed.", "convs.")  # trunk keys of checkpoints older than GraphEncoder


class CGCNN(L.LightningModule):
    """:class:`GraphEncoder` -> MLP -> softplus gap (eV)."""

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
        self.encoder = GraphEncoder(node_dim, edge_dim, hidden, layers)
        self.head = nn.Sequential(nn.Linear(hidden, hidden), nn.Softplus(), nn.Linear(hidden, 1))

    def forward(self, batch: Batch) -> torch.Tensor:
        return nn.functional.softplus(self.head(self.encoder(batch))).squeeze(-1)

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

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Checkpoints written before the trunk became :class:`GraphEncoder` (its weights at
        the top level: ``embed.*``, ``convs.*``) load too."""
        state = checkpoint.get("state_dict", {})
        for key in [k for k in state if k.startswith(LEGACY_TRUNK)]:
            state[f"encoder.{key}"] = state.pop(key)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr)


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
