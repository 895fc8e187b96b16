"""Where and how a stage runs: CPU threads, the Lightning accelerator and devices for a
rule's GPUs, and the numeric precision that goes with them (torch is imported on use: the
DFT environment has none)."""

from __future__ import annotations

import os


def set_threads(threads: int | None) -> None:
    """Pin torch (and child processes) to ``threads`` CPU threads (None or 0: leave as is)."""
    if not threads:
        return
    import torch

    os.environ["OMP_NUM_THREADS"] = str(threads)
    os.environ["MKL_NUM_THREADS"] = str(threads)
    torch.set_num_threads(int(threads))


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
