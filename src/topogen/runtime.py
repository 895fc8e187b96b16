"""Run-time settings shared by every stage: CPU threads."""

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
