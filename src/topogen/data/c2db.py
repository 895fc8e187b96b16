"""C2DB (Haastrup et al. 2018; Gjerding et al. 2021) -> structure table.

Three distributions are read:

* the C2DB ASE database (``c2db.db``, distributed on request, so a local path is the normal
  case): key-value pairs per row, of which the ones below are kept;
* the JARVIS copy (``c2db_atoms.json`` inside a zip on figshare): ``atoms`` (lattice, coords,
  elements), ``gap``, ``etot``, ``efermi``, ``wf``, ``id``;
* the C2DB subset of the offline reference data (``<root>/c2db-subset/data.csv``, see
  :mod:`topogen.data.shared`), whose stored coordinates :func:`repaired_c2db_structure`
  repairs.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from topogen.data.importers import error_reason, import_files
from topogen.data.shared import ReferenceDataError, require_file
from topogen.io.quarantine import Rejected
from topogen.io.tables import LoadResult, Record
from topogen.structure.sanity import MIN_DISTANCE, structure_problem

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


# --- the C2DB subset of the reference data ---------------------------------------------------

_CELL_KEYS = ("a", "b", "c", "alpha", "beta", "gamma")
C2DB_FRAMES = ("a_along_x", "bisector_along_x")
PLAUSIBLE_BOND_RATIO = 0.5  # below: atoms closer than half a covalent bond
CONFIDENT_BOND_RATIO = 0.8  # an alternative frame must reach this to be used


def _cif_number(text: str) -> float:
    return float(re.sub(r"\(\d+\)$", "", text))


def read_p1_cif(text: str) -> tuple[dict[str, float], list[str], np.ndarray]:
    """Cell parameters, species and the fractional coordinates *as stored* of a P1 CIF.

    A light reader for the pymatgen-written CIFs of the C2DB subset: unlike CifParser it does
    not wrap coordinates into [0, 1), which the coordinate repair needs. Raises ValueError.
    """
    import shlex

    params: dict[str, float] = {}
    for key in _CELL_KEYS:
        tag = f"_cell_length_{key}" if len(key) == 1 else f"_cell_angle_{key}"
        m = re.search(rf"^\s*{tag}\s+(\S+)", text, re.MULTILINE)
        if not m:
            raise ValueError(f"no {tag}")
        params[key] = _cif_number(m.group(1))
    loops: list[tuple[list[str], list[list[str]]]] = []
    lines = iter(text.splitlines())
    line = next(lines, None)
    while line is not None:
        if line.strip() != "loop_":
            line = next(lines, None)
            continue
        tags: list[str] = []
        rows: list[list[str]] = []
        line = next(lines, None)
        while line is not None and line.strip().startswith("_"):
            tags.append(line.strip())
            line = next(lines, None)
        while line is not None and line.strip() and not line.strip().startswith(("_", "loop_")):
            if not line.strip().startswith("#"):
                rows.append(shlex.split(line))
            line = next(lines, None)
        loops.append((tags, rows))
    ops = [rows for tags, rows in loops if any(t.endswith("_pos_as_xyz") for t in tags)]
    if ops and [r[-1].replace(" ", "").lower() for r in ops[0]] != ["x,y,z"]:
        raise ValueError("symmetry operations other than 'x, y, z' (only P1 CIFs are supported)")
    sites = [(tags, rows) for tags, rows in loops if "_atom_site_fract_x" in tags]
    if not sites:
        raise ValueError("no _atom_site_fract_x loop")
    tags, rows = sites[0]
    col = {t: k for k, t in enumerate(tags)}
    symbol_tag = "_atom_site_type_symbol" if "_atom_site_type_symbol" in col else "_atom_site_label"
    if not rows:
        raise ValueError("no atom sites")
    species, frac = [], []
    for n, row in enumerate(rows):
        if len(row) != len(tags):
            raise ValueError(f"atom site {n}: {len(row)} values for {len(tags)} tags")
        occ = _cif_number(row[col["_atom_site_occupancy"]]) if "_atom_site_occupancy" in col else 1
        if abs(occ - 1) > 1e-6:
            raise ValueError(f"atom site {n}: partial occupancy {occ}")
        species.append(re.sub(r"[\d+\-]+$", "", row[col[symbol_tag]]))
        frac.append([_cif_number(row[col[f"_atom_site_fract_{x}"]]) for x in "xyz"])
    return params, species, np.array(frac, dtype=float)


def cell_matrix(
    a: float, b: float, c: float, alpha: float, beta: float, gamma: float, frame: str = "a_along_x"
) -> Any:
    """Cell vectors (rows) from cell parameters.

    ``frame="a_along_x"``: a along x, b in the xy-plane (ASE's convention);
    ``frame="bisector_along_x"``: the same cell turned about z so that x bisects a and b.
    """
    ca, cb, cg = (math.cos(math.radians(x)) for x in (alpha, beta, gamma))
    sg = math.sin(math.radians(gamma))
    if sg <= 1e-8:
        raise ValueError(f"impossible cell angles ({alpha}, {beta}, {gamma})")
    cx = c * cb
    cy = c * (ca - cb * cg) / sg
    cz2 = c * c - cx * cx - cy * cy
    if cz2 <= 0:
        raise ValueError(f"impossible cell angles ({alpha}, {beta}, {gamma})")
    matrix = np.array([[a, 0.0, 0.0], [b * cg, b * sg, 0.0], [cx, cy, math.sqrt(cz2)]])
    if frame == "a_along_x":
        return matrix
    if frame == "bisector_along_x":
        t = -math.radians(gamma) / 2
        rot = np.array([[math.cos(t), -math.sin(t), 0], [math.sin(t), math.cos(t), 0], [0, 0, 1]])
        return matrix @ rot.T
    raise ValueError(f"unknown frame {frame!r} (known: {', '.join(C2DB_FRAMES)})")


def repair_c2db_fractions(
    params: dict[str, float], stored: Any, frame: str = "a_along_x"
) -> tuple[Any, Any]:
    """The documented fix of the C2DB subset's CIFs: (cell matrix, true fractional coords).

    The stored "fractions" are Cartesian/length, (x/a, y/b, z/c), in a frame with a along x
    and b in the xy-plane; Cartesian = stored * (a, b, c), then fractions = Cartesian @ cell^-1.
    ``frame`` names the frame the Cartesian positions were in (see :func:`cell_matrix`); the
    returned matrix is always in the ``a_along_x`` orientation.
    """
    cell = [params[k] for k in _CELL_KEYS]
    lengths = np.array(cell[:3])
    cart = np.asarray(stored, dtype=float) * lengths
    frac = np.linalg.solve(cell_matrix(*cell, frame=frame).T, cart.T).T
    return cell_matrix(*cell), frac


def bond_ratio(structure: Any) -> float:
    """Shortest interatomic distance over the sum of the two atoms' covalent radii (inf if
    one atom). About 1 for bonded neighbours; well below 0.5 means the geometry is wrong."""
    from ase.data import covalent_radii

    if len(structure) < 2:
        return math.inf
    radii = np.array([covalent_radii[site.specie.Z] for site in structure])
    dist = np.array(structure.distance_matrix, dtype=float)
    np.fill_diagonal(dist, np.inf)
    return float((dist / (radii[:, None] + radii[None, :])).min())


def c2db_structure(cif: str, repair: bool = True, frame: str = "a_along_x") -> Any:
    """Structure from one C2DB-subset CIF, repaired (or as stored, ``repair=False``)."""
    from pymatgen.core import Lattice, Structure

    params, species, stored = read_p1_cif(cif)
    if repair:
        matrix, frac = repair_c2db_fractions(params, stored, frame)
    else:
        matrix, frac = cell_matrix(*(params[k] for k in _CELL_KEYS)), stored
    return Structure(Lattice(matrix), species, frac, to_unit_cell=True)


def repaired_c2db_structure(cif: str) -> tuple[Any, str]:
    """(Structure, frame) for one C2DB-subset CIF, with the frame check described below.

    The documented repair assumes a along x. For a few cells (in the subset: 25 cells with
    gamma = 60 degrees, the X2Y6 family) that puts atoms at a fraction of a bond length
    (:func:`bond_ratio` < 0.5), while the frame with x bisecting a and b gives ordinary bonds
    (ratio about 1) and restores their hexagonal symmetry. The second frame is used only when
    the first is implausible and the second plausible (ratio >= 0.8); otherwise the documented
    result is returned (and the caller's checks judge it).
    """
    first = c2db_structure(cif, frame="a_along_x")
    if bond_ratio(first) >= PLAUSIBLE_BOND_RATIO:
        return first, "a_along_x"
    second = c2db_structure(cif, frame="bisector_along_x")
    if bond_ratio(second) >= CONFIDENT_BOND_RATIO:
        return second, "bisector_along_x"
    return first, "a_along_x"


def load_c2db_subset(
    root: str | os.PathLike[str], repair: bool = True, min_distance: float = MIN_DISTANCE
) -> LoadResult:
    """C2DB monolayers from ``<root>/c2db-subset/data.csv`` (material_id, band_gap,
    workfunction, cif), with the coordinate repair of :func:`repaired_c2db_structure`.

    id: the C2DB uid (``material_id``). Properties: ``band_gap`` (PBE+SOC, eV),
    ``workfunction`` (eV), ``coords_repaired``, ``coords_frame`` (the frame the stored
    Cartesian/length values were in), ``origin`` (``data.csv#<row>``). Rows that do not parse,
    fail the sanity checks or repeat an id are rejected (item = 0-based CSV data row).
    ``repair=False`` reads the coordinates as stored (wrong for non-orthogonal cells).
    """
    path = require_file(Path(root) / "c2db-subset" / "data.csv", "C2DB subset")
    try:
        df = pd.read_csv(path, dtype={"material_id": str, "cif": str}, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise ReferenceDataError(f"{path}: unreadable CSV ({error_reason(exc)})") from exc
    missing = [c for c in ("material_id", "band_gap", "workfunction", "cif") if c not in df]
    if missing:
        raise ReferenceDataError(f"{path}: missing column(s) {', '.join(missing)}")
    result = LoadResult()
    for row, (rid, gap, wf, cif) in enumerate(
        zip(df["material_id"], df["band_gap"], df["workfunction"], df["cif"], strict=True)
    ):
        rid = str(rid).strip()
        try:
            if not rid:
                raise ValueError("empty material_id")
            if repair:
                structure, frame = repaired_c2db_structure(cif)
            else:
                structure, frame = c2db_structure(cif, repair=False), "as_stored"
            reason = structure_problem(structure, min_distance)
            if (
                reason is None
                and repair
                and (ratio := bond_ratio(structure)) < PLAUSIBLE_BOND_RATIO
            ):
                reason = (
                    f"atoms at {ratio:.2f} x their covalent bond length after the repair "
                    "in every cell frame tried"
                )
            props = {
                "band_gap": _float_or_none(gap, "band_gap"),
                "workfunction": _float_or_none(wf, "workfunction"),
                "coords_repaired": repair,
                "coords_frame": frame,
                "origin": f"{path}#{row}",
            }
        except Exception as exc:  # a bad row rejects itself only
            reason = error_reason(exc)
        result.admit(
            str(path),
            str(row),
            rid,
            reason,
            Record(rid, "c2db", structure, props) if reason is None else None,
        )
    return result


def _float_or_none(value: Any, name: str) -> float | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        number = float(value)
    except ValueError as exc:
        raise ValueError(f"{name} {value!r} is not a number") from exc
    return number if math.isfinite(number) else None
