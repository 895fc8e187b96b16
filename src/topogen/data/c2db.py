"""C2DB (Haastrup et al. 2018; Gjerding et al. 2021) -> structure table.

Three distributions are read:

* the C2DB ASE database (``c2db.db``, distributed on request, so a local path is the normal
  case): key-value pairs per row, of which the ones below are kept;
* the JARVIS copy (``c2db_atoms.json`` inside a zip on figshare): ``atoms`` (lattice, coords,
  elements), ``gap``, ``etot``, ``efermi``, ``wf``, ``id``;
* the C2DB subset of the offline reference data (``<root>/c2db-subset/data.csv``, see
  :mod:`topogen.data.shared`), whose stored coordinates :func:`repaired_c2db_structure`
  repairs.

Topology labels follow the spin-Chern criterion of :mod:`topogen.io.labels`. C2DB's
``Topology`` key (Olsen et al., Phys. Rev. Mater. 3, 024005 (2019)) maps as
:data:`C2DB_CLASSES` says: ``QSHI`` (Z2 = 1) -> ``spin_chern``, ``topo2d`` 1; ``CRI``
(crystalline: Z2 = 0, non-zero mirror Chern number, so an even non-zero spin Chern number for a
mirror-symmetric layer) -> ``mirror_chern``, ``topo2d`` 1 while ``CRI`` is in ``topological``
(the default; leave it out and CRIs get no ``topo2d``, never 0); ``QAHI`` (Chern insulator,
time reversal broken) -> ``chern``, no ``topo2d``, so Stage II never learns one as QSH (listing
it in ``topological`` is an error); ``Trivial`` / ``None`` (computed, zero) -> ``trivial``, 0.
ASR's invariant strings (``Z2=1,C_M=1``, ``C=1``, ...) map by the same rule. An absent key, an
empty value or ``Not checked`` means not computed: no label. Any other value quarantines the
row. The reference subset has no ``Topology``: :func:`load_c2db_subset` takes its labels from
the literature table instead (:func:`topogen.data.prototypes.labels_for`).
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
from topogen.io.labels import LABELS_FILE, LabelError, topo2d_label
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
# C2DB's Topology classes -> topo_class (topogen.io.labels); see the module docstring.
C2DB_CLASSES = {
    "QSHI": "spin_chern",
    "CRI": "mirror_chern",
    "QAHI": "chern",
    "Trivial": "trivial",
    "None": "trivial",
}
NOT_COMPUTED = ("", "Not checked")
# The spin-Chern classes labelled topological (topo2d 1); only QSHI and CRI may be listed.
TOPOLOGICAL = ("QSHI", "CRI")
_INVARIANT = re.compile(r"^\s*(Z2|C_s|C_M|C)\s*=\s*(-?\d+)\s*$")


def _invariant_class(value: str) -> str:
    """topo_class of an ASR invariant string such as ``Z2=1,C_M=1`` or ``C=-1``."""
    found: dict[str, int] = {}
    for part in value.split(","):
        m = _INVARIANT.match(part)
        if m is None:
            raise LabelError(f"unrecognised C2DB Topology value {value!r}")
        found[m.group(1)] = int(m.group(2))
    if found.get("C", 0):
        return "chern"
    if found.get("Z2", 0) % 2 or found.get("C_s", 0):
        return "spin_chern"
    return "mirror_chern" if found.get("C_M", 0) else "trivial"


def topology_class(value: Any) -> str | None:
    """topo_class of C2DB's ``Topology`` value; None where it was not computed. Raises
    LabelError for a value it does not know."""
    text = "" if value is None else str(value).strip()
    if text in NOT_COMPUTED:
        return None
    return C2DB_CLASSES.get(text) or _invariant_class(text)


def check_topological(topological: Sequence[str]) -> None:
    """Raise LabelError unless ``topological`` lists only C2DB's spin-Chern classes."""
    wrong = [t for t in topological if C2DB_CLASSES.get(t) not in ("spin_chern", "mirror_chern")]
    if wrong:
        raise LabelError(
            f"topological lists {', '.join(wrong)}: only the spin-Chern classes QSHI and CRI may "
            "be (QAHI is a Chern insulator, time reversal broken, not a QSH insulator)"
        )


def topology_label(value: Any, topological: Sequence[str] = TOPOLOGICAL) -> int | None:
    """``topo2d`` of C2DB's ``Topology`` value: 1 for the spin-Chern classes listed in
    ``topological``, 0 for trivial, None for Chern insulators, unlisted spin-Chern classes and
    values not computed."""
    check_topological(topological)
    topo_class = topology_class(value)
    admitted = {C2DB_CLASSES[t] for t in topological}
    if topo2d_label(topo_class) == 1 and topo_class not in admitted:
        return None
    return topo2d_label(topo_class)


def load_c2db_db(
    path: str | os.PathLike[str],
    topological: Sequence[str] = TOPOLOGICAL,
    min_distance: float = 0.5,
) -> LoadResult:
    """Read the C2DB ASE database; keeps KEPT_KEYS and adds ``topo_class`` and ``topo2d``
    from ``Topology`` (see the module docstring)."""
    check_topological(topological)  # before the work
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
        try:
            topo_class = topology_class(props.get("Topology"))
            label = topology_label(props.get("Topology"), topological)
        except LabelError as exc:
            item = props["origin"].rsplit("#", 1)[-1]
            imported.rejected.append(Rejected(str(path), item, rec.id, str(exc)))
            continue
        records.append(rec)
        kept = {k: props[k] for k in KEPT_KEYS if k in props}
        if topo_class is not None:
            kept["topo_class"] = topo_class
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
    root: str | os.PathLike[str],
    repair: bool = True,
    min_distance: float = MIN_DISTANCE,
    labels: str | os.PathLike[str] | None = LABELS_FILE,
) -> LoadResult:
    """C2DB monolayers from ``<root>/c2db-subset/data.csv`` (material_id, band_gap,
    workfunction, cif), with the coordinate repair of :func:`repaired_c2db_structure`.

    id: the C2DB uid (``material_id``). Properties: ``band_gap`` (PBE+SOC, eV),
    ``workfunction`` (eV), ``coords_repaired``, ``coords_frame`` (the frame the stored
    Cartesian/length values were in), ``origin`` (``data.csv#<row>``), and the literature
    topology labels of ``labels`` (None: none) matched by reduced formula and space group
    (:func:`topogen.data.prototypes.labels_for`): the subset has no ``Topology``. Rows that do
    not parse, fail the sanity checks or repeat an id are rejected (item = 0-based CSV data
    row). ``repair=False`` reads the coordinates as stored (wrong for non-orthogonal cells).
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
    if labels is not None:
        from topogen.data.prototypes import labels_for

        labels_for(result.records, labels)
    return result


def _float_or_none(value: Any, name: str) -> float | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        number = float(value)
    except ValueError as exc:
        raise ValueError(f"{name} {value!r} is not a number") from exc
    return number if math.isfinite(number) else None
