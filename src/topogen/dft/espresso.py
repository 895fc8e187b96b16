"""Quantum ESPRESSO ``pw.x`` for 2D crystals: structures, inputs, launchers, output parsing.

* :class:`Crystal` holds a structure (from ASE ``Atoms``, a pymatgen ``Structure`` or its
  dict) and :meth:`Crystal.as_2d` puts it in the frame ``assume_isolated='2D'`` needs: a and
  b in the xy plane, c along z and perpendicular to them, the layer centred on z = 0.
* :func:`pw_input` builds a :class:`PwInput` (namelists + cards) for ``scf``, ``nscf``,
  ``bands``, ``relax`` and ``vc-relax`` (``cell_dofree='2Dxy'``): noncollinear with
  spin-orbit coupling by default, ``ecutwfc``/``ecutrho``, a k grid or an explicit k list,
  smearing or fixed occupations, ``max_seconds``, ``nbnd``.
* :class:`Launcher` turns a program and its arguments into an argument list: ``srun`` under
  SLURM, ``mpirun`` elsewhere, nothing for one process; ``-nk`` pools. No shell is involved.
* :func:`parse_pw_output` reads energies (eV), Fermi level or HOMO/LUMO, forces (eV/A),
  stress (kbar), band energies per k point, convergence flags, wall time and error messages.

Restarts and error handling are in :mod:`topogen.dft.handlers`.
"""

from __future__ import annotations

import copy
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from topogen.dft.pseudos import read_upf_header
from topogen.errors import TopogenError

__all__ = [
    "BOHR",
    "RY",
    "Crystal",
    "EspressoError",
    "Launcher",
    "ProgramRun",
    "PwInput",
    "PwOutput",
    "full_kgrid",
    "kgrid_for_spacing",
    "parse_namelists",
    "parse_pw_output",
    "pw_input",
    "run_program",
]

RY = 13.605693122994  # eV
BOHR = 0.529177210903  # Angstrom
RY_PER_BOHR = RY / BOHR  # eV/A


class EspressoError(TopogenError):
    """pw.x cannot be set up or run, or its output cannot be read."""


# ---------------------------------------------------------------- structures


