"""CrystalBERT examples from structure tables: tokens (space group by spglib), the CGCNN
graph, and a target: the lattice parameters (pretraining) or the ``topo2d`` label
(:mod:`topogen.io.labels`; topology classification)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from topogen.io.quarantine import Rejected
from topogen.io.tables import Record
from topogen.models.crystalbert.model import Example

LATTICE = ("a", "b", "c", "alpha", "beta", "gamma")  # pretraining targets (A, degrees)
TOPOLOGY_LABEL = "topo2d"  # the binary label of topogen.io.labels
CLASS_NAMES = ["trivial", "topological"]
# CGCNN graph settings of the graph token (topogen.encode.graphs.structure_graph's defaults).
GRAPH_PARAMS: dict[str, Any] = {
    "cutoff": 8.0,
    "max_neighbors": 12,
    "n_gaussians": 41,
    "atom_features": "onehot",
}


@dataclass
class ExampleSet:
    """Examples of a structure table, the ids they came from, and the rows left out."""

    examples: list[Example] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)

    def graph_dims(self) -> tuple[int, int] | None:
        g = next((e.graph for e in self.examples if e.graph is not None), None)
        return None if g is None else (int(g.x.shape[1]), int(g.edge_attr.shape[1]))


def crystal_example(
    structure: Any, graph_params: dict[str, Any] | None = None, target: Any = None
) -> Example:
    """Tokens of a structure and, when ``graph_params`` is given, its CGCNN graph."""
    from torch_geometric.data import Data

    from topogen.encode.graphs import structure_graph
    from topogen.encode.tokens import tokens_from_structure

    tokens = tokens_from_structure(structure)
    graph = None
    if graph_params is not None:
        g = structure_graph(structure, **graph_params)
        graph = Data(x=g.x, edge_index=g.edge_index, edge_attr=g.edge_attr, num_nodes=g.num_nodes)
    return Example(tokens, graph, target)


def _target(record: Record, task: str) -> Any:
    if task == "lattice":
        return np.asarray(record.structure.lattice.parameters, dtype=np.float32)
    label = record.properties.get(TOPOLOGY_LABEL)
    return None if label is None else int(label)


def table_examples(
    records: Sequence[Record], task: str, source: str, graph_params: dict[str, Any] | None
) -> ExampleSet:
    """Examples of ``task`` (``lattice`` or ``topology``) from table rows; a row without a
    label (topology) is left out silently, one that cannot be encoded is rejected with the
    reason (``source`` names the table in the quarantine)."""
    if task not in ("lattice", "topology"):
        raise ValueError(f"task must be 'lattice' or 'topology', not {task!r}")
    out = ExampleSet()
    for i, record in enumerate(records):
        target = _target(record, task)
        if target is None:
            continue
        try:
            out.examples.append(crystal_example(record.structure, graph_params, target))
        except Exception as exc:
            out.rejected.append(Rejected(source, str(i), record.id, f"{type(exc).__name__}: {exc}"))
            continue
        out.ids.append(record.id)
    return out


def formula_examples(labels: Any, source: str) -> ExampleSet:
    """Examples from a label table without structures (``space_group``, ``formula``,
    ``label`` columns, e.g. TopoA's): tokens only; a row that cannot be encoded (e.g. an
    element beyond Lr) is rejected with the reason. ``ids`` are ``"<sg> <formula>"``."""
    from topogen.encode import EncodingError
    from topogen.encode.tokens import tokens_from_formula

    out = ExampleSet()
    rows = zip(labels["space_group"], labels["formula"], labels["label"], strict=True)
    for i, (sg, formula, label) in enumerate(rows):
        rid = f"{sg} {formula}"
        try:
            tokens = tokens_from_formula(int(sg), formula)
        except EncodingError as exc:
            out.rejected.append(Rejected(source, str(i), rid, str(exc)))
            continue
        out.examples.append(Example(tokens, None, int(label)))
        out.ids.append(rid)
    return out
