"""Run pw.x with restarts, in the spirit of AiiDA's ``PwBaseWorkChain`` error handlers.

Layout of one calculation folder::

    <workdir>/pseudo/          copies of the pseudopotentials (pseudo_dir)
    <workdir>/out/             pw.x outdir, shared by all attempts (restarts read it)
    <workdir>/attempt-01/      pw.in, pw.out, pw.err, attempt.json  (kept on disk)
    <workdir>/attempt-02/      ...

After each attempt the output is diagnosed and, if it failed, a handler derives the next
input from the last one:

=====================  =====================================================================
failure                next attempt
=====================  =====================================================================
scf_not_converged      ``mixing_beta`` halved (not below ``min_mixing_beta``), from scratch;
                       a relaxation continues from its last positions
max_seconds_reached    ``restart_mode='restart'`` in the same outdir (QE's restart files)
relax_not_converged    a new relaxation from the last positions and cell
diagonalization error  ``diagonalization='cg'`` (Cholesky / S matrix / eigenvectors errors)
incomplete_output      the same input again, once (a killed or crashed run)
anything else          no handler: fail
=====================  =====================================================================

At most ``max_attempts`` attempts run; the final :class:`PwFailedError` names the last
reason and the ``pw.out`` to read. It is ``permanent`` (a property of the candidate, recorded
as its ``failed`` verdict by the workflow) when the handlers ran out of remedies or attempts;
not when pw.x failed in a way no handler knows (most likely the set-up: bad input, missing
files), stopped twice without a message (killed, out of memory) or stopped at its time limit.
A rerun after such kills (a SLURM retry) tries again, once per rerun, up to ``max_attempts``:
the give-up of a killed attempt is not replayed as final.

Rerunning :func:`run_pw` on the same folder resumes: a finished successful attempt is
returned as it is, and failed attempts are replayed through the handlers (without rerunning
them) to derive the next input. ``max_seconds`` may differ between calls (a resubmitted job
gets a new time limit); nothing else may. With ``stop_at_max_seconds`` a run stopped by
``max_seconds`` ends the call (the job's time is up) and the next call restarts it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from topogen.dft.qe import CandidateError, EspressoError
from topogen.dft.qe.crystal import Crystal
from topogen.dft.qe.launcher import Launcher, run_program
from topogen.dft.qe.output import PwOutput, PwProgress, parse_pw_output
from topogen.dft.qe.pwinput import PwInput
from topogen.io.atomic import write_text
from topogen.io.provenance import sha256

__all__ = [
    "Attempt",
    "PwFailedError",
    "PwResult",
    "comparable",
    "next_input",
    "run_pw",
    "seed_outdir",
]

_DIAG_ERRORS = re.compile(
    r"cholesky|S matrix not positive definite|eigenvectors failed to converge|"
    r"too many bands are not converged|problems computing cholesky",
    re.IGNORECASE,
)


class PwFailedError(CandidateError):
    """pw.x did not succeed within the allowed attempts, or failed in an unhandled way."""


@dataclass
class Attempt:
    index: int
    directory: Path
    output: PwOutput
    reason: str | None  # why it failed (None: success)
    action: str | None = None  # what the next attempt changed
    wall_time: float | None = None
    command: list[str] = field(default_factory=list)
    exit_status: int | None = None  # of the program (negative: killed by that signal)

    def as_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "directory": str(self.directory),
            "reason": self.reason,
            "action": self.action,
            "wall_time": self.wall_time,
            "command": self.command,
            "exit_status": self.exit_status,
            "output": str(self.output.path) if self.output.path else None,
        }


@dataclass
class PwResult:
    output: PwOutput
    input: PwInput
    attempts: list[Attempt]
    directory: Path
    outdir: Path
    reused: bool = False  # returned from an attempt of an earlier call, nothing rerun

    @property
    def output_path(self) -> Path:
        return self.attempts[-1].directory / "pw.out"

    def as_dict(self) -> dict[str, Any]:
        o = self.output
        return {
            "directory": str(self.directory),
            "outdir": str(self.outdir),
            "output": str(self.output_path),
            "energy_eV": o.energy,
            "fermi_energy_eV": o.fermi_energy,
            "homo_eV": o.homo,
            "lumo_eV": o.lumo,
            "n_electrons": o.n_electrons,
            "n_bands": o.n_bands,
            "scf_iterations": o.scf_iterations,
            "total_force_eV_per_A": o.total_force,
            "pressure_kbar": o.pressure,
            "wall_time_s": sum(a.wall_time or 0.0 for a in self.attempts),
            "attempts": [a.as_dict() for a in self.attempts],
        }


# ---------------------------------------------------------------- handlers

Handler = Callable[[PwInput, PwOutput, list["Attempt"], dict[str, Any]], "tuple[PwInput, str]"]


def _from_last_structure(pw: PwInput, out: PwOutput) -> PwInput:
    if out.final_positions is None or out.final_symbols != list(pw.crystal.symbols):
        return pw
    new = pw.updated()
    cell = out.final_cell if out.final_cell is not None else pw.crystal.cell
    new.crystal = Crystal(cell, pw.crystal.symbols, out.final_positions)
    return new


def _scf(pw: PwInput, out: PwOutput, attempts: list[Attempt], opts: dict[str, Any]):
    beta = float(pw.namelists["electrons"].get("mixing_beta", 0.7))
    new_beta = round(beta * 0.5, 6)
    if new_beta < opts["min_mixing_beta"] - 1e-12:
        raise _GiveUp(f"SCF not converged and mixing_beta {beta:g} is already at its minimum")
    new = _from_last_structure(pw, out) if pw.calculation in ("relax", "vc-relax") else pw
    new = new.updated(control={"restart_mode": "from_scratch"}, electrons={"mixing_beta": new_beta})
    return new, f"mixing_beta {beta:g} -> {new_beta:g}"


def _max_seconds(pw: PwInput, out: PwOutput, attempts: list[Attempt], opts: dict[str, Any]):
    return pw.updated(control={"restart_mode": "restart"}), "restart_mode='restart' from outdir"


def _relax(pw: PwInput, out: PwOutput, attempts: list[Attempt], opts: dict[str, Any]):
    if out.final_positions is None:
        raise _GiveUp("relaxation did not converge and printed no structure to continue from")
    new = _from_last_structure(pw, out).updated(control={"restart_mode": "from_scratch"})
    return new, "new relaxation from the last structure"


def _diagonalization(pw: PwInput, out: PwOutput, attempts: list[Attempt], opts: dict[str, Any]):
    if pw.namelists["electrons"].get("diagonalization") == "cg":
        raise _GiveUp("diagonalization failed with 'cg' too")
    new = pw.updated(control={"restart_mode": "from_scratch"}, electrons={"diagonalization": "cg"})
    return new, "diagonalization -> 'cg'"


def _incomplete(pw: PwInput, out: PwOutput, attempts: list[Attempt], opts: dict[str, Any]):
    if sum(a.reason == "incomplete_output" for a in attempts) > 1:
        last = attempts[-1]
        raise _GiveUp(
            "pw.x stopped without a message twice (killed, out of memory, MPI?); last exit "
            f"status {last.exit_status}, {last.directory / 'pw.err'}: {_tail(last)}",
            permanent=False,
        )
    return pw.updated(control={"restart_mode": "from_scratch"}), "same input again"


def _tail(attempt: Attempt, lines: int = 3) -> str:
    """The last lines of an attempt's pw.err, on one line ("empty" if none)."""
    try:
        text = (attempt.directory / "pw.err").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "missing"
    return " | ".join(ln.strip() for ln in text.strip().splitlines()[-lines:]) or "empty"