@dataclass(frozen=True)
class Crystal:
    """A periodic structure: ``cell`` rows in A, ``positions`` cartesian in A."""

    cell: np.ndarray
    symbols: tuple[str, ...]
    positions: np.ndarray

    def __post_init__(self) -> None:
        cell = np.asarray(self.cell, dtype=float).reshape(3, 3)
        pos = np.asarray(self.positions, dtype=float).reshape(-1, 3)
        if len(pos) != len(self.symbols) or not len(pos):
            raise EspressoError(f"{len(self.symbols)} symbols but {len(pos)} positions")
        if not (np.isfinite(cell).all() and np.isfinite(pos).all()):
            raise EspressoError("cell or positions hold NaN or infinite values")
        if abs(np.linalg.det(cell)) < 1e-6:
            raise EspressoError("the cell has zero volume")
        object.__setattr__(self, "cell", cell)
        object.__setattr__(self, "positions", pos)
        object.__setattr__(self, "symbols", tuple(str(s) for s in self.symbols))

    @classmethod
    def from_any(cls, structure: Any) -> Crystal:
        """From a :class:`Crystal`, ASE ``Atoms``, pymatgen ``Structure`` or its ``as_dict()``."""
        if isinstance(structure, Crystal):
            return structure
        if isinstance(structure, Mapping):
            from pymatgen.core import Structure

            structure = Structure.from_dict(dict(structure))
        if hasattr(structure, "get_cell") and hasattr(structure, "get_chemical_symbols"):
            return cls(
                np.array(structure.get_cell()),
                tuple(structure.get_chemical_symbols()),
                structure.get_positions(),
            )
        if hasattr(structure, "lattice") and hasattr(structure, "cart_coords"):
            if not structure.is_ordered:
                raise EspressoError("disordered structures (partial occupancies) are not supported")
            return cls(
                structure.lattice.matrix,
                tuple(site.specie.symbol for site in structure),
                structure.cart_coords,
            )
        raise EspressoError(f"cannot read a structure from {type(structure).__name__}")

    @property
    def elements(self) -> list[str]:
        return list(dict.fromkeys(self.symbols))

    @property
    def reduced(self) -> np.ndarray:
        return self.positions @ np.linalg.inv(self.cell)

    def thickness(self) -> float:
        """Extent of the layer along the cell's third axis (A), periodic images considered."""
        c = np.linalg.norm(self.cell[2])
        z = np.sort(self.reduced[:, 2] % 1.0)
        gaps = np.diff(np.concatenate([z, z[:1] + 1.0]))
        return float((1.0 - gaps.max()) * c)

    def as_2d(self, vacuum: float | None = None, min_vacuum: float = 6.0) -> Crystal:
        """The same crystal with a, b in the xy plane, c along +z, the layer centred on z = 0.

        ``vacuum`` (A) resets c to thickness + vacuum. Raises if c is not perpendicular to a and
        b, or if c is shorter than 2 * (thickness + ``min_vacuum`` / 2): the 2D Coulomb cutoff
        of pw.x needs c larger than twice the extent of the electrons.
        """
        a1, a2, a3 = self.cell
        normal = np.cross(a1, a2)
        normal /= np.linalg.norm(normal)
        cos = [abs(a3 @ v) / (np.linalg.norm(a3) * np.linalg.norm(v)) for v in (a1, a2)]
        if max(cos) > 1e-4:
            raise EspressoError(
                "a 2D crystal needs its third lattice vector perpendicular to the first two "
                f"(vacuum along c); angles differ from 90 deg by cos = {max(cos):.2g}"
            )
        reduced = self.reduced
        if a3 @ normal < 0:  # left-handed: swap a and b to keep c along +z
            a1, a2 = a2, a1
            reduced = reduced[:, [1, 0, 2]]
            normal = -normal
        e1 = a1 / np.linalg.norm(a1)
        e2 = np.cross(normal, e1)
        rot = np.stack([e1, e2, normal])
        thickness = self.thickness()
        c = np.linalg.norm(a3) if vacuum is None else thickness + vacuum
        cell = np.array([rot @ a1, rot @ a2, [0.0, 0.0, c]])
        cell[:2, 2] = 0.0
        # centre the layer: the middle of the largest empty gap goes to z = +-c/2
        z = reduced[:, 2] % 1.0
        order = np.sort(z)
        gaps = np.diff(np.concatenate([order, order[:1] + 1.0]))
        i = int(gaps.argmax())
        middle = (order[i] + gaps[i] / 2) % 1.0
        zc = (z - middle) % 1.0  # layer now in (0, 1) with vacuum at the ends
        zc -= (zc.min() + zc.max()) / 2
        xy = reduced[:, :2] % 1.0
        pos = np.column_stack([xy @ cell[:2, :2], zc * np.linalg.norm(a3)])
        if c < 2 * thickness + min_vacuum:
            raise EspressoError(
                f"c = {c:.2f} A is too short for the 2D Coulomb cutoff of a layer "
                f"{thickness:.2f} A thick: use c >= 2 * thickness + {min_vacuum:g} A "
                f"(vacuum >= {thickness + min_vacuum:.2f} A)"
            )
        return Crystal(cell, self.symbols, pos)


def kgrid_for_spacing(cell: np.ndarray, spacing: float, two_d: bool = True) -> tuple[int, ...]:
    """Monkhorst-Pack divisions with reciprocal spacing <= ``spacing`` (1/A, no 2 pi)."""
    recip = np.linalg.inv(np.asarray(cell, dtype=float)).T
    n = [max(1, int(np.ceil(np.linalg.norm(b) / spacing))) for b in recip]
    if two_d:
        n[2] = 1
    return tuple(n)


def full_kgrid(grid: Sequence[int]) -> np.ndarray:
    """All points of an unshifted grid in reduced coordinates, last index fastest (kmesh.pl)."""
    n1, n2, n3 = (int(x) for x in grid)
    k = np.array(
        [[i / n1, j / n2, m / n3] for i in range(n1) for j in range(n2) for m in range(n3)]
    )
    return k


# ---------------------------------------------------------------- namelists


def _fortran(value: Any) -> str:
    if isinstance(value, bool):
        return ".true." if value else ".false."
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        if not np.isfinite(value):
            raise EspressoError(f"cannot write {value} to a Fortran namelist")
        return repr(float(value))
    if isinstance(value, str | os.PathLike):
        return "'" + str(value).replace("'", "''") + "'"
    raise EspressoError(f"cannot write {type(value).__name__} {value!r} to a Fortran namelist")


