"""One process at a time per work folder: an exclusive ``flock`` on ``<folder>.lock`` beside
it (beside, so that moving a stale folder aside keeps the lock). The kernel drops the lock
when its holder dies, so a killed job never leaves a stale one."""

from __future__ import annotations

import fcntl
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from topogen.errors import TopogenError

__all__ = ["folder_lock"]


@contextmanager
def folder_lock(folder: str | os.PathLike[str]) -> Iterator[None]:
    """Hold ``<folder>.lock`` for the block; a second holder gets a :class:`TopogenError`
    naming the first (its pid and host) at once, before it touches the folder."""
    folder = Path(folder)
    path = folder.with_name(folder.name + ".lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+", encoding="utf-8") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "unknown"
            raise TopogenError(
                f"{folder}: another topogen process ({holder}) is working in this folder; wait "
                "for it or stop it (two would mix their checkpoints and metrics)"
            ) from None
        try:
            fh.seek(0)
            fh.truncate()
            fh.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
            fh.flush()
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