class _GiveUp(Exception):
    """No handler can fix it; ``permanent``: a property of the calculation (not the machine)."""

    def __init__(self, message: str, permanent: bool = True) -> None:
        super().__init__(message)
        self.permanent = permanent


def diagnose(out: PwOutput) -> str | None:
    """The failure class of an output (see the module table), or None for success."""
    if out.ok:
        return None
    if out.errors and any(_DIAG_ERRORS.search(e) for e in out.errors):
        return "diagonalization_error"
    return out.failure


HANDLERS: dict[str, Handler] = {
    "scf_not_converged": _scf,
    "max_seconds_reached": _max_seconds,
    "relax_not_converged": _relax,
    "diagonalization_error": _diagonalization,
    "incomplete_output": _incomplete,
}


def next_input(
    pw: PwInput, out: PwOutput, attempts: list[Attempt], min_mixing_beta: float = 0.05
) -> tuple[PwInput, str]:
    """The input of the next attempt after ``out`` failed; raises PwFailedError if none."""
    reason = diagnose(out)
    if reason is None:
        raise PwFailedError("the last attempt succeeded; there is nothing to handle")
    handler = HANDLERS.get(reason)
    if handler is None:
        raise PwFailedError(f"no handler for: {reason}", permanent=False)  # set-up, most likely
    try:
        return handler(pw, out, attempts, {"min_mixing_beta": min_mixing_beta})
    except _GiveUp as exc:
        raise PwFailedError(str(exc), permanent=exc.permanent) from None