def _python(token: str) -> Any:
    t = token.strip()
    if t[:1] in ("'", '"') and t[-1:] == t[:1]:
        return t[1:-1].replace(t[0] * 2, t[0])
    low = t.lower()
    if low in (".true.", ".t.", "t", "true"):
        return True
    if low in (".false.", ".f.", "f", "false"):
        return False
    try:
        return int(t)
    except ValueError:
        pass
    try:
        return float(low.replace("d", "e"))
    except ValueError:
        raise EspressoError(f"cannot read namelist value {token!r}") from None


def _split_assignments(text: str) -> list[str]:
    out, cur, quote = [], "", ""
    for ch in text:
        if quote:
            cur += ch
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
            cur += ch
        elif ch in ",\n":
            out.append(cur)
            cur = ""
        elif ch == "!":  # comment to end of line
            quote = "\n"
        else:
            cur += ch
    out.append(cur)
    return [s.strip() for s in out if s.strip()]


def parse_namelists(text: str) -> dict[str, dict[str, Any]]:
    """The Fortran namelists (``&name ... /``) of a QE-style input, keys lower case."""
    out: dict[str, dict[str, Any]] = {}
    for m in re.finditer(r"^\s*&(\w+)(.*?)^\s*/\s*$", text, re.S | re.M):
        body = re.sub(r"!.*", "", m.group(2))
        entries: dict[str, Any] = {}
        for item in _split_assignments(body):
            if "=" not in item:
                raise EspressoError(f"&{m.group(1)}: cannot read {item!r}")
            key, value = item.split("=", 1)
            entries[key.strip().lower()] = _python(value)
        out[m.group(1).lower()] = entries
    return out


def render_namelist(name: str, entries: Mapping[str, Any]) -> str:
    lines = [f"&{name.upper()}"]
    lines += [f"  {k} = {_fortran(v)}" for k, v in entries.items() if v is not None]
    return "\n".join([*lines, "/"])


# ---------------------------------------------------------------- pw.x inputs

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


# ---------------------------------------------------------------- launching


@dataclass(frozen=True)
class Launcher:
    """How to start a program: MPI launcher, process count, pools, OpenMP threads.

    ``mpi``: ``"auto"`` (``srun`` when ``SLURM_JOB_ID`` is set, else ``mpirun``), ``"srun"``,
    ``"mpirun"`` or ``"none"``. One process always runs without a launcher (a nested ``srun``
    inside a Snakemake SLURM job step would wait for resources the step already holds).
    ``mpirun`` gets ``--allow-run-as-root`` when run as root and ``--bind-to none`` so that
    concurrent jobs on one node are not pinned to the same cores.
    """

    nprocs: int = 1
    npool: int = 1
    threads: int = 1
    mpi: str = "auto"
    mpi_args: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.nprocs < 1 or self.npool < 1 or self.threads < 1:
            raise EspressoError("nprocs, npool and threads must be >= 1")
        if self.mpi not in ("auto", "srun", "mpirun", "none"):
            raise EspressoError(f"unknown MPI launcher {self.mpi!r}")
        if self.nprocs % self.npool:
            raise EspressoError(f"npool {self.npool} must divide nprocs {self.nprocs}")

    def launcher_kind(self, environ: Mapping[str, str] | None = None) -> str:
        env = os.environ if environ is None else environ
        if self.nprocs == 1 or self.mpi == "none":
            return "none"
        if self.mpi == "auto":
            return "srun" if env.get("SLURM_JOB_ID") else "mpirun"
        return self.mpi

    def command(
        self,
        program: str,
        args: Sequence[str] = (),
        pools: bool = True,
        parallel: bool = True,
        environ: Mapping[str, str] | None = None,
    ) -> list[str]:
        """The argument list; ``parallel=False`` for serial programs (wannier90.x)."""
        kind = self.launcher_kind(environ) if parallel else "none"
        prefix: list[str] = []
        if kind == "srun":
            prefix = ["srun", "--ntasks", str(self.nprocs)]
            if self.threads > 1:
                prefix += ["--cpus-per-task", str(self.threads)]
        elif kind == "mpirun":
            prefix = ["mpirun", "-np", str(self.nprocs), "--bind-to", "none"]
            if hasattr(os, "geteuid") and os.geteuid() == 0:
                prefix.append("--allow-run-as-root")
        prefix += list(self.mpi_args) if kind != "none" else []
        tail = list(args)
        if pools and kind != "none" and self.npool > 1:
            tail += ["-nk", str(self.npool)]
        return [*prefix, program, *tail]

    def environment(self) -> dict[str, str]:
        return {**os.environ, "OMP_NUM_THREADS": str(self.threads)}


