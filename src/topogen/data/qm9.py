"""QM9 (Ramakrishnan et al., Sci. Data 1, 140022 (2014)): the published xyz archive -> table.

Each molecule file of ``dsgdb9nsd.xyz.tar.bz2`` holds: the atom count; ``gdb <index>`` and 15
properties; one line per atom (symbol, x, y, z in Angstrom, Mulliken charge); harmonic
frequencies; the GDB-17 and B3LYP SMILES; the InChI strings. Numbers may use Mathematica's
``*^`` exponent. Units are QM9's: rotational constants in GHz, dipole in Debye,
polarizability in Bohr^3, energies in Hartree, <R^2> in Bohr^2, Cv in cal/(mol K).
Molecules on the published list of 3,054 "uncharacterized" ones (failed the geometry
consistency check) go to quarantine with that reason.
"""

from __future__ import annotations

import os
import re
import tarfile
from collections.abc import Iterator
from pathlib import Path

from topogen.io.quarantine import Rejected
from topogen.io.tables import LoadResult, Record
from topogen.structure.sanity import structure_problem

# Published figshare files (the paper's data record).
ARCHIVE_URL = "https://figshare.com/ndownloader/files/3195389"
UNCHARACTERIZED_URL = "https://figshare.com/ndownloader/files/3195404"

PROPERTIES = (
    ("A", "GHz"), ("B", "GHz"), ("C", "GHz"), ("mu", "Debye"), ("alpha", "Bohr^3"),
    ("homo", "Hartree"), ("lumo", "Hartree"), ("gap", "Hartree"), ("r2", "Bohr^2"),
    ("zpve", "Hartree"), ("U0", "Hartree"), ("U", "Hartree"), ("H", "Hartree"),
    ("G", "Hartree"), ("Cv", "cal/(mol K)"),
)  # fmt: skip


def _number(text: str) -> float:
    return float(text.replace("*^", "e"))


def parse_molecule(text: str, name: str = "<qm9>") -> Record:
    """One QM9 xyz file -> Record (Molecule); raises ValueError naming what is wrong."""
    from pymatgen.core import Molecule

    lines = text.splitlines()
    try:
        natoms = int(lines[0])
        header = lines[1].split()
        if header[0] != "gdb" or len(header) != 2 + len(PROPERTIES):
            raise ValueError(f"line 2 is not 'gdb <index>' + {len(PROPERTIES)} properties")
        index = int(header[1])
        props: dict[str, object] = {
            key: _number(v) for (key, _), v in zip(PROPERTIES, header[2:], strict=True)
        }
        species, coords, charges = [], [], []
        for line in lines[2 : 2 + natoms]:
            sym, x, y, z, q = line.split()
            species.append(sym)
            coords.append([_number(x), _number(y), _number(z)])
            charges.append(_number(q))
        if len(species) != natoms:
            raise ValueError(f"{natoms} atoms announced, {len(species)} found")
        smiles = lines[3 + natoms].split()
        inchi = lines[4 + natoms].split()
    except (IndexError, ValueError) as exc:
        raise ValueError(f"{name}: malformed QM9 xyz ({exc})") from exc
    mol = Molecule(species, coords, site_properties={"mulliken_charge": charges})
    props.update(
        qm9_index=index,
        smiles=smiles[-1],  # B3LYP-relaxed geometry
        smiles_gdb=smiles[0],
        inchi=inchi[-1],
    )
    return Record(f"qm9-{index:06d}", "qm9", mol, props)


def read_uncharacterized(path: str | os.PathLike[str]) -> set[int]:
    """QM9 indices on the published list of uncharacterized molecules."""
    indices = set()
    for line in Path(path).read_text(encoding="utf-8", errors="replace").splitlines():
        first = line.split()[:1]
        if first and re.fullmatch(r"\d+", first[0]):
            indices.add(int(first[0]))
    return indices


def _members(archive: Path) -> Iterator[tuple[str, str]]:
    """(name, text) of each .xyz member, streamed without extracting anything to disk."""
    with tarfile.open(archive, "r:*") as tar:
        for member in tar:
            if member.isfile() and member.name.endswith(".xyz"):
                fh = tar.extractfile(member)
                if fh is not None:
                    yield member.name, fh.read().decode("utf-8", errors="replace")


