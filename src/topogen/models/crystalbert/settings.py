"""Every hyper-parameter of CrystalBERT, each default stated once (config train.crystalbert).
Where the paper (Xu, Qian, Wang et al., arXiv:2405.18944) gives a value it is used; the others
are ours and say so."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

# Token families, each switchable for the paper's ablations (Table 1): the five space-group
# tokens, the 14-bit electron count, the fraction-weighted element vector, the CGCNN token.
FAMILIES = ("space_group", "electrons", "elements", "graph")


@dataclass
class CrystalBertSettings:
    """Model and training settings.

    ``width``/``layers``/``heads``: the token embedding width and the transformer encoder
    (paper: 256, 5 layers, 4 heads); ``dropout`` (ours: 0.1, PyTorch's default);
    ``lr``/``weight_decay``/``batch_size``: AdamW (paper: AdamW, batch 64; the learning rate
    and weight decay are ours: 3e-4 and 0.01); ``epochs``; ``warmup``: epochs of linear
    learning-rate warm-up before a cosine decay to zero (ours); ``space_group``,
    ``electrons``, ``elements``, ``graph``: the token families used (ablations);
    ``transformer``: False replaces the encoder by one fully connected layer on the
    concatenated token embeddings (the paper's "no transformer" ablation); ``graph_hidden``/
    ``graph_layers``: the jointly trained CGCNN that makes the graph token (the band-gap
    CGCNN's defaults); ``seed``.
    """

    width: int = 256
    layers: int = 5
    heads: int = 4
    dropout: float = 0.1
    lr: float = 3e-4
    weight_decay: float = 0.01
    batch_size: int = 64
    epochs: int = 40
    warmup: int = 2
    space_group: bool = True
    electrons: bool = True
    elements: bool = True
    graph: bool = True
    transformer: bool = True
    graph_hidden: int = 64
    graph_layers: int = 3
    seed: int = 0

    def families(self) -> tuple[str, ...]:
        """The token families switched on, in :data:`FAMILIES` order."""
        return tuple(f for f in FAMILIES if getattr(self, f))

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
