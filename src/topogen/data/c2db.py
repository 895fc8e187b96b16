"""C2DB (Haastrup et al. 2018; Gjerding et al. 2021) -> structure table.

Two distributions are read:

* the C2DB ASE database (``c2db.db``, distributed on request, so a local path is the normal
  case): key-value pairs per row, of which the ones below are kept;
* the JARVIS copy (``c2db_atoms.json`` inside a zip on figshare): ``atoms`` (lattice, coords,
  elements), ``gap``, ``etot``, ``efermi``, ``wf``, ``id``.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from topogen.data.importers import error_reason, import_files
from topogen.io.quarantine import Rejected
from topogen.io.tables import LoadResult, Record
from topogen.structure.sanity import structure_problem

JARVIS_URL = "https://ndownloader.figshare.com/files/28682010"

# C2DB keys kept (those present in a given release): gaps are PBE (gap: with SOC).
KEPT_KEYS = (
    "uid", "gap", "gap_nosoc", "gap_dir", "gap_dir_nosoc", "ehull", "hform", "dyn_stab",
    "dynamic_stability_phonons", "dynamic_stability_stiffness", "dynamic_stability_level",
    "magstate", "is_magnetic", "Topology", "spacegroup", "layergroup", "folder",
)  # fmt: skip
REQUIRED_KEYS = ("gap",)  # rows without these are quarantined: the models train on them
# Values of C2DB's ``Topology`` key that count as topological (label 1); others are 0.
TOPOLOGICAL = ("QSHI", "QAHI", "CRI")


def topology_label(value: Any, topological: Sequence[str] = TOPOLOGICAL) -> int | None:
    """1 / 0 from C2DB's ``Topology`` string; None where the key is absent."""
    if value is None or value == "":
        return None
    return int(str(value).strip() in topological)


def load_c2db_db(
    path: str | os.PathLike[str],
    topological: Sequence[str] = TOPOLOGICAL,
    min_distance: float = 0.5,
) -> LoadResult:
    """Read the C2DB ASE database; keeps KEPT_KEYS and adds ``topo2d`` from ``Topology``."""
    imported = import_files([path], source="c2db", min_distance=min_distance)
    records = []
    for rec in imported.records:
        props = rec.properties
        missing = [k for k in REQUIRED_KEYS if props.get(k) is None]
        if missing:
            item = props["origin"].rsplit("#", 1)[-1]
            reason = f"missing property {', '.join(missing)}"
            imported.rejected.append(Rejected(str(path), item, rec.id, reason))
            continue
        records.append(rec)
        kept = {k: props[k] for k in KEPT_KEYS if k in props}
        label = topology_label(props.get("Topology"), topological)
        if label is not None:
            kept["topo2d"] = label
        kept["band_gap"] = props["gap"]  # the key every source uses for the gap (eV)
        kept["origin"] = props["origin"]
        rec.properties = kept
    return LoadResult(records, imported.rejected)


def _jarvis_entries(path: Path) -> list[dict[str, Any]]:
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            names = [n for n in zf.namelist() if n.endswith(".json")]
            if not names:
                raise ValueError(f"{path}: no .json file inside the zip")
            with zf.open(names[0]) as fh:
                return json.load(io.TextIOWrapper(fh, encoding="utf-8"))
    return json.loads(path.read_text(encoding="utf-8"))


def jarvis_structure(atoms: dict[str, Any]) -> Any:
    """JARVIS ``atoms`` dict (lattice_mat, coords, elements, cartesian) -> Structure."""
    from pymatgen.core import Lattice, Structure

    return Structure(
        Lattice(atoms["lattice_mat"]),
        atoms["elements"],
        atoms["coords"],
        coords_are_cartesian=bool(atoms.get("cartesian", False)),
    )


def load_jarvis_c2db(path: str | os.PathLike[str], min_distance: float = 0.5) -> LoadResult:
    """Read JARVIS's C2DB copy (the figshare zip or the json inside it)."""
    path = Path(path)
    result = LoadResult()
    entries = _jarvis_entries(path)
    if not isinstance(entries, list):
        raise ValueError(f"{path}: expected a JSON list of entries")
    for i, entry in enumerate(entries):
        rid = str(entry.get("id") or f"jarvis-c2db-{i}") if isinstance(entry, dict) else ""
        try:
            structure = jarvis_structure(entry["atoms"])
            reason = structure_problem(structure, min_distance)
        except Exception as exc:  # one bad entry must not stop the rest
            reason = error_reason(exc)
        props = {k: entry.get(k) for k in ("gap", "etot", "efermi", "wf") if k in entry}
        props.update(band_gap=props.get("gap"), origin=f"{path}#{i}")
        result.admit(
            str(path),
            str(i),
            rid,
            reason,
            Record(rid, "c2db", structure, props) if reason is None else None,
        )
    return result