@dataclass(frozen=True)
class ProgramRun:
    command: list[str]
    returncode: int
    wall_time: float
    stdout: Path
    stderr: Path
    timed_out: bool = False


def run_program(
    command: Sequence[str],
    cwd: str | os.PathLike[str],
    stdout: str | os.PathLike[str],
    stderr: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
) -> ProgramRun:
    """Run ``command`` (a list, no shell) in ``cwd``; output to files. On ``timeout`` (or an
    exception such as KeyboardInterrupt) the program is terminated, then killed. It stays in
    our process group, so a job manager that signals the group reaches it too."""
    cwd = Path(cwd)
    stdout = Path(stdout)
    stderr = Path(stderr) if stderr else stdout.with_suffix(".err")
    exe = shutil.which(command[0])
    if exe is None:
        raise EspressoError(f"program {command[0]!r} not found on PATH")
    start = time.monotonic()
    timed_out = False
    with open(stdout, "w") as out, open(stderr, "w") as err:
        proc = subprocess.Popen(
            list(command),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            env=dict(env) if env is not None else None,
        )
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            _stop(proc)
        except BaseException:
            _stop(proc)
            raise
    return ProgramRun(
        list(command), proc.returncode, time.monotonic() - start, stdout, stderr, timed_out
    )


def _stop(proc: subprocess.Popen) -> None:
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
        try:
            proc.send_signal(sig)  # mpirun / srun forward it to their ranks
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


# ---------------------------------------------------------------- output parsing

_FLOAT = r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eEdD][-+]?\d+)?"


@dataclass
class PwOutput:
    """What one pw.x run printed. Energies in eV, forces eV/A, stress kbar, k reduced."""

    path: Path | None = None
    calculation: str | None = None
    job_done: bool = False
    energy: float | None = None  # last '!' total energy (eV)
    energies: list[float] = field(default_factory=list)  # every '!' energy (relax steps)
    fermi_energy: float | None = None
    homo: float | None = None
    lumo: float | None = None
    n_electrons: float | None = None
    n_bands: int | None = None
    alat: float | None = None  # bohr
    forces: np.ndarray | None = None
    total_force: float | None = None  # eV/A
    stress: np.ndarray | None = None  # kbar
    pressure: float | None = None  # kbar
    kpoints: np.ndarray | None = None  # (nk, 3) reduced
    eigenvalues: np.ndarray | None = None  # (nk, nbnd) eV
    scf_converged: bool | None = None
    scf_iterations: int | None = None
    max_time_exceeded: bool = False
    relax_converged: bool | None = None
    final_cell: np.ndarray | None = None  # A
    final_positions: np.ndarray | None = None  # A, cartesian
    final_symbols: list[str] | None = None
    wall_time: float | None = None  # s
    errors: list[str] = field(default_factory=list)

    @property
    def reference_energy(self) -> float | None:
        """Fermi level if printed, else the HOMO."""
        return self.fermi_energy if self.fermi_energy is not None else self.homo

    @property
    def ok(self) -> bool:
        """Finished, no error, SCF (and relaxation) converged where applicable."""
        return (
            self.job_done
            and not self.errors
            and not self.max_time_exceeded
            and self.scf_converged is not False
            and self.relax_converged is not False
        )

    @property
    def failure(self) -> str | None:
        """A short reason why the run did not succeed, or None."""
        if self.scf_converged is False:
            return "scf_not_converged"
        if self.max_time_exceeded:
            return "max_seconds_reached"
        if self.relax_converged is False:
            return "relax_not_converged"
        if self.errors:
            return "error: " + self.errors[-1]
        if not self.job_done:
            return "incomplete_output"
        return None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in self.__dict__.items():
            if isinstance(v, np.ndarray):
                v = v.tolist()
            elif isinstance(v, Path):
                v = str(v)
            out[k] = v
        return out


def _duration(text: str) -> float:
    total = 0.0
    for value, unit in re.findall(r"(\d+(?:\.\d+)?)\s*([dhms])", text):
        total += float(value) * {"d": 86400, "h": 3600, "m": 60, "s": 1}[unit]
    return total


def _floats(text: str) -> list[float]:
    return [float(x.replace("d", "e").replace("D", "e")) for x in re.findall(_FLOAT, text)]


