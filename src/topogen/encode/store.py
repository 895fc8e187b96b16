"""Encoded data sets on disk: plain tensors in a ``torch.save`` file, loadable with
``weights_only=True`` (no pickled classes), plus the row ids they belong to.

Layout: ``{"format": "topogen-encoded/1", "kind": str, "ids": [str], "params": {...},
"tensors": {name: Tensor (stacked, one row per id) or [Tensor, ...] (one per id)}}``.
"""

from __future__ import annotations

import os
from typing import Any

import torch

from topogen.encode import EncodingError
from topogen.io.atomic import atomic_path

FORMAT = "topogen-encoded/1"


def save_encoded(
    path: str | os.PathLike[str],
    kind: str,
    ids: list[str],
    tensors: dict[str, torch.Tensor | list[torch.Tensor]],
    params: dict[str, Any] | None = None,
) -> None:
    for name, value in tensors.items():
        n = len(value) if isinstance(value, list) else value.shape[0]
        if n != len(ids):
            raise EncodingError(f"{path}: {name} has {n} rows for {len(ids)} ids")
    payload = {
        "format": FORMAT,
        "kind": kind,
        "ids": list(ids),
        "params": params or {},
        "tensors": tensors,
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_encoded(path: str | os.PathLike[str], kind: str | None = None) -> dict[str, Any]:
    """Load with ``weights_only=True``; checks the format and, if given, the kind."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt, truncated or not ours
        raise EncodingError(f"{path}: not a readable encoded data set ({exc})") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise EncodingError(f"{path}: not a {FORMAT} file")
    if kind is not None and payload["kind"] != kind:
        raise EncodingError(f"{path}: holds {payload['kind']!r}, expected {kind!r}")
    return payload
