"""Encode a whole structure table (one kind of encoding) into a data set on disk.

Each row is encoded on its own; a row that cannot be encoded (unsupported element, failed
symmetry search, ...) is rejected with the reason and the rest go on. Graphs and descriptors
are stored one tensor per row (their sizes differ); tokens are stacked, one row per id. See
:mod:`topogen.encode.store` for the file.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import torch

from topogen.encode.store import save_encoded
from topogen.io.quarantine import Rejected
from topogen.io.tables import Record
from topogen.runtime import Progress

RowEncoder = Callable[[Any], dict[str, torch.Tensor]]
GRAPH_FIELDS = ("x", "z", "pos", "cell", "edge_index", "edge_offset", "edge_distance", "edge_attr")


def _graph_encoder(records: list[Record], params: dict[str, Any]) -> RowEncoder:
    from topogen.encode.graphs import structure_graph

    keys = ("cutoff", "max_neighbors", "n_gaussians", "atom_features")

    def encode(structure: Any) -> dict[str, torch.Tensor]:
        data = structure_graph(structure, **{k: params[k] for k in keys})
        return {name: getattr(data, name) for name in GRAPH_FIELDS}

    return encode


def _token_encoder(records: list[Record], params: dict[str, Any]) -> RowEncoder:
    from topogen.encode.tokens import collate_tokens, tokens_from_structure

    def encode(structure: Any) -> dict[str, torch.Tensor]:
        batch = collate_tokens([tokens_from_structure(structure, params["symprec"])])
        return {name: value[0] for name, value in batch.items()}

    return encode


def _descriptor_encoder(records: list[Record], params: dict[str, Any]) -> RowEncoder:
    from topogen.encode.descriptors import PowerSpectrum

    species = sorted({site.specie.Z for r in records for site in r.structure})
    keys = ("r_cut", "n_max", "l_max", "radial")
    model = PowerSpectrum(species, **{k: params[k] for k in keys})
    params["species"] = species  # recorded with the data set: it fixes the channel order

    def encode(structure: Any) -> dict[str, torch.Tensor]:
        desc, _ = model.encode([structure])
        return {"descriptors": desc.detach().to(torch.float32)}

    return encode


ENCODERS: dict[str, tuple[Callable[[list[Record], dict[str, Any]], RowEncoder], bool]] = {
    "graphs": (_graph_encoder, False),  # (factory, stacked)
    "tokens": (_token_encoder, True),
    "descriptors": (_descriptor_encoder, False),
}


def encode_table(
    records: list[Record],
    kind: str,
    out: str | os.PathLike[str],
    params: dict[str, Any],
    source: str = "",
) -> list[Rejected]:
    """Encode ``records`` with the ``kind`` encoder into ``out``; returns the rejected rows."""
    factory, stacked = ENCODERS[kind]
    params = dict(params)
    encode = factory(records, params)
    ids: list[str] = []
    rows: list[dict[str, torch.Tensor]] = []
    rejected: list[Rejected] = []
    meter = Progress(f"encode {kind}", len(records))
    for i, rec in enumerate(records):
        try:
            rows.append(encode(rec.structure))
            ids.append(rec.id)
        except Exception as exc:  # the reason goes to quarantine; the table continues
            reason = " ".join(f"{type(exc).__name__}: {exc}".split())[:500]
            rejected.append(Rejected(str(source), str(i), rec.id, reason))
        meter.update(i + 1)
    names = rows[0].keys() if rows else ()
    tensors: dict[str, torch.Tensor | list[torch.Tensor]] = {
        name: torch.stack([r[name] for r in rows]) if stacked else [r[name] for r in rows]
        for name in names
    }
    save_encoded(out, kind, ids, tensors, params)
    return rejected
