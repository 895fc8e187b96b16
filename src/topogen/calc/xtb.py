"""GFN2-xTB relaxation of molecules (the ``tblite`` package's ASE calculator): LoGAN's
molecular benchmark relaxes its selected samples with it. The paper relaxed with DFT; GFN2-xTB
is our substitute (seconds per C5H12O isomer on one core, the same isomer minima for such
closed-shell organics).
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from typing import Any

import numpy as np

from topogen.errors import TopogenError


@dataclass
class MoleculeRelaxation:
    atoms: Any  # ase.Atoms at the end of the relaxation
    energy: float  # eV
    fmax: float  # largest force at the end, eV/A
    steps: int
    converged: bool


def relax_molecule(
    molecule: Any, *, fmax: float = 0.05, steps: int = 300, method: str = "GFN2-xTB"
) -> MoleculeRelaxation:
    """BFGS relaxation of a pymatgen Molecule or ASE Atoms (no cell) with xTB; a structure
    xTB cannot converge (SCF failure, atoms on top of each other) raises TopogenError."""
    from ase import Atoms
    from ase.optimize import BFGS
    from tblite.ase import TBLite

    if isinstance(molecule, Atoms):
        atoms = molecule.copy()
    else:
        atoms = Atoms(numbers=[site.specie.Z for site in molecule], positions=molecule.cart_coords)
    atoms.pbc = False
    atoms.cell = None
    atoms.calc = TBLite(method=method, verbosity=0)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            opt = BFGS(atoms, logfile=None)
            converged = bool(opt.run(fmax=fmax, steps=steps))
            forces = atoms.get_forces()
            energy = float(atoms.get_potential_energy())
    except Exception as exc:  # tblite raises its own error types
        raise TopogenError(
            f"xTB relaxation of {atoms.get_chemical_formula()} failed: {exc}"
        ) from exc
    largest = float(np.linalg.norm(forces, axis=1).max()) if len(atoms) else 0.0
    return MoleculeRelaxation(atoms, energy, largest, int(opt.nsteps), converged)
