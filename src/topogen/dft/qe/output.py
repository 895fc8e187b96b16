"""pw.x output: :func:`parse_pw_output` reads energies (eV), Fermi level or HOMO/LUMO,
forces (eV/A), stress (kbar), band energies per k point, convergence flags, wall time and
error messages into a :class:`PwOutput`.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from topogen.dft.qe import EspressoError

__all__ = ["BOHR", "RY", "PwOutput", "PwProgress", "parse_pw_output"]

RY = 13.605693122994  # eV
BOHR = 0.529177210903  # Angstrom
RY_PER_BOHR = RY / BOHR  # eV/A


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
    # pw.x prints "End of BFGS Geometry Optimization" after "The maximum number of steps
    # has been reached" too (and exits with status 3): that is not convergence
    if "The maximum number of steps has been reached" in text:
        out.relax_converged = False
    elif re.search(r"bfgs converged|End of BFGS Geometry Optimization", text):
        out.relax_converged = True
    elif out.job_done:
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


_KPT = re.compile(r"Computing kpt #:\s*(\d+)\s+of\s+(\d+)")
_SCF = re.compile(r"iteration #\s*(\d+).*?estimated scf accuracy\s*<\s*(" + _FLOAT + ")", re.S)
_THR = re.compile(r"convergence threshold\s*=\s*(" + _FLOAT + ")")
_BFGS = re.compile(r"number of bfgs steps\s*=\s*(\d+)")


class PwProgress:
    """Progress lines of a running pw.x, from the output it has written so far (call
    :meth:`update` with the whole text now and then): k points of an nscf run as
    :class:`~topogen.runtime.Progress` lines (count, elapsed, time left), and one line per
    new SCF iteration (estimated accuracy against the threshold) or relaxation step."""

    def __init__(self, label: str, out: Any = None) -> None:
        import sys

        self.label, self.out = label, out if out is not None else sys.stderr
        self.kpoints: Any = None
        self.kpoints_done = 0
        self.scf = self.bfgs = 0

    def update(self, text: str) -> None:
        from topogen.runtime import Progress

        if kpts := _KPT.findall(text):
            done, total = map(int, kpts[-1])
            if self.kpoints is None:
                self.kpoints = Progress(f"{self.label}: k points", total, out=self.out)
            if done != self.kpoints_done:
                self.kpoints_done = done
                self.kpoints.update(done)
            return
        bfgs = _BFGS.findall(text)
        if bfgs and int(bfgs[-1]) > self.bfgs:
            self.bfgs = int(bfgs[-1])
            self._say(f"relaxation step {self.bfgs}")
        iterations = _SCF.findall(text.rsplit("Self-consistent Calculation", 1)[-1])
        if iterations and int(iterations[-1][0]) != self.scf:
            self.scf = int(iterations[-1][0])
            thr = _THR.search(text)
            target = f" (threshold {float(thr.group(1)):.1e})" if thr else ""
            accuracy = float(iterations[-1][1].replace("d", "e").replace("D", "e"))
            self._say(f"SCF iteration {self.scf}, accuracy {accuracy:.1e} Ry{target}")

    def _say(self, what: str) -> None:
        print(f"{self.label}: {what}", file=self.out, flush=True)
