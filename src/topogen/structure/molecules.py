"""Molecules as canonical SMILES (RDKit): bonds perceived from the 3D geometry, charge 0,
stereochemistry removed, so two conformers of one constitutional isomer give one string."""

from __future__ import annotations

from typing import Any


def canonical_smiles(smiles: str) -> str:
    """RDKit's canonical form of ``smiles`` without stereochemistry; ValueError if invalid."""
    from rdkit import Chem

    mol = Chem.MolFromSmiles(smiles)
    if mol is None:
        raise ValueError(f"not a valid SMILES string: {smiles!r}")
    Chem.RemoveStereochemistry(mol)
    return Chem.MolToSmiles(mol)


def geometry_smiles(symbols: list[str], positions: Any, charge: int = 0) -> str | None:
    """Canonical SMILES of a 3D geometry (Angstrom), or None when RDKit cannot assign bond
    orders (a radical, an impossible valence). A fragmented geometry gives a dotted SMILES."""
    from rdkit import Chem, RDLogger
    from rdkit.Chem import rdDetermineBonds

    RDLogger.DisableLog("rdApp.*")
    lines = [str(len(symbols)), ""]
    lines += [
        f"{s} {x:.6f} {y:.6f} {z:.6f}" for s, (x, y, z) in zip(symbols, positions, strict=True)
    ]
    mol = Chem.MolFromXYZBlock("\n".join(lines) + "\n")
    if mol is None:
        return None
    try:
        rdDetermineBonds.DetermineBonds(mol, charge=charge)
    except (ValueError, RuntimeError):
        return None
    mol = Chem.RemoveHs(mol)
    Chem.RemoveStereochemistry(mol)
    return Chem.MolToSmiles(mol)