# ---------------------------------------------------------------- running


def _prepare_pseudos(pw: PwInput, workdir: Path) -> None:
    folder = workdir / "pseudo"
    folder.mkdir(parents=True, exist_ok=True)
    for path in pw.pseudos.values():
        target = folder / path.name
        if target.exists() and sha256(target) == sha256(path):
            continue
        tmp = folder / f".{path.name}.tmp"
        shutil.copyfile(path, tmp)
        os.replace(tmp, target)


def seed_outdir(source_outdir: Path, target_outdir: Path, prefix: str) -> None:
    """Copy the charge density and data file of ``source_outdir/<prefix>.save`` (not the
    wavefunctions) into ``target_outdir``, for an nscf or bands run. No-op if present."""
    src = Path(source_outdir) / f"{prefix}.save"
    dst = Path(target_outdir) / f"{prefix}.save"
    if (dst / "data-file-schema.xml").exists():
        return
    if not (src / "data-file-schema.xml").exists():
        raise EspressoError(f"{src}: no data-file-schema.xml; did the SCF run finish?")
    tmp = Path(target_outdir) / f".{prefix}.save.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for f in src.iterdir():
        if f.is_file() and not re.match(r"wfc(up|dw)?\d+\.(dat|hdf5)$", f.name):
            shutil.copyfile(f, tmp / f.name)
    os.replace(tmp, dst)


def _attempt_dirs(workdir: Path) -> list[Path]:
    dirs = [p for p in workdir.glob("attempt-*") if re.fullmatch(r"attempt-\d+", p.name)]
    return sorted(dirs, key=lambda p: int(p.name.split("-")[1]))


def _input_for(pw: PwInput) -> PwInput:
    return pw.updated(control={"outdir": "../out", "pseudo_dir": "../pseudo"})


def comparable(text: str) -> str:
    """A rendered pw.x input without its ``max_seconds`` line (a per-job time limit, not part
    of what is computed): two calculations are the same if these agree."""
    return re.sub(r"(?m)^\s*max_seconds\s*=.*\n", "", text)


