"""Provenance records: the chosen UPF files with their sha256, and whole families, checked
again when a later step loads them."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from topogen.dft.pseudos import PseudoError
from topogen.dft.pseudos.lookup import pseudos_for
from topogen.dft.pseudos.sources import PseudoFamily
from topogen.dft.pseudos.upf import read_upf_header, upf_files
from topogen.io.provenance import sha256 as file_sha256

__all__ = ["family_record", "load_family", "pseudo_record"]


def pseudo_record(pseudos: Mapping[str, Path]) -> dict[str, dict[str, Any]]:
    """``{element: {path, sha256, z_valence, relativistic}}`` for a provenance record."""
    out = {}
    for el, p in pseudos.items():
        h = read_upf_header(p)
        out[el] = {
            "path": str(p),
            "sha256": file_sha256(p),
            "z_valence": h.z_valence,
            "fully_relativistic": h.fully_relativistic,
            "functional": h.functional,
        }
    return out


def family_record(family: PseudoFamily) -> dict[str, Any]:
    """Where a family came from and the sha256 of every UPF file in it (a small JSON record
    that later steps check their files against)."""
    return {
        "family": family.as_dict(),
        "files": {p.name: file_sha256(p) for p in upf_files(family.directory)},
    }


def load_family(
    record: str | os.PathLike[str] | Mapping[str, Any],
    elements: Sequence[str] = (),
    fully_relativistic: bool | None = True,
) -> PseudoFamily:
    """The family of a :func:`family_record` (a dict or its JSON file); the files chosen for
    ``elements`` must still have the recorded sha256."""
    where = "record" if isinstance(record, Mapping) else str(record)
    if not isinstance(record, Mapping):
        try:
            record = json.loads(Path(record).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise PseudoError(f"{where}: unreadable pseudopotential record ({exc})") from None
    try:
        info, files = dict(record["family"]), dict(record["files"])
        family = PseudoFamily(
            Path(info["directory"]), info["source"], info["origin"], info.get("origin_sha256")
        )
    except (KeyError, TypeError) as exc:
        raise PseudoError(f"{where}: not a pseudopotential record (missing {exc})") from None
    for el, path in pseudos_for(elements, family, fully_relativistic).items():
        wanted, got = files.get(path.name), file_sha256(path)
        if wanted != got:
            raise PseudoError(
                f"{path}: sha256 {got} differs from {wanted} recorded in {where} for {el}; "
                "the family changed since `topogen dft pseudos` ran"
            )
    return family
