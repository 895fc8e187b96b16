"""The LoGAN benchmark sets of the reference data (Kovacs et al. 2024): ``<root>/logan/
<name>.extxyz`` (QM9 isomers, MP SiO2 polymorphs), with SMILES matched by bond graph."""

from __future__ import annotations

import io
import math
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from topogen.data.importers import atoms_to_pymatgen, error_reason
from topogen.data.shared import require_file
from topogen.io.quarantine import Rejected
from topogen.io.tables import LoadResult, Record
from topogen.structure.sanity import MIN_DISTANCE, structure_problem

LOGAN_SETS = (
    "C5H12O_training", "C5H12O_ground_truth",
    "mp-559550_training", "mp-559550_ground_truth",
    "mp-554151_training", "mp-554151_ground_truth",
    "mp-546794_training", "mp-546794_ground_truth",
)  # fmt: skip
# QM9's comment line: "gdb <index> A B C mu alpha homo lumo gap r2 zpve U0 U H G Cv"
# (Ramakrishnan et al. 2014); the LoGAN files store it as "gdb=T 1695=T 3.71=T ..." and omit Cv.
QM9_FIELDS = (
    "qm9_index", "A", "B", "C", "mu", "alpha", "homo", "lumo", "gap", "r2", "zpve",
    "U0", "U", "H", "G", "Cv",
)  # fmt: skip


