"""The ionic steps of a pw.x relaxation as training data: every step's structure, energy,
forces and stress (:class:`~topogen.io.trajectories.Frame`), for the CHGNet fine-tuning.

:func:`pw_frames` reads one ``pw.out`` with ASE's espresso reader (``ase.io.read(...,
index=':')``: every configuration that has results; a step whose SCF did not finish has
none and is left out). :func:`relax_trajectory` joins the attempts of a candidate's relax
step (``<workdir>/relax/attempt-NN/pw.out``, :mod:`topogen.dft.qe.handlers`) in order; a
restarted attempt begins where the previous one stopped, so a frame equal to the one before
it (same cell and positions) is kept once.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from topogen.dft.qe import EspressoError
from topogen.io.trajectories import Frame, Trajectory

__all__ = ["pw_frames", "relax_trajectory"]

_SAME = 1e-8  # A: frames this close (cell and positions) are one


def pw_frames(pwout: str | os.PathLike[str]) -> list[Frame]:
    """Every ionic step of a pw.x output that has an energy and forces (module docstring)."""
    import ase.io
    from ase import units

    path = Path(pwout)
    try:
        images = ase.io.read(path, index=":", format="espresso-out")
    except Exception as exc:  # ASE raises anything from a broken file
        raise EspressoError(f"{path}: cannot read the ionic steps: {exc!r}") from None
    frames = []
    for atoms in images:
        calc = atoms.calc
        if calc is None or "energy" not in calc.results or "forces" not in calc.results:
            continue
        stress = calc.results.get("stress")
        kbar = None
        if stress is not None:  # ASE: Voigt, eV/A^3, positive tensile -> kbar, compressive
            s = np.asarray(stress, dtype=float)
            s = s if s.shape == (3, 3) else _voigt_to_matrix(s)
            kbar = -s / units.GPa * 10.0
        frames.append(
            Frame(
                np.array(atoms.cell[:]),
                list(atoms.get_chemical_symbols()),
                atoms.get_positions(),
                float(calc.results["energy"]),
                np.asarray(calc.results["forces"], dtype=float),
                kbar,
            )
        )
    return frames


def _voigt_to_matrix(v: np.ndarray) -> np.ndarray:
    xx, yy, zz, yz, xz, xy = v
    return np.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]])


def relax_trajectory(workdir: str | os.PathLike[str], candidate_id: str) -> Trajectory:
    """The frames of every attempt of ``workdir``'s relax step, in order (none when the
    candidate was not relaxed: no relax folder)."""
    outputs = sorted((Path(workdir) / "relax").glob("attempt-*/pw.out"))
    frames: list[Frame] = []
    for out in outputs:
        for frame in pw_frames(out):
            if frames and _same(frames[-1], frame):
                continue
            frames.append(frame)
    formula = None
    if frames:
        from pymatgen.core import Composition

        formula = Composition("".join(frames[0].species)).reduced_formula
    return Trajectory(candidate_id, frames, [str(p) for p in outputs], formula)


def _same(a: Frame, b: Frame) -> bool:
    return (
        a.species == b.species
        and np.allclose(a.lattice, b.lattice, atol=_SAME)
        and np.allclose(a.positions, b.positions, atol=_SAME)
    )
