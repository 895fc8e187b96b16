"""MC2D v4 monolayers of the reference data (``<root>/mc2d-v4/structures.json``)."""

from __future__ import annotations

import gzip
import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from topogen.data.importers import error_reason
from topogen.data.shared import ReferenceDataError, require_file
from topogen.io.tables import LoadResult, Record
from topogen.structure.sanity import MIN_DISTANCE, structure_problem


def _mc2d_number(value: Any) -> float | None:
    """MC2D writes '-' for a binding energy it does not have."""
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _mc2d_structure(entry: dict[str, Any]) -> Any:
    from pymatgen.core import Lattice, Structure

    cell = entry["cell"]
    if len(cell) != 3 or any(len(v) != 4 for v in cell):
        raise ValueError("'cell' is not three [label, x, y, z] vectors")
    matrix = np.array([[float(x) for x in v[1:]] for v in cell])
    sites = entry["atomic_positions"]
    if not sites:
        raise ValueError("no atomic positions")
    if any(len(s) != 5 for s in sites):
        raise ValueError("an atomic position is not [kind, x, y, z, element]")
    species = [str(s[4]) for s in sites]
    kinds = [str(s[0]) for s in sites]
    coords = np.array([[float(x) for x in s[1:4]] for s in sites])
    n = entry.get("number_of_atoms")
    if n is not None and int(n) != len(sites):
        raise ValueError(f"number_of_atoms is {n} but {len(sites)} positions are given")
    site_props = {"kind": kinds} if kinds != species else None
    return Structure(
        Lattice(matrix), species, coords, coords_are_cartesian=True, site_properties=site_props
    )


def load_mc2d(root: str | os.PathLike[str], min_distance: float = MIN_DISTANCE) -> LoadResult:
    """MC2D monolayers from ``<root>/mc2d-v4/structures.json`` (a list of objects).

    id: MC2D ``structure_label``. Properties: ``band_gap`` (eV), ``magnetic_state`` (NM/FM/AFM),
    magnetisations, ``binding_energy_df2`` / ``binding_energy_rvv10`` (meV/A^2; None where
    MC2D has '-'), ``spacegroup`` (symbol) and ``spacegroup_number``, the 3D parent
    (``parent_formula``, ``parent_source_db``, ``parent_db_id``, ``n_3d_parents``), uuids.
    Magnetic kinds (``Co1``, ``Co2``) are kept as the site property ``kind``.
    """
    path = require_file(Path(root) / "mc2d-v4" / "structures.json", "MC2D structures")
    return load_mc2d_file(path, min_distance)


def _read_entries(path: Path) -> Any:
    try:
        with (
            gzip.open(path, "rt", encoding="utf-8")
            if path.suffix == ".gz"
            else open(path, encoding="utf-8") as fh
        ):
            return json.load(fh)
    except (json.JSONDecodeError, UnicodeDecodeError, gzip.BadGzipFile, EOFError) as exc:
        raise ReferenceDataError(f"{path}: not valid (gzipped) JSON ({exc})") from exc


def load_mc2d_file(
    path: str | os.PathLike[str], min_distance: float = MIN_DISTANCE, source: str = "mc2d"
) -> LoadResult:
    """MC2D monolayers from one JSON file (``.json`` or ``.json.gz``) in the schema of MC2D's
    ``structures.json``: the full source, or the derived gap table ``resources/mc2d_gaps.json.gz``
    (:func:`write_gap_table`). Rows are recorded with source ``source``."""
    path = require_file(Path(path), "MC2D structures")
    entries = _read_entries(path)
    if not isinstance(entries, list):
        raise ReferenceDataError(f"{path}: expected a JSON list of structures")
    result = LoadResult()
    for i, entry in enumerate(entries):
        rid = str(entry.get("structure_label") or "") if isinstance(entry, dict) else ""
        try:
            if not isinstance(entry, dict):
                raise ValueError(f"entry is a {type(entry).__name__}, not an object")
            if not rid:
                raise ValueError("no structure_label")
            structure = _mc2d_structure(entry)
            reason = structure_problem(structure, min_distance)
        except Exception as exc:  # a malformed entry rejects itself only
            reason = error_reason(exc)
        result.admit(
            str(path),
            str(i),
            rid,
            reason,
            Record(rid, source, structure, _mc2d_properties(entry, path, i))
            if reason is None
            else None,
        )
    return result


def _mc2d_properties(entry: dict[str, Any], path: Path, i: int) -> dict[str, Any]:
    from pymatgen.symmetry.groups import SpaceGroup

    spg = entry.get("spg")
    try:
        number = SpaceGroup(spg).int_number if spg else None
    except Exception:  # an unknown symbol: keep the symbol, no number
        number = None
    parents = entry.get("all_3D_parents") or []
    props: dict[str, Any] = {
        "band_gap": _mc2d_number(entry.get("band_gap")),
        "magnetic_state": entry.get("magnetic_state"),
        "abs_magnetization": _mc2d_number(entry.get("abs_magnetization")),
        "tot_magnetization": _mc2d_number(entry.get("tot_magnetization")),
        "binding_energy_df2": _mc2d_number(entry.get("be_df2")),
        "binding_energy_rvv10": _mc2d_number(entry.get("be_rvv10")),
        "spacegroup": spg,
        "spacegroup_number": number,
        "prototype": entry.get("prototype"),
        "number_of_electrons": entry.get("number_of_electrons"),
        "parent_formula": entry.get("formula_parent"),
        "parent_source_db": entry.get("source_db"),
        "parent_db_id": entry.get("db_id"),
        "n_3d_parents": len(parents),
        "structure_uuid": entry.get("relaxed_2D_structure_uuid"),
        "bands_uuid": entry.get("bands_uuid"),
        "origin": f"{path}#{i}",
    }
    if entry.get("starting_magnetization_for_PWscf"):
        props["starting_magnetization"] = dict(entry["starting_magnetization_for_PWscf"])
    return {k: v for k, v in props.items() if v is not None}


# The keys of an MC2D entry that the gap table keeps (enough for the reader above).
GAP_TABLE_KEYS = (
    "structure_label",
    "formula",
    "formula_reduced",
    "number_of_atoms",
    "cell",
    "atomic_positions",
    "band_gap",
    "magnetic_state",
    "spg",
)


def write_gap_table(
    source: str | os.PathLike[str], out: str | os.PathLike[str], max_atoms: int | None = None
) -> int:
    """Derive the compact gap table (``resources/mc2d_gaps.json.gz``) from an MC2D
    ``structures.json``: the keys of :data:`GAP_TABLE_KEYS`, coordinates rounded to 1e-6 A,
    entries sorted by label, gzip without a timestamp (the same input gives the same bytes).
    Entries with more than ``max_atoms`` atoms are left out. Returns the number written."""
    entries = _read_entries(Path(source))
    rows = []
    for e in entries:
        if max_atoms is not None and len(e["atomic_positions"]) > max_atoms:
            continue
        row = {k: e[k] for k in GAP_TABLE_KEYS if k in e}
        row["cell"] = [[v[0], *(round(float(x), 6) for x in v[1:])] for v in e["cell"]]
        row["atomic_positions"] = [
            [s[0], *(round(float(x), 6) for x in s[1:4]), s[4]] for s in e["atomic_positions"]
        ]
        rows.append(row)
    rows.sort(key=lambda r: str(r["structure_label"]))
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0, filename="") as fh:
        fh.write(json.dumps(rows, separators=(",", ":")).encode())
    Path(out).write_bytes(buf.getvalue())
    return len(rows)