def run_pw(
    pw: PwInput,
    workdir: str | os.PathLike[str],
    launcher: Launcher | None = None,
    max_attempts: int = 5,
    min_mixing_beta: float = 0.05,
    timeout: float | None = None,
    program: str = "pw.x",
    stop_at_max_seconds: bool = False,
) -> PwResult:
    """Run ``pw`` in ``workdir`` with the restart handlers; resumes a previous run there.

    Raises :class:`PwFailedError` naming the last reason if no attempt succeeds (or, with
    ``stop_at_max_seconds``, when an attempt stopped at ``max_seconds``: rerun to continue),
    and :class:`EspressoError` if ``workdir`` holds a different calculation.
    """
    workdir = Path(workdir)
    launcher = launcher or Launcher()
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "out").mkdir(exist_ok=True)
    _prepare_pseudos(pw, workdir)

    current = _input_for(pw)
    attempts: list[Attempt] = []
    existing = _attempt_dirs(workdir)
    if existing:
        first = existing[0] / "pw.in"
        if first.exists() and comparable(first.read_text(encoding="utf-8")) != comparable(
            current.render()
        ):
            raise EspressoError(
                f"{workdir} holds a different pw.x calculation ({first} differs from the "
                "input asked for); use another folder or remove it"
            )
    # replay finished attempts (resume)
    for d in existing:
        out_path = d / "pw.out"
        if not out_path.exists():
            break
        out = parse_pw_output(out_path, calculation=current.calculation)
        meta = _read_meta(d)
        reason = diagnose(out)
        attempt = Attempt(
            int(d.name.split("-")[1]), d, out, reason, None, meta.get("wall_time"),
            meta.get("command", []), meta.get("exit_status"),
        )  # fmt: skip
        attempts.append(attempt)
        if reason is None:
            return PwResult(out, current, attempts, workdir, workdir / "out", reused=True)
        try:
            current, attempt.action = next_input(current, out, attempts, min_mixing_beta)
        except PwFailedError as exc:
            if reason == "incomplete_output" and not exc.permanent and d == existing[-1]:
                # killed again and again (the machine, not the input): a new job gets a new
                # try instead of replaying the give-up as final
                current = current.updated(control={"restart_mode": "from_scratch"})
                attempt.action = "same input again (a new run after repeated kills)"
                break
            raise _final(workdir, current, attempts, str(exc), exc.permanent) from None

    while True:
        if len(attempts) >= max_attempts:
            last = attempts[-1].reason if attempts else "none"
            raise _final(workdir, current, attempts, f"{max_attempts} attempts used; last: {last}")
        index = attempts[-1].index + 1 if attempts else 1
        d = workdir / f"attempt-{index:02d}"
        if d.exists():
            shutil.rmtree(d)  # an attempt that never wrote its output (killed before it)
        d.mkdir()
        write_text(d / "pw.in", current.render())
        cmd = launcher.command(program, ["-in", "pw.in"])
        watch = PwProgress(f"pw.x {current.calculation} ({d.parent.name}/{d.name})").update
        run = run_program(
            cmd,
            d,
            d / "pw.out",
            d / "pw.err",
            env=launcher.environment(),
            timeout=timeout,
            watch=watch,
        )
        out = parse_pw_output(d / "pw.out", calculation=current.calculation)
        reason = diagnose(out)
        if reason is None and run.returncode != 0:
            reason = f"error: exit status {run.returncode}"
        attempt = Attempt(index, d, out, reason, None, run.wall_time, run.command, run.returncode)
        attempts.append(attempt)
        if reason is None:
            _write_meta(attempt)
            return PwResult(out, current, attempts, workdir, workdir / "out")
        try:
            current, attempt.action = next_input(current, out, attempts, min_mixing_beta)
        except PwFailedError as exc:
            _write_meta(attempt)
            raise _final(workdir, current, attempts, str(exc), exc.permanent) from None
        _write_meta(attempt)
        if stop_at_max_seconds and reason == "max_seconds_reached":
            raise _final(
                workdir, current, attempts, "stopped at max_seconds; rerun to restart from here",
                permanent=False,
            )  # fmt: skip


def _final(
    workdir: Path, pw: PwInput, attempts: list[Attempt], why: str, permanent: bool = True
) -> PwFailedError:
    where = attempts[-1].directory / "pw.out" if attempts else workdir
    return PwFailedError(
        f"pw.x {pw.calculation} in {workdir} failed after {len(attempts)} attempt(s): {why} "
        f"(see {where})",
        output=where,
        permanent=permanent,
    )


def _write_meta(a: Attempt) -> None:
    write_text(a.directory / "attempt.json", json.dumps(a.as_dict(), indent=2) + "\n")


def _read_meta(d: Path) -> dict[str, Any]:
    try:
        return json.loads((d / "attempt.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}