def parse_pw_output(
    source: str | os.PathLike[str], text: str | None = None, calculation: str | None = None
) -> PwOutput:
    """Parse a pw.x standard output (a path, or ``text`` with ``source`` naming it).

    ``calculation`` (as in the input) tells whether relaxation results are expected; pw.x
    does not echo it, so without it a relaxation is recognised by its BFGS messages.
    """
    path = None
    if text is None:
        path = Path(source)
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            raise EspressoError(f"{path}: cannot read pw.x output: {exc}") from None
    out = PwOutput(path=path)
    lines = text.splitlines()
    out.job_done = "JOB DONE." in text
    out.calculation = calculation

    out.energies = [
        float(x) * RY for x in re.findall(rf"^!\s+total energy\s+=\s+({_FLOAT})\s+Ry", text, re.M)
    ]
    out.energy = out.energies[-1] if out.energies else None
    for pattern, attr in (
        (rf"the Fermi energy is\s+({_FLOAT})\s+ev", "fermi_energy"),
        (rf"highest occupied level \(ev\):\s+({_FLOAT})", "homo"),
        (rf"lattice parameter \(alat\)\s+=\s+({_FLOAT})", "alat"),
        (rf"number of electrons\s+=\s+({_FLOAT})", "n_electrons"),
    ):
        found = re.findall(pattern, text)
        if found:
            setattr(out, attr, float(found[-1]))
    found = re.findall(
        rf"highest occupied, lowest unoccupied level \(ev\):\s+({_FLOAT})\s+({_FLOAT})", text
    )
    if found:
        out.homo, out.lumo = (float(x) for x in found[-1])
    found = re.findall(r"number of Kohn-Sham states\s*=\s*(\d+)", text)
    out.n_bands = int(found[-1]) if found else None

    if re.search(r"convergence has been achieved in\s+(\d+)\s+iterations", text):
        out.scf_converged = True
        out.scf_iterations = int(re.findall(r"convergence has been achieved in\s+(\d+)", text)[-1])
    if "convergence NOT achieved" in text:
        out.scf_converged = False
        found = re.findall(r"convergence NOT achieved after\s+(\d+)", text)
        out.scf_iterations = int(found[-1]) if found else None
    out.max_time_exceeded = "Maximum CPU time exceeded" in text

    _parse_forces(lines, out)
    _parse_stress(lines, out)
    _parse_bands(lines, out)
    _parse_relax(text, out)

    found = re.findall(r"PWSCF\s*:\s*(.*?)CPU\s+(.*?)WALL", text)
    out.wall_time = _duration(found[-1][1]) if found else None
    out.errors = _errors(text)
    return out


def _errors(text: str) -> list[str]:
    errors = []
    for block in re.findall(r"%{20,}\n(.*?)\n\s*%{20,}", text, re.S):
        msg = " ".join(block.split())
        errors.append(msg)
    for pat in ("Error in routine", "MPI_ABORT", "SIGSEGV", "Segmentation fault"):
        if pat in text and not any(pat in e for e in errors):
            line = next(ln for ln in text.splitlines() if pat in ln)
            errors.append(" ".join(line.split()))
    return errors


def _parse_forces(lines: list[str], out: PwOutput) -> None:
    starts = [i for i, ln in enumerate(lines) if "Forces acting on atoms" in ln]
    if not starts:
        return
    rows = []
    for ln in lines[starts[-1] + 1 :]:
        m = re.match(
            rf"\s*atom\s+\d+\s+type\s+\d+\s+force\s+=\s+({_FLOAT})\s+({_FLOAT})\s+({_FLOAT})", ln
        )
        if m:
            rows.append([float(x) for x in m.groups()])
        elif rows:
            break
    out.forces = np.array(rows) * RY_PER_BOHR
    found = [ln for ln in lines if "Total force =" in ln]
    if found:
        out.total_force = _floats(found[-1].split("=")[1])[0] * RY_PER_BOHR


def _parse_stress(lines: list[str], out: PwOutput) -> None:
    starts = [i for i, ln in enumerate(lines) if "total   stress" in ln]
    if not starts:
        return
    i = starts[-1]
    out.pressure = _floats(lines[i].split("P=")[1])[0]
    out.stress = np.array([_floats(lines[i + j])[3:6] for j in (1, 2, 3)])


