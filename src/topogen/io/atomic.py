"""Atomic file writes: write to a temporary file beside the target, fsync, then rename.

A reader never sees a half-written file: after a crash or a kill the target is either absent
or holds its previous content. Only a hidden ``.<name>.tmp-*`` file may be left behind.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

# A write that fails for lack of room or a read-only disk: named in one line.
FULL = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG)


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success it is renamed onto ``target``.

    For writers that insist on opening the file themselves (pyarrow, matplotlib, torch).
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.tmp-", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp_path, 0o644)
        os.replace(tmp_path, target)
    except OSError as exc:
        tmp_path.unlink(missing_ok=True)
        if exc.errno in FULL and exc.filename in (None, tmp, str(target)):
            from topogen.errors import TopogenError

            raise TopogenError(
                f"{target}: cannot write ({exc.strerror}); nothing was written there"
            ) from None
        raise
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_open(target: str | os.PathLike[str], mode: str = "w") -> Iterator[IO]:
    """Open a temporary file for writing; it replaces ``target`` only if the block succeeds."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open supports modes 'w' and 'wb', not {mode!r}")
    with atomic_path(target) as tmp:
        encoding = None if "b" in mode else "utf-8"
        with open(tmp, mode, encoding=encoding) as fh:
            yield fh
            fh.flush()


def write_text(target: str | os.PathLike[str], text: str) -> None:
    """Atomically write ``text`` (UTF-8) to ``target``."""
    with atomic_open(target, "w") as fh:
        fh.write(text)


def check_writable(paths: Iterator[str | os.PathLike[str]] | list[str | os.PathLike[str]]) -> None:
    """Raise :class:`~topogen.errors.TopogenError` naming the first path whose folder cannot
    be created or written (read-only, full, not a folder), by creating and removing a
    temporary file there: a command checks this before its work, not after it."""
    from topogen.errors import TopogenError

    for path in paths:
        folder = Path(path).parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".topogen-write-check-", dir=folder)
            os.close(fd)
            os.unlink(tmp)
        except OSError as exc:
            why = exc.strerror or type(exc).__name__
            blocker = next((a for a in (folder, *folder.parents) if a.is_file()), None)
            if blocker is not None:
                why = f"{blocker} is a file, not a folder"
            raise TopogenError(f"{path}: cannot write there ({why}); nothing was run") from None
