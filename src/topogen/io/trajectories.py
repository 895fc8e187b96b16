"""DFT trajectory files: the frames of a relaxation (structure, energy, forces, stress).

The DFT stage writes them (``topogen dft trajectory``, from pw.x's output) and the CHGNet
fine-tuning reads them (``topogen train chgnet``); this module is the one place of the
format. One JSON file per relaxed structure::

    {"schema": "topogen-dft-trajectory/1", "id": ..., "formula": ..., "sources": [pw.out, ...],
     "units": {...}, "frames": [{"lattice": 3x3 A, "species": [...], "positions": cartesian A,
                                 "energy_eV": total, "forces_eV_per_A": n x 3,
                                 "stress_kbar": 3x3 or null}, ...]}

Stress follows pw.x's (and VASP's) sign: positive is compressive (the cell pushes outwards).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from topogen.errors import TopogenError
from topogen.io.atomic import write_text

__all__ = ["TRAJECTORY_SCHEMA", "Frame", "Trajectory", "read_trajectory", "write_trajectory"]

TRAJECTORY_SCHEMA = "topogen-dft-trajectory/1"
UNITS = {"lattice": "A", "positions": "A", "energy": "eV", "forces": "eV/A", "stress": "kbar"}


@dataclass
class Frame:
    """One ionic step: cell and cartesian positions (A), total energy (eV), forces (eV/A),
    stress (kbar, positive compressive; None when not computed)."""

    lattice: np.ndarray
    species: list[str]
    positions: np.ndarray
    energy: float
    forces: np.ndarray
    stress: np.ndarray | None = None

    def structure(self) -> Any:
        """The frame as a pymatgen Structure."""
        from pymatgen.core import Lattice, Structure

        return Structure(
            Lattice(self.lattice), self.species, self.positions, coords_are_cartesian=True
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "lattice": np.asarray(self.lattice).tolist(),
            "species": list(self.species),
            "positions": np.asarray(self.positions).tolist(),
            "energy_eV": float(self.energy),
            "forces_eV_per_A": np.asarray(self.forces).tolist(),
            "stress_kbar": None if self.stress is None else np.asarray(self.stress).tolist(),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Frame:
        stress = d.get("stress_kbar")
        return cls(
            np.asarray(d["lattice"], dtype=float),
            list(d["species"]),
            np.asarray(d["positions"], dtype=float),
            float(d["energy_eV"]),
            np.asarray(d["forces_eV_per_A"], dtype=float),
            None if stress is None else np.asarray(stress, dtype=float),
        )


@dataclass
class Trajectory:
    """The frames of one structure's relaxation and the outputs they were read from."""

    id: str
    frames: list[Frame]
    sources: list[str]
    formula: str | None = None


def write_trajectory(path: str | os.PathLike[str], trajectory: Trajectory) -> None:
    """Write ``trajectory`` atomically (module docstring)."""
    data = {
        "schema": TRAJECTORY_SCHEMA,
        "id": trajectory.id,
        "formula": trajectory.formula,
        "sources": list(trajectory.sources),
        "units": UNITS,
        "frames": [f.as_dict() for f in trajectory.frames],
    }
    write_text(path, json.dumps(data) + "\n")


def read_trajectory(path: str | os.PathLike[str]) -> Trajectory:
    """Read a trajectory file; an error names the file and what is wrong."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise TopogenError(f"{path}: cannot read the trajectory: {exc}") from None
    if data.get("schema") != TRAJECTORY_SCHEMA:
        raise TopogenError(f"{path}: schema {data.get('schema')!r}, expected {TRAJECTORY_SCHEMA}")
    try:
        frames = [Frame.from_dict(f) for f in data["frames"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise TopogenError(f"{path}: a frame is malformed: {exc!r}") from None
    return Trajectory(str(data["id"]), frames, list(data.get("sources", [])), data.get("formula"))