def load_qm9(
    archive: str | os.PathLike[str],
    uncharacterized: str | os.PathLike[str] | None = None,
    limit: int | None = None,
) -> LoadResult:
    """Parse the QM9 archive (a tar of xyz files, or a folder of them)."""
    archive = Path(archive)
    skip = read_uncharacterized(uncharacterized) if uncharacterized else set()
    if archive.is_dir():
        members: Iterator[tuple[str, str]] = (
            (str(p), p.read_text()) for p in sorted(archive.glob("*.xyz"))
        )
    else:
        members = _members(archive)
    result = LoadResult()
    for name, text in members:
        if limit is not None and len(result.records) >= limit:
            break
        try:
            rec = parse_molecule(text, name)
        except ValueError as exc:
            result.rejected.append(Rejected(str(archive), name, "", str(exc)))
            continue
        reason = structure_problem(rec.structure)
        if rec.properties["qm9_index"] in skip:
            reason = "on the published list of uncharacterized molecules"
        if reason:
            result.rejected.append(Rejected(str(archive), name, rec.id, reason))
        else:
            result.records.append(rec)
    return result


# qm9pack (PyPI, MIT) ships the characterized molecules as CSV files; column -> our key.
_QM9PACK_COLUMNS = {
    "RotA_GHz": "A", "RotB_GHz": "B", "RotC_GHz": "C", "Dipole_debye": "mu",
    "Polarizability_bohr3": "alpha", "HOMO_au": "homo", "LUMO_au": "lumo",
    "HOMO_LUMO_gap_au": "gap", "R2_bohr2": "r2", "ZPVE_au": "zpve",
    "InternalEnergy_0K_au": "U0", "InternalEnergy_298K_au": "U", "Enthalphy_298K_au": "H",
    "GibbsFreeEnergy_298K_au": "G", "Heatcapacity_Cv_cal_mol_K": "Cv",
}  # fmt: skip


def qm9pack_data_dir() -> Path:
    """The folder of CSV files inside the installed ``qm9pack`` package."""
    from importlib.resources import files
    from importlib.util import find_spec

    if find_spec("qm9pack") is None:
        raise ModuleNotFoundError(
            "qm9pack is not installed (pip install 'topogen[qm9]'), and data.qm9.url is not set"
        )
    return Path(str(files("qm9pack") / "data"))


def load_qm9pack(data_dir: str | os.PathLike[str] | None = None, limit: int | None = None):
    """The same molecules and properties from qm9pack's CSV files (offline)."""
    import ast

    import pandas as pd
    from pymatgen.core import Molecule

    folder = Path(data_dir) if data_dir else qm9pack_data_dir()
    result = LoadResult()
    for csv_path in sorted(folder.glob("qm9_part*.csv")):
        for i, row in enumerate(pd.read_csv(csv_path, nrows=limit).itertuples(index=False)):
            if limit is not None and len(result.records) >= limit:
                return result
            try:
                species = ast.literal_eval(row.Elements)
                coords = ast.literal_eval(row.XYZ_Ang)
                charges = ast.literal_eval(row.Mulliken_pop)
                mol = Molecule(species, coords, site_properties={"mulliken_charge": charges})
                props: dict[str, object] = {
                    key: float(getattr(row, col)) for col, key in _QM9PACK_COLUMNS.items()
                }
                index = int(row.Index)
            except (ValueError, SyntaxError, TypeError, AttributeError) as exc:
                result.rejected.append(Rejected(str(csv_path), str(i + 2), "", str(exc)))
                continue
            props.update(qm9_index=index, smiles=row.SMILES, inchi=row.InChi)
            rec = Record(f"qm9-{index:06d}", "qm9", mol, props)
            reason = structure_problem(mol)
            if reason:
                result.rejected.append(Rejected(str(csv_path), str(i + 2), rec.id, reason))
            else:
                result.records.append(rec)
    if not result.records and not result.rejected:
        raise ValueError(f"{folder}: no qm9_part*.csv files")
    return result