def _parse_bands(lines: list[str], out: PwOutput) -> None:
    ends = [
        i
        for i, ln in enumerate(lines)
        if "End of self-consistent calculation" in ln or "End of band structure calculation" in ln
    ]
    if not ends:
        return
    kpts, bands = [], []
    current: list[float] | None = None
    skipping = False
    for ln in lines[ends[-1] + 1 :]:
        s = ln.strip()
        if s.startswith("k =") and "bands (ev)" in s:
            current = []
            bands.append(current)
            kpts.append(_floats(s.split("=", 1)[1].split("(")[0])[:3])
            skipping = False
            continue
        if current is None:
            continue
        if s.startswith("occupation numbers"):
            skipping = True
            continue
        if (
            s.startswith(("the Fermi", "highest", "!", "Writing", "convergence"))
            or "total energy" in s
        ):
            break
        if s and not skipping:
            current.extend(_floats(s))
    if not bands:
        return
    n = min(len(b) for b in bands)
    out.eigenvalues = np.array([b[:n] for b in bands])
    cryst = _crystal_kpoints(lines)
    if cryst is not None and len(cryst) == len(bands):
        out.kpoints = cryst
    else:
        out.kpoints = np.array(kpts)  # cartesian 2 pi / alat (reduced coordinates unknown)


def _crystal_kpoints(lines: list[str]) -> np.ndarray | None:
    """The last 'cryst. coord.' k list (printed with verbosity='high')."""
    starts = [i for i, ln in enumerate(lines) if ln.strip() == "cryst. coord."]
    if not starts:
        return None
    rows = []
    for ln in lines[starts[-1] + 1 :]:
        m = re.match(rf"\s*k\(\s*\d+\)\s*=\s*\(\s*({_FLOAT})\s+({_FLOAT})\s+({_FLOAT})\)", ln)
        if not m:
            break
        rows.append([float(x) for x in m.groups()])
    return np.array(rows) if rows else None


def _parse_relax(text: str, out: PwOutput) -> None:
    if out.calculation not in ("relax", "vc-relax") and "Geometry Optimization" not in text:
        return
    if re.search(r"bfgs converged|End of BFGS Geometry Optimization", text):
        out.relax_converged = True
    elif out.job_done or "The maximum number of steps has been reached" in text:
        out.relax_converged = False
    m = re.search(r"Begin final coordinates(.*?)End final coordinates", text, re.S)
    block = m.group(1) if m else None
    if block is None:  # not converged: the last positions printed
        found = list(re.finditer(r"ATOMIC_POSITIONS.*?(?=\n\s*\n|\Z)", text, re.S))
        cells = list(re.finditer(r"CELL_PARAMETERS.*?(?=\n\s*\n|\Z)", text, re.S))
        block = (cells[-1].group(0) + "\n" if cells else "") + (found[-1].group(0) if found else "")
    _final_structure(block, out)


def _final_structure(block: str, out: PwOutput) -> None:
    cell_m = re.search(
        r"CELL_PARAMETERS\s*\(?\s*(\w+)\s*(?:=\s*(" + _FLOAT + r"))?\)?\s*\n((?:.*\n){3})", block
    )
    cell = None
    if cell_m:
        rows = np.array([_floats(r)[:3] for r in cell_m.group(3).strip().splitlines()])
        unit = cell_m.group(1).lower()
        if unit == "alat":
            alat = float(cell_m.group(2)) if cell_m.group(2) else out.alat or 0.0
            cell = rows * alat * BOHR
        elif unit == "bohr":
            cell = rows * BOHR
        else:
            cell = rows
        out.final_cell = cell
    pos_m = re.search(r"ATOMIC_POSITIONS\s*\(?\s*(\w+)\s*\)?\s*\n(.*)", block, re.S)
    if not pos_m:
        return
    symbols, coords = [], []
    for ln in pos_m.group(2).splitlines():
        t = ln.split()
        if len(t) < 4 or not re.match(r"^[A-Z][a-z]?\w*$", t[0]):
            break
        symbols.append(re.match(r"^[A-Z][a-z]?", t[0]).group(0))
        coords.append([float(x) for x in t[1:4]])
    pos = np.array(coords)
    unit = pos_m.group(1).lower()
    if unit == "bohr":
        pos = pos * BOHR
    elif unit == "alat":
        pos = pos * (out.alat or 0.0) * BOHR
    elif unit == "crystal":
        if cell is None:
            return
        pos = pos @ cell
    out.final_positions, out.final_symbols = pos, symbols
