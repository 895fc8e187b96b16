"""Where and how a stage runs: CPU threads, the Lightning accelerator and devices for a
rule's GPUs, and the numeric precision that goes with them (torch is imported on use: the
DFT environment has none)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def set_threads(threads: int | None) -> None:
    """Pin torch (and child processes) to ``threads`` CPU threads (None or 0: leave as is)."""
    if not threads:
        return
    import torch

    os.environ["OMP_NUM_THREADS"] = str(threads)
    os.environ["MKL_NUM_THREADS"] = str(threads)
    torch.set_num_threads(int(threads))
    for runtime in _openmp_runtimes():  # phonopy ships its own, already started by now
        runtime.omp_set_num_threads(int(threads))


def _openmp_runtimes() -> list[Any]:
    """The OpenMP runtimes loaded in this process (torch's and phonopy's libgomp, each its
    own copy), as ctypes libraries; none where /proc/self/maps is not there.

    Their thread counts matter beyond speed: a forked worker that enters an OpenMP region
    of a runtime whose thread team the parent had started waits forever (the team's
    threads did not survive the fork); with one thread no team is used."""
    import ctypes

    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return []
    paths = {line.split()[-1] for line in maps.splitlines() if "omp" in line.rsplit("/", 1)[-1]}
    out = []
    for path in sorted(paths):
        name = path.rsplit("/", 1)[-1]
        if not name.startswith(("libgomp", "libiomp", "libomp")):
            continue
        try:
            out.append(ctypes.CDLL(path, mode=os.RTLD_NOLOAD | os.RTLD_LAZY))
        except OSError:
            continue
    return out


def precision_for(accelerator: str) -> str:
    """Mixed precision on a GPU (bf16 where supported, else fp16), full precision on CPU."""
    import torch

    if accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available()):
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    return "32-true"


def accelerator_devices(gpus: str | int | None) -> tuple[str, int]:
    """Lightning (accelerator, devices) for a rule's ``gpu`` resource: ``auto`` (or None)
    takes one GPU when there is one, else the CPU; 0 forces the CPU; N > 0 asks for N GPUs
    and fails clearly when torch sees fewer."""
    import torch

    if gpus in (None, "auto", ""):
        return ("gpu", 1) if torch.cuda.is_available() else ("cpu", 1)
    n = int(gpus)
    if n <= 0:
        return "cpu", 1
    if torch.cuda.device_count() < n:
        raise RuntimeError(f"{n} GPU(s) requested, torch sees {torch.cuda.device_count()}")
    return "gpu", n


class Progress:
    """Progress of ``total`` units of work as plain lines on stderr (readable in a terminal
    and in a SLURM log): ``label: done/total (pct%), elapsed, ~time left``, at the first and
    last unit, at each tenth of the total, and at least every ``every`` seconds between."""

    def __init__(self, label: str, total: int, every: float = 30.0, out: object = None) -> None:
        import sys
        import time

        self.label, self.total, self.every = label, max(0, int(total)), every
        self.out = out if out is not None else sys.stderr
        self.start = self.last = time.monotonic()
        self.tenth = -1

    def update(self, done: int) -> None:
        import time

        now = time.monotonic()
        tenth = 10 * done // self.total if self.total else 10
        if done not in (1, self.total) and tenth <= self.tenth and now - self.last < self.every:
            return
        self.last, self.tenth = now, max(self.tenth, tenth)
        elapsed = now - self.start
        left = elapsed / done * (self.total - done) if done else float("nan")
        pct = f" ({100 * done // self.total}%)" if self.total else ""
        tail = f", ~{duration(left)} left" if done < self.total and done else ""
        print(
            f"{self.label}: {done}/{self.total}{pct}, {duration(elapsed)}{tail}",
            file=self.out,
            flush=True,
        )


def duration(seconds: float) -> str:
    """``42 s``, ``17 min``, ``2.5 h``."""
    if seconds != seconds:
        return "?"
    whole = round(seconds)
    if whole < 120:
        return f"{whole} s"
    if whole < 7200:
        return f"{whole // 60} min"
    return f"{whole / 3600:.1f} h"
