"""Read structure files (CIF, extxyz/xyz, POSCAR, ASE databases) into table records.

Every file, frame or database row that cannot be used becomes a :class:`Rejected` entry with
the file, the position inside it and the reason; the rest proceed.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from topogen.errors import TopogenError
from topogen.io.quarantine import Rejected
from topogen.io.tables import LoadResult, Record
from topogen.structure.sanity import MIN_DISTANCE, structure_problem

FORMATS = {
    ".cif": "cif",
    ".extxyz": "extxyz",
    ".xyz": "extxyz",
    ".vasp": "vasp",
    ".poscar": "vasp",
    ".db": "db",
}
_VASP_NAMES = ("POSCAR", "CONTCAR")


def file_format(path: Path) -> str:
    """The reader for ``path`` from its suffix (or POSCAR/CONTCAR name)."""
    if path.name.upper().startswith(_VASP_NAMES):
        return "vasp"
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        known = ", ".join(sorted(FORMATS)) + ", POSCAR*, CONTCAR*"
        raise ValueError(f"unknown file type {path.suffix or path.name!r} (known: {known})")
    return fmt


@dataclass
class ImportResult(LoadResult):
    files_read: int = 0


def _plain(value: Any) -> Any:
    """Keep JSON-friendly scalars and short lists; drop arrays and objects."""
    if hasattr(value, "tolist") and getattr(value, "ndim", 1) == 0:
        value = value.tolist()
    if isinstance(value, bool | int | str) or value is None:
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return None


def _properties(mapping: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in ((k, _plain(v)) for k, v in mapping.items()) if v is not None}


def atoms_to_pymatgen(atoms: Any) -> Any:
    """ASE Atoms -> Structure if any direction is periodic, else Molecule."""
    from pymatgen.core import Lattice, Molecule, Structure

    if atoms.pbc.any():
        return Structure(
            Lattice(atoms.cell.array),
            atoms.get_chemical_symbols(),
            atoms.positions,
            coords_are_cartesian=True,
        )
    return Molecule(atoms.get_chemical_symbols(), atoms.positions)


def _frames(path: Path, fmt: str) -> Iterator[tuple[str, str | None, Any, dict[str, Any]]]:
    """Yield (item, id or None, structure or Exception, properties) for each entry of a file."""
    if fmt == "cif":
        from pymatgen.io.cif import CifParser

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            parser = CifParser(path)
            try:
                structures = parser.parse_structures(primitive=False)
            except ValueError as exc:
                raise ValueError(_cif_failure(parser.warnings, exc)) from exc
        for i, s in enumerate(structures):
            yield (str(i) if len(structures) > 1 else "", None, s, {})
    elif fmt == "vasp":
        from pymatgen.io.vasp import Poscar

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield ("", None, Poscar.from_file(path).structure, {})
    elif fmt == "extxyz":
        from ase.io import iread

        for i, atoms in enumerate(iread(path, index=":", format="extxyz")):
            info = dict(atoms.info)
            uid = info.pop("id", None) or info.pop("uid", None)
            yield (str(i), None if uid is None else str(uid), atoms, _properties(info))
    elif fmt == "db":
        import ase.db

        with ase.db.connect(path, type="db") as db:
            for row in db.select():
                kvp = dict(row.key_value_pairs)
                uid = kvp.pop("uid", None)
                try:
                    atoms: Any = row.toatoms()
                except Exception as exc:  # a corrupt row must not stop the others
                    atoms = exc
                yield (str(row.id), None if uid is None else str(uid), atoms, _properties(kvp))


def _cif_failure(notes: list[str], exc: Exception) -> str:
    """Why pymatgen built no structure from a CIF, from its parser's notes."""
    if any("sum to > 1" in n for n in notes):
        return (
            "atoms overlap: two or more atom sites of the CIF fall on one position (pymatgen "
            "finds site occupancies summing to more than 1); remove the duplicate sites"
        )
    useful = [" ".join(n.split()) for n in notes if "No structure parsed" in n]
    return "; ".join(useful) or str(exc)


def import_files(
    paths: list[str | os.PathLike[str]],
    source: str = "import",
    min_distance: float = MIN_DISTANCE,
) -> ImportResult:
    """Read every file; unreadable files, bad entries and duplicate ids are rejected. A
    named path that does not exist is the caller's mistake (a typo), not a bad input row:
    it raises before anything is read."""
    missing = [str(p) for p in paths if not Path(p).exists()]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise TopogenError(f"{missing[0]}: no such file{more}; nothing imported")
    result = ImportResult()
    seen: set[str] = set()
    for raw in paths:
        path = Path(raw)
        try:
            fmt = file_format(path)
            entries = list(_frames(path, fmt))
            if not entries:
                raise ValueError("no structure found in file")
        except Exception as exc:  # any reader failure: the whole file is quarantined
            result.rejected.append(Rejected(str(path), "", "", error_reason(exc)))
            continue
        result.files_read += 1
        many = len(entries) > 1
        for item, uid, obj, props in entries:
            rid = uid or (f"{path.stem}-{item}" if many else path.stem)
            reason = None
            if isinstance(obj, Exception):
                reason = error_reason(obj)
            else:
                try:
                    structure = obj if hasattr(obj, "as_dict") else atoms_to_pymatgen(obj)
                    reason = structure_problem(structure, min_distance)
                except Exception as exc:  # e.g. an unknown element symbol
                    reason = error_reason(exc)
            if reason is None and rid in seen:
                reason = f"duplicate id {rid!r}"
            if reason is not None:
                result.rejected.append(Rejected(str(path), item, rid, reason))
                continue
            seen.add(rid)
            origin = f"{path}#{item}" if item else str(path)
            result.records.append(Record(rid, source, structure, {**props, "origin": origin}))
    return result


def error_reason(exc: BaseException) -> str:
    """``Type: message`` on one line, at most 500 characters (for quarantine files)."""
    text = " ".join(str(exc).split()) or "no detail"
    return f"{type(exc).__name__}: {text}"[:500]