def _scalar(value: Any) -> Any:
    """JSON-friendly scalar or short numeric list, else None (dropped)."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    numeric = isinstance(value, list) and 0 < len(value) <= 9
    if numeric and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value):
        return [float(v) for v in value]
    return None


def _xyz_frames(text: str) -> Iterator[tuple[int, str, str | Exception]]:
    """Split an (ext)xyz file into (frame index, comment line, frame text or error).

    After a frame whose atom count is unreadable or that runs past the end of the file, the
    frame boundaries are unknown, so the rest of the file is reported as one error.
    """
    lines = text.splitlines()
    i = frame = 0
    while i < len(lines):
        if not lines[i].strip():
            i += 1
            continue
        try:
            natoms = int(lines[i].split()[0])
            if natoms < 0:
                raise ValueError(f"negative atom count {natoms}")
        except (ValueError, IndexError) as exc:
            yield frame, "", ValueError(f"line {i + 1}: bad atom count {lines[i]!r} ({exc})")
            return
        end = i + 2 + natoms
        if end > len(lines):
            yield (
                frame,
                "",
                ValueError(
                    f"line {i + 1}: frame of {natoms} atoms truncated by the end of the file"
                ),
            )
            return
        comment = lines[i + 1]
        yield frame, comment, "\n".join(lines[i:end]) + "\n"
        i, frame = end, frame + 1


def _qm9_properties(comment: str) -> dict[str, Any]:
    """QM9 values stored positionally after ``gdb=T`` in the comment line."""
    m = re.search(r"(?:^|\s)gdb=T((?:\s+[-+0-9.eE]+=T)+)", comment)
    if not m:
        return {}
    values = [v[:-2] for v in m.group(1).split()]
    props: dict[str, Any] = {}
    for key, value in zip(QM9_FIELDS, values, strict=False):
        props[key] = int(value) if key == "qm9_index" else float(value)
    return props


def _frame_properties(atoms: Any, comment: str) -> dict[str, Any]:
    props = _qm9_properties(comment)
    for key, value in atoms.info.items():
        if key == "gdb" or re.fullmatch(r"[-+0-9.eE]+", key):
            continue  # the positional QM9 values, parsed above
        if (v := _scalar(value)) is not None:
            props[key] = v
    calc = getattr(atoms, "calc", None)
    for key in ("energy", "free_energy", "magmom", "dipole", "stress"):
        value = (getattr(calc, "results", None) or {}).get(key)
        if value is not None and (v := _scalar(value)) is not None:
            props[key] = v
    return props


def smiles_graph(smiles: str) -> Any:
    """Heavy-atom graph (networkx, node attribute ``el``) of a SMILES string.

    Handles the organic subset, bracket atoms, branches, bond symbols and ring closures;
    enough for QM9 molecules. Raises ValueError on anything else.
    """
    import networkx as nx

    g = nx.Graph()
    token = re.compile(r"\[([^\]]+)\]|(Cl|Br|[BCNOPSFI]|[bcnops])|(%\d\d|\d)|([()=#\-:/\\.])")
    pos, prev, stack, rings, n = 0, None, [], {}, 0
    while pos < len(smiles):
        m = token.match(smiles, pos)
        if not m:
            raise ValueError(f"unsupported SMILES {smiles!r} at position {pos}")
        bracket, atom, ring, sym = m.groups()
        pos = m.end()
        if bracket or atom:
            el = re.match(r"\d*([A-Za-z][a-z]?)", bracket) if bracket else None
            symbol = (el.group(1) if el else atom or "").capitalize()
            if symbol == "H":
                continue  # explicit hydrogens are not heavy atoms
            g.add_node(n, el=symbol)
            if prev is not None:
                g.add_edge(prev, n)
            prev, n = n, n + 1
        elif ring:
            if prev is None:
                raise ValueError(f"ring closure before any atom in {smiles!r}")
            if ring in rings:
                g.add_edge(rings.pop(ring), prev)
            else:
                rings[ring] = prev
        elif sym == "(":
            stack.append(prev)
        elif sym == ")":
            if not stack:
                raise ValueError(f"unbalanced ')' in {smiles!r}")
            prev = stack.pop()
        elif sym == ".":
            prev = None
    if stack or rings or n == 0:
        raise ValueError(f"incomplete SMILES {smiles!r}")
    return g


def molecule_graph(molecule: Any, scale: float = 1.2) -> Any:
    """Heavy-atom bond graph of a Molecule: bonded if closer than ``scale`` x covalent radii."""
    import networkx as nx
    from ase.data import atomic_numbers, covalent_radii

    g = nx.Graph()
    heavy = [i for i, site in enumerate(molecule) if site.specie.symbol != "H"]
    for i in heavy:
        g.add_node(i, el=molecule[i].specie.symbol)
    dist = molecule.distance_matrix
    radius = {i: covalent_radii[atomic_numbers[molecule[i].specie.symbol]] for i in heavy}
    for a, i in enumerate(heavy):
        for j in heavy[a + 1 :]:
            if dist[i, j] < scale * (radius[i] + radius[j]):
                g.add_edge(i, j)
    return g


def _attach_smiles(records: list[Record], smi: Path, rejected: list[Rejected]) -> None:
    """Attach each SMILES of ``smi`` to the one molecule with the same heavy-atom graph.

    The .smi order is not the extxyz order, so matching is by graph isomorphism; a SMILES
    that matches no molecule, or several, is rejected with the reason.
    """
    import networkx as nx
    from networkx.algorithms.isomorphism import categorical_node_match

    match = categorical_node_match("el", None)
    graphs = [
        (r, molecule_graph(r.structure)) for r in records if not hasattr(r.structure, "lattice")
    ]
    for lineno, line in enumerate(smi.read_text(encoding="utf-8").splitlines(), start=1):
        smiles = line.split()[0] if line.split() else ""
        if not smiles or smiles.startswith("#"):
            continue
        try:
            g = smiles_graph(smiles)
        except ValueError as exc:
            rejected.append(Rejected(str(smi), str(lineno), smiles, error_reason(exc)))
            continue
        hits = [r for r, h in graphs if nx.is_isomorphic(g, h, node_match=match)]
        free = [r for r in hits if "smiles" not in r.properties]
        if len(hits) == 1 and free:
            free[0].properties["smiles"] = smiles
        else:
            why = "matches no molecule" if not hits else f"matches {len(hits)} molecules"
            if len(hits) == 1:
                why = f"its molecule {hits[0].id} already has SMILES {hits[0].properties['smiles']}"
            rejected.append(Rejected(str(smi), str(lineno), smiles, why))


def load_logan(
    root: str | os.PathLike[str], name: str, min_distance: float = MIN_DISTANCE
) -> LoadResult:
    """One LoGAN set, ``<root>/logan/<name>.extxyz`` (``name`` as in :data:`LOGAN_SETS`).

    Molecules (no periodicity) become Molecule, crystals Structure. Properties: those of the
    comment line (QM9 values by name, e.g. ``qm9_index``, ``U0``; MP ``energy``, ``spacegroup``),
    ``set``, ``role`` (training / ground_truth), ``target`` (the set's prefix, e.g. ``mp-559550``)
    and ``origin``; SMILES from ``<name>.smi`` when present, matched by bond graph.
    """
    from ase.io import read

    path = require_file(Path(root) / "logan" / f"{name}.extxyz", f"LoGAN set {name!r}")
    target, role = name, ""
    for suffix in ("_training", "_ground_truth"):
        if name.endswith(suffix):
            target, role = name.removesuffix(suffix), suffix[1:]
    result = LoadResult()
    for i, comment, frame in _xyz_frames(path.read_text(encoding="utf-8")):
        rid = f"{name}-{i:03d}"
        if isinstance(frame, Exception):
            result.rejected.append(Rejected(str(path), str(i), rid, error_reason(frame)))
            continue
        try:
            atoms = read(io.StringIO(frame), format="extxyz")
            structure = atoms_to_pymatgen(atoms)
            reason = structure_problem(structure, min_distance)
        except Exception as exc:  # any parse failure rejects this frame only
            reason = error_reason(exc)
        if reason is not None:
            result.rejected.append(Rejected(str(path), str(i), rid, reason))
            continue
        props = _frame_properties(atoms, comment)
        props.update(set=name, role=role, target=target, origin=f"{path}#{i}")
        result.records.append(Record(rid, "logan", structure, props))
    if not result.records and not result.rejected:
        result.rejected.append(Rejected(str(path), "", "", "no frame found in file"))
    smi = path.with_suffix(".smi")
    if smi.is_file():
        _attach_smiles(result.records, smi, result.rejected)
    return result
