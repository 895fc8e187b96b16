"""CrystalBERT (Xu, Qian, Wang et al., arXiv:2405.18944): a transformer over crystal tokens.

Tokens (:mod:`topogen.encode.tokens`), each embedded to ``width``:

* five space-group tokens (Hermann-Mauguin symbol, point group, crystal system, Laue class,
  symmetry class) from one embedding table over the vocabulary;
* the 14-bit electron count, through a linear layer;
* the fraction-weighted element vector: ``sum_Z f_Z e_Z`` with a learned vector ``e_Z`` per
  element (a bias-free linear layer on the fraction vector);
* the graph token: the mean-pooled embedding of a CGCNN (:class:`~topogen.models.cgcnn.
  model.GraphEncoder`, trained jointly) when the crystal has a structure; a learned
  "no structure" vector otherwise (TopoA gives none).

A learned position embedding per token slot is added; a pre-norm transformer encoder
(paper: 5 layers, 4 heads) mixes the tokens, and the output tokens, concatenated, are the
crystal's feature vector; each task has one linear head on it (regression: MSE;
classification: cross-entropy). The paper's ablations switch token families off or
replace the encoder by one fully connected layer (:class:`~topogen.models.crystalbert.
settings.CrystalBertSettings`).

Departures: the feed-forward width of the encoder layers (2 x width) and the dropout are
ours (the paper does not give them); the missing-structure vector is ours (the paper always
has a structure for its graph token).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch_geometric.data import Batch, Data

from topogen.encode.elements import MAX_Z
from topogen.encode.tokens import N_ELECTRON_BITS, TOKEN_KINDS, CrystalTokens, vocabulary
from topogen.models.cgcnn.model import GraphEncoder
from topogen.models.crystalbert.settings import CrystalBertSettings


@dataclass
class Example:
    """One crystal: its tokens, its CGCNN graph (None without a structure), its target
    (class index, or a vector for regression; None when only predicting)."""

    tokens: CrystalTokens
    graph: Data | None = None
    target: Any = None


def collate(examples: Sequence[Example]) -> dict[str, Any]:
    """A batch: ``token_ids`` (B, 5), ``electron_bits`` (B, 14), ``element_fractions``
    (B, MAX_Z), ``graphs`` (a Batch of the crystals that have one, or None), ``has_graph``
    (B,) bool and ``target`` (B,) long or (B, T) float when every example has one."""
    batch: dict[str, Any] = {
        "token_ids": torch.tensor([e.tokens.token_ids for e in examples], dtype=torch.long),
        "electron_bits": torch.stack([torch.as_tensor(e.tokens.electron_bits) for e in examples]),
        "element_fractions": torch.stack(
            [torch.as_tensor(e.tokens.element_fractions) for e in examples]
        ),
        "has_graph": torch.tensor([e.graph is not None for e in examples], dtype=torch.bool),
    }
    graphs = [e.graph for e in examples if e.graph is not None]
    batch["graphs"] = Batch.from_data_list(graphs) if graphs else None
    if all(e.target is not None for e in examples):
        targets = [torch.as_tensor(e.target) for e in examples]
        batch["target"] = torch.stack(targets)
    return batch


class CrystalBert(nn.Module):
    """Token embeddings -> transformer encoder (or one dense layer) -> concatenated output
    tokens -> one linear head per task. ``tasks``: name -> output size (classes, or
    regression targets); ``graph_dims``: (node features, edge features) of the CGCNN graphs,
    needed when the graph family is on."""

    def __init__(
        self,
        settings: CrystalBertSettings,
        tasks: dict[str, int],
        graph_dims: tuple[int, int] | None = None,
    ) -> None:
        super().__init__()
        s = self.settings = settings
        families = s.families()
        if not families:
            raise ValueError("CrystalBERT needs at least one token family")
        width = s.width
        n_tokens = 0
        if s.space_group:
            self.space_group = nn.Embedding(len(vocabulary()), width)
            n_tokens += len(TOKEN_KINDS)
        if s.electrons:
            self.electrons = nn.Linear(N_ELECTRON_BITS, width)
            n_tokens += 1
        if s.elements:
            self.elements = nn.Linear(MAX_Z, width, bias=False)
            n_tokens += 1
        if s.graph:
            if graph_dims is None:
                raise ValueError("the graph token needs graph_dims (node, edge feature sizes)")
            self.graph = GraphEncoder(*graph_dims, s.graph_hidden, s.graph_layers)
            self.graph_proj = nn.Linear(s.graph_hidden, width)
            self.no_graph = nn.Parameter(torch.zeros(width))
            n_tokens += 1
        self.n_tokens = n_tokens
        self.position = nn.Parameter(torch.randn(n_tokens, width) * 0.02)
        features = n_tokens * width
        if s.transformer:
            layer = nn.TransformerEncoderLayer(
                width,
                s.heads,
                dim_feedforward=2 * width,
                dropout=s.dropout,
                activation="gelu",
                batch_first=True,
                norm_first=True,
            )
            self.encoder: nn.Module = nn.TransformerEncoder(
                layer, s.layers, norm=nn.LayerNorm(width), enable_nested_tensor=False
            )
        else:
            self.encoder = nn.Sequential(
                nn.Flatten(), nn.Linear(features, features), nn.GELU(), nn.Dropout(s.dropout)
            )
        self.heads = nn.ModuleDict({name: nn.Linear(features, out) for name, out in tasks.items()})

    def tokens(self, batch: dict[str, Any]) -> torch.Tensor:
        """(B, n_tokens, width) token embeddings of the switched-on families."""
        parts = []
        if self.settings.space_group:
            parts.append(self.space_group(batch["token_ids"]))
        if self.settings.electrons:
            parts.append(self.electrons(batch["electron_bits"]).unsqueeze(1))
        if self.settings.elements:
            parts.append(self.elements(batch["element_fractions"]).unsqueeze(1))
        if self.settings.graph:
            has = batch["has_graph"]
            token = self.no_graph.expand(has.shape[0], -1).clone()
            if batch["graphs"] is not None:
                token[has] = self.graph_proj(self.graph(batch["graphs"])).to(token.dtype)
            parts.append(token.unsqueeze(1))
        return torch.cat(parts, dim=1) + self.position

    def features(self, batch: dict[str, Any]) -> torch.Tensor:
        """(B, n_tokens * width): the output tokens, concatenated."""
        out = self.encoder(self.tokens(batch))
        return out.flatten(1)

    def forward(self, batch: dict[str, Any], task: str) -> torch.Tensor:
        return self.heads[task](self.features(batch))

    def token_slots(self) -> list[str]:
        """Names of the token slots, in order (e.g. ``hm``, ..., ``electrons``)."""
        names: list[str] = []
        if self.settings.space_group:
            names += list(TOKEN_KINDS)
        names += [f for f in ("electrons", "elements", "graph") if getattr(self.settings, f)]
        return names


def n_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
