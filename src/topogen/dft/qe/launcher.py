"""Starting programs: :class:`Launcher` turns a program and its arguments into an argument
list (``srun`` under SLURM, ``mpirun`` elsewhere, nothing for one process; ``-nk`` pools), and
:func:`run_program` runs it without a shell, output to files, with a timeout.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from topogen.dft.qe import EspressoError

__all__ = ["Launcher", "ProgramRun", "run_program"]


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


# What to do when a program is not on PATH (one line each, for the error message).
_PACKAGE = "(Debian: `make system-deps` as root installs it; on a cluster: load its module)"
MISSING = {
    "pw.x": f"install Quantum ESPRESSO {_PACKAGE}",
    "pw2wannier90.x": f"install Quantum ESPRESSO {_PACKAGE}",
    "wannier90.x": f"install Wannier90 {_PACKAGE}",
    "srun": "srun runs only inside a SLURM allocation; elsewhere use --mpi mpirun or none",
    "mpirun": "install an MPI (Debian: openmpi-bin) or use --mpi none for one process",
    "mpiexec": "install an MPI (Debian: openmpi-bin) or use --mpi none for one process",
}


def run_program(
    command: Sequence[str],
    cwd: str | os.PathLike[str],
    stdout: str | os.PathLike[str],
    stderr: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
    watch: Callable[[str], None] | None = None,
    every: float = 5.0,
) -> ProgramRun:
    """Run ``command`` (a list, no shell) in ``cwd``; output to files. On ``timeout`` (or an
    exception such as KeyboardInterrupt) the program is terminated, then killed. It stays in
    our process group, so a job manager that signals the group reaches it too. ``watch``
    gets the output written so far every ``every`` seconds and at the end (progress lines)."""
    cwd = Path(cwd)
    stdout = Path(stdout)
    stderr = Path(stderr) if stderr else stdout.with_suffix(".err")
    exe = shutil.which(command[0])
    if exe is None:
        name = Path(command[0]).name
        fix = MISSING.get(name, "install it or put its folder on PATH")
        raise EspressoError(f"program {command[0]!r} not found on PATH: {fix}")
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
            _wait(proc, timeout, stdout if watch else None, watch, every)
        except subprocess.TimeoutExpired:
            timed_out = True
            _stop(proc)
        except BaseException:
            _stop(proc)
            raise
    return ProgramRun(
        list(command), proc.returncode, time.monotonic() - start, stdout, stderr, timed_out
    )


def _wait(
    proc: subprocess.Popen,
    timeout: float | None,
    output: Path | None,
    watch: Callable[[str], None] | None,
    every: float,
) -> None:
    """``proc.wait(timeout)``, showing ``watch`` the output file every ``every`` seconds."""
    if output is None or watch is None:
        proc.wait(timeout=timeout)
        return
    end = None if timeout is None else time.monotonic() + timeout
    while True:
        step = every if end is None else min(every, max(0.0, end - time.monotonic()))
        try:
            proc.wait(timeout=step)
            break
        except subprocess.TimeoutExpired:
            if end is not None and time.monotonic() >= end:
                raise
            watch(output.read_text(encoding="utf-8", errors="replace"))
    watch(output.read_text(encoding="utf-8", errors="replace"))


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
