"""pw.x inputs: :func:`pw_input` builds a :class:`PwInput` (namelists + cards) for ``scf``,
``nscf``, ``bands``, ``relax`` and ``vc-relax`` (``cell_dofree='2Dxy'``): noncollinear with
spin-orbit coupling by default, ``ecutwfc``/``ecutrho``, a k grid or an explicit k list,
smearing or fixed occupations, ``max_seconds``, ``nbnd``.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from topogen.dft.pseudos.upf import read_upf_header
from topogen.dft.qe import EspressoError
from topogen.dft.qe.crystal import Crystal
from topogen.dft.qe.namelists import render_namelist

__all__ = ["PwInput", "pw_input"]


_SECTIONS = ("control", "system", "electrons", "ions", "cell")


@dataclass
class PwInput:
    """Namelists and cards of one pw.x run. ``kpoints``: a grid ``(n1, n2, n3)`` or an
    explicit list ``(nk, 3)`` of reduced coordinates (equal weights)."""

    namelists: dict[str, dict[str, Any]]
    crystal: Crystal
    pseudos: dict[str, Path]
    kpoints: tuple[int, int, int] | np.ndarray
    masses: dict[str, float] = field(default_factory=dict)

    @property
    def calculation(self) -> str:
        return str(self.namelists["control"].get("calculation", "scf"))

    def updated(self, **sections: Mapping[str, Any]) -> PwInput:
        """A copy with ``section={key: value}`` merged in (a value of None deletes the key)."""
        new = copy.deepcopy(self)
        for sec, entries in sections.items():
            target = new.namelists.setdefault(sec, {})
            for k, v in entries.items():
                if v is None:
                    target.pop(k, None)
                else:
                    target[k] = v
        return new

    def render(self) -> str:
        parts = [render_namelist(s, self.namelists[s]) for s in _SECTIONS if s in self.namelists]
        species = ["ATOMIC_SPECIES"]
        for el in self.crystal.elements:
            species.append(f"  {el} {self.masses.get(el, _mass(el)):.4f} {self.pseudos[el].name}")
        cell = ["CELL_PARAMETERS angstrom"]
        cell += ["  " + " ".join(f"{x:16.10f}" for x in row) for row in self.crystal.cell]
        pos = ["ATOMIC_POSITIONS angstrom"]
        pos += [
            f"  {s} " + " ".join(f"{x:16.10f}" for x in p)
            for s, p in zip(self.crystal.symbols, self.crystal.positions, strict=True)
        ]
        if isinstance(self.kpoints, tuple):
            kp = [
                "K_POINTS automatic",
                "  " + " ".join(str(int(n)) for n in self.kpoints) + " 0 0 0",
            ]
        else:
            k = np.asarray(self.kpoints, dtype=float).reshape(-1, 3)
            kp = ["K_POINTS crystal", f"  {len(k)}"]
            kp += [f"  {a:14.10f} {b:14.10f} {c:14.10f} {1.0 / len(k):.10e}" for a, b, c in k]
        return "\n".join([*parts, *species, *cell, *pos, *kp]) + "\n"


def _mass(element: str) -> float:
    from ase.data import atomic_masses, atomic_numbers

    if element not in atomic_numbers:
        raise EspressoError(f"unknown element {element!r}")
    return float(atomic_masses[atomic_numbers[element]])


def pw_input(
    structure: Any,
    pseudos: Mapping[str, str | os.PathLike[str]],
    *,
    calculation: str = "scf",
    ecutwfc: float = 30.0,
    ecutrho: float | None = None,
    kpoints: Sequence[int] | np.ndarray = (6, 6, 1),
    spin_orbit: bool = True,
    occupations: str = "smearing",
    smearing: str = "mv",
    degauss: float = 0.005,
    nbnd: int | None = None,
    conv_thr: float = 1e-8,
    mixing_beta: float = 0.4,
    electron_maxstep: int = 100,
    max_seconds: float | None = None,
    forc_conv_thr: float = 1e-3,
    etot_conv_thr: float = 1e-4,
    press_conv_thr: float = 0.5,
    nstep: int = 50,
    two_d: bool = True,
    prefix: str = "pwscf",
    extra: Mapping[str, Mapping[str, Any]] | None = None,
) -> PwInput:
    """pw.x input for a (2D) crystal. Energies in Ry, ``forc_conv_thr`` in Ry/bohr,
    ``press_conv_thr`` in kbar, ``degauss`` in Ry (QE's units).

    ``two_d`` sets ``assume_isolated='2D'`` and needs the frame of :meth:`Crystal.as_2d` (it
    is applied here). ``spin_orbit`` (noncollinear + lspinorb) needs fully relativistic
    pseudopotentials for every element. ``kpoints`` is a grid, or an ``(nk, 3)`` array of
    reduced coordinates for ``nscf``/``bands`` runs (symmetry then off: ``nosym``,
    ``noinv``). ``extra={'electrons': {...}}`` overrides anything.
    """
    if calculation not in ("scf", "nscf", "bands", "relax", "vc-relax"):
        raise EspressoError(f"unsupported calculation {calculation!r}")
    crystal = Crystal.from_any(structure)
    if two_d:
        crystal = crystal.as_2d()
    paths = {el: Path(pseudos[el]) for el in crystal.elements if el in pseudos}
    missing = [el for el in crystal.elements if el not in paths]
    if missing:
        raise EspressoError(f"no pseudopotential given for {', '.join(missing)}")
    headers = {el: read_upf_header(p) for el, p in paths.items()}
    if spin_orbit:
        scalar = [el for el, h in headers.items() if not h.fully_relativistic]
        if scalar:
            raise EspressoError(
                "spin-orbit coupling needs fully relativistic pseudopotentials; not so for "
                + ", ".join(f"{el} ({paths[el].name})" for el in scalar)
            )
    ultrasoft = any(h.pseudo_type.upper() in ("US", "PAW", "USPP") for h in headers.values())
    if ecutrho is None:
        ecutrho = (8.0 if ultrasoft else 4.0) * ecutwfc

    control: dict[str, Any] = {
        "calculation": calculation,
        "prefix": prefix,
        "outdir": "out",
        "pseudo_dir": "pseudo",
        "restart_mode": "from_scratch",
        "verbosity": "high",
        "tprnfor": calculation in ("scf", "relax", "vc-relax"),
        "tstress": calculation in ("scf", "relax", "vc-relax"),
        "max_seconds": max_seconds,
    }
    if calculation in ("relax", "vc-relax"):
        control.update(forc_conv_thr=forc_conv_thr, etot_conv_thr=etot_conv_thr, nstep=nstep)
    system: dict[str, Any] = {
        "ibrav": 0,
        "nat": len(crystal.symbols),
        "ntyp": len(crystal.elements),
        "ecutwfc": float(ecutwfc),
        "ecutrho": float(ecutrho),
        "occupations": occupations,
    }
    if occupations == "smearing":
        system.update(smearing=smearing, degauss=float(degauss))
    if nbnd is not None:
        system["nbnd"] = int(nbnd)
    if spin_orbit:
        system.update(noncolin=True, lspinorb=True)
    if two_d:
        system["assume_isolated"] = "2D"
    kp = np.asarray(kpoints, dtype=float)
    explicit = not (kp.shape == (3,) and _ints(kp.tolist()))
    if explicit:
        system.update(nosym=True, noinv=True)
    electrons: dict[str, Any] = {
        "conv_thr": float(conv_thr),
        "mixing_beta": float(mixing_beta),
        "electron_maxstep": int(electron_maxstep),
    }
    if calculation in ("nscf", "bands"):
        electrons["diago_full_acc"] = True
    namelists = {"control": control, "system": system, "electrons": electrons}
    if calculation in ("relax", "vc-relax"):
        namelists["ions"] = {"ion_dynamics": "bfgs"}
    if calculation == "vc-relax":
        namelists["cell"] = {
            "cell_dynamics": "bfgs",
            "cell_dofree": "2Dxy" if two_d else "all",
            "press_conv_thr": float(press_conv_thr),
        }
    for sec, entries in (extra or {}).items():
        namelists.setdefault(sec.lower(), {}).update(entries)
    if explicit:
        k = np.asarray(kpoints, dtype=float).reshape(-1, 3)
    else:
        k = tuple(int(n) for n in kpoints)
        if two_d and k[2] != 1:
            raise EspressoError(f"a 2D crystal needs one k point along c, got grid {k}")
    return PwInput(namelists, crystal, paths, k)


def _ints(values: Sequence[Any]) -> bool:
    try:
        return all(float(v) == int(v) and int(v) >= 1 for v in values)
    except (TypeError, ValueError):
        return False
