"""Materials Project (Jain et al., APL Mater. 1, 011002 (2013)) through ``mp-api``.

:func:`query_mp` pages through the summary endpoint with the query from the config and writes
the raw documents (gzipped JSON) atomically; :func:`load_mp` turns them into a table. The API
key is read from the environment variable ``MP_API_KEY`` only, and never written anywhere.
"""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from topogen.data.importers import error_reason
from topogen.errors import TopogenError
from topogen.io.atomic import atomic_open
from topogen.io.tables import LoadResult, Record
from topogen.structure.sanity import structure_problem

API_KEY_ENV = "MP_API_KEY"
FIELDS = (
    "material_id", "structure", "band_gap", "energy_above_hull", "formation_energy_per_atom",
    "symmetry", "database_IDs", "is_stable", "is_magnetic", "theoretical",
)  # fmt: skip


def query_mp(
    out: str | os.PathLike[str],
    elements: Sequence[str] | None = None,
    exclude_elements: Sequence[str] | None = None,
    num_sites: tuple[int, int] | None = None,
    energy_above_hull_max: float | None = None,
    band_gap: tuple[float, float] | None = None,
    chunk_size: int = 1000,
    num_chunks: int | None = None,
) -> int:
    """Download summary documents matching the query to ``out`` (.json.gz); returns the count."""
    key = os.environ.get(API_KEY_ENV)
    if not key:
        raise TopogenError(
            f"mp: the environment variable {API_KEY_ENV} is not set (the Materials Project "
            "API key is read from the environment only)"
        )
    try:
        from mp_api.client import MPRester
    except ModuleNotFoundError as exc:
        raise TopogenError("mp: mp-api is not installed (pip install 'topogen[mp]')") from exc
    criteria: dict[str, Any] = {}
    if elements:
        criteria["elements"] = list(elements)
    if exclude_elements:
        criteria["exclude_elements"] = list(exclude_elements)
    if num_sites:
        criteria["num_sites"] = tuple(num_sites)
    if energy_above_hull_max is not None:
        criteria["energy_above_hull"] = (0.0, energy_above_hull_max)
    if band_gap:
        criteria["band_gap"] = tuple(band_gap)
    try:
        with MPRester(key, mute_progress_bars=True) as mpr:
            docs = mpr.materials.summary.search(
                **criteria, fields=list(FIELDS), chunk_size=chunk_size, num_chunks=num_chunks
            )
            rows = [d.model_dump(mode="json") if hasattr(d, "model_dump") else d for d in docs]
    except Exception as exc:  # network, auth, server errors: one line, no key in it
        text = " ".join(str(exc).replace(key, "<redacted>").split())[:300]
        raise TopogenError(f"mp: query failed ({type(exc).__name__}: {text})") from exc
    with atomic_open(out, "wb") as fh, gzip.GzipFile(fileobj=fh, mode="wb", mtime=0) as gz:
        gz.write(json.dumps(rows).encode())
    return len(rows)


def _read_docs(path: Path) -> list[dict[str, Any]]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:
        docs = json.load(fh)
    if not isinstance(docs, list):
        raise ValueError(f"{path}: expected a JSON list of summary documents")
    return docs


def icsd_ids(doc: dict[str, Any]) -> list[int]:
    """ICSD collection codes of a summary document (``database_IDs.icsd``: 'icsd-123')."""
    raw = (doc.get("database_IDs") or {}).get("icsd") or []
    out = []
    for item in raw:
        digits = str(item).lower().removeprefix("icsd-")
        if digits.isdigit():
            out.append(int(digits))
    return sorted(set(out))


def load_mp(path: str | os.PathLike[str], min_distance: float = 0.5) -> LoadResult:
    """Raw summary documents -> records (material_id, structure, gap, e_hull, ICSD ids...)."""
    from pymatgen.core import Structure

    path = Path(path)
    result = LoadResult()
    for i, doc in enumerate(_read_docs(path)):
        mid = str(doc.get("material_id") or "") if isinstance(doc, dict) else ""
        try:
            structure = Structure.from_dict(doc["structure"])
            reason = structure_problem(structure, min_distance)
        except Exception as exc:  # one bad document must not stop the rest
            reason = error_reason(exc)
        if reason is None and not mid:
            reason = "no material_id"
        if reason is None and doc.get("band_gap") is None:
            reason = "missing property band_gap"
        if reason is not None:
            result.admit(str(path), str(i), mid, reason, None)
            continue
        sym = doc.get("symmetry") or {}
        props = {
            "band_gap": doc.get("band_gap"),
            "energy_above_hull": doc.get("energy_above_hull"),
            "formation_energy_per_atom": doc.get("formation_energy_per_atom"),
            "spacegroup_symbol": sym.get("symbol"),
            "spacegroup_number": sym.get("number"),
            "crystal_system": sym.get("crystal_system"),
            "icsd_ids": icsd_ids(doc),
            "is_stable": doc.get("is_stable"),
            "is_magnetic": doc.get("is_magnetic"),
            "theoretical": doc.get("theoretical"),
        }
        result.admit(
            str(path),
            str(i),
            mid,
            None,
            Record(mid, "mp", structure, props) if reason is None else None,
        )
    return result
