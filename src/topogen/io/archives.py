"""Safe extraction of tar (plain, gz, bz2, xz) and zip archives (wheels included).

Every member is checked before anything is written: absolute paths, ``..`` that would climb
out of the destination, links, devices and fifos are refused, and one refused member means
nothing is extracted. Files are written into a temporary folder beside the destination, which
then replaces the destination by a rename, so a reader never sees half an extraction.
"""

from __future__ import annotations

import os
import posixpath
import re
import shutil
import stat
import tarfile
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, NoReturn, cast

from topogen.errors import TopogenError

_TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")


class ArchiveError(TopogenError):
    """An archive cannot be read, or holds nothing under the requested prefix."""


class UnsafeArchiveError(ArchiveError):
    """An archive member would write outside the destination or is not a plain file/folder."""


@dataclass(frozen=True)
class _Member:
    name: str  # normalised, relative, "/"-separated
    is_dir: bool
    mode: int  # permission bits from the archive
    open: Callable[[], IO[bytes]]  # the content of a file member


def _safe_name(raw: str) -> str:
    """The member's normalised relative path; raises ValueError with the reason if unsafe."""
    name = raw.replace("\\", "/")
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        raise ValueError("absolute path")
    norm = posixpath.normpath(name) if name else "."
    if norm == ".." or norm.startswith("../"):
        raise ValueError("path escapes the destination")
    return norm


def _tar_members(tf: tarfile.TarFile, archive: Path) -> Iterator[_Member]:
    for info in tf.getmembers():
        if info.issym() or info.islnk():
            kind = "symlink" if info.issym() else "hardlink"
            _refuse(archive, info.name, f"{kind} to {info.linkname!r}")
        if not (info.isreg() or info.isdir()):
            _refuse(archive, info.name, "device, fifo or other special file")
        yield _Member(
            _checked(archive, info.name),
            info.isdir(),
            info.mode,
            lambda info=info: cast(IO[bytes], tf.extractfile(info)),
        )


def _zip_members(zf: zipfile.ZipFile, archive: Path) -> Iterator[_Member]:
    for info in zf.infolist():
        mode = info.external_attr >> 16  # unix mode, 0 when written elsewhere
        if stat.S_ISLNK(mode):
            _refuse(archive, info.filename, "symlink")
        if stat.S_IFMT(mode) not in (0, stat.S_IFREG, stat.S_IFDIR):
            _refuse(archive, info.filename, "device, fifo or other special file")
        yield _Member(
            _checked(archive, info.filename),
            info.is_dir(),
            mode & 0o777 or 0o644,
            lambda info=info: zf.open(info),
        )


def _checked(archive: Path, raw: str) -> str:
    try:
        return _safe_name(raw)
    except ValueError as exc:
        _refuse(archive, raw, str(exc))


def _refuse(archive: Path, member: str, reason: str) -> NoReturn:
    raise UnsafeArchiveError(f"{archive}: refusing member {member!r}: {reason}")


def _under(name: str, prefix: str) -> bool:
    prefix = prefix.strip("/")
    return not prefix or name == prefix or name.startswith(prefix + "/")


def extract(
    archive: str | os.PathLike[str], dest: str | os.PathLike[str], members: str | None = None
) -> list[Path]:
    """Extract ``archive`` into ``dest`` (replacing it); returns the files written, under ``dest``.

    ``members`` keeps only the members under that folder prefix (``"pkg/data/"``); their
    paths keep the prefix. All members are checked, selected or not.
    """
    archive, dest = Path(archive), Path(dest)
    if not archive.is_file():
        raise ArchiveError(f"{archive}: archive does not exist")
    if dest.exists() and not dest.is_dir():
        raise ArchiveError(f"{dest}: destination exists and is not a folder")
    try:
        if _is_zip(archive):
            with zipfile.ZipFile(archive) as zf:
                return _extract(archive, list(_zip_members(zf, archive)), dest, members)
        with tarfile.open(archive, "r:*") as tf:
            return _extract(archive, list(_tar_members(tf, archive)), dest, members)
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as exc:
        raise ArchiveError(f"{archive}: cannot extract ({exc})") from exc


def _is_zip(archive: Path) -> bool:
    """By suffix where it is telling (a tar may end with a zip member), else by content."""
    name = archive.name.lower()
    if name.endswith((".zip", ".whl")):
        return True
    if name.endswith(_TAR_SUFFIXES):
        return False
    return zipfile.is_zipfile(archive)


def _extract(archive: Path, checked: list[_Member], dest: Path, prefix: str | None) -> list[Path]:
    chosen = [m for m in checked if m.name != "." and _under(m.name, prefix or "")]
    if prefix and not chosen:
        raise ArchiveError(f"{archive}: no member under {prefix!r}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-", dir=dest.parent))
    old: Path | None = None
    try:
        written: list[str] = []
        for m in chosen:
            target = tmp / m.name
            if m.is_dir:
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with m.open() as src, open(target, "wb") as dst:
                _copy(src, dst)
                os.fsync(dst.fileno())
            os.chmod(target, 0o755 if m.mode & 0o111 else 0o644)
            written.append(m.name)
        os.chmod(tmp, 0o755)
        if dest.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{dest.name}.old-", dir=dest.parent))
            os.replace(dest, old / dest.name)
        os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and not dest.exists():
            os.replace(old / dest.name, dest)  # put the previous content back
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    return [dest / name for name in dict.fromkeys(written)]


def _copy(src: IO[bytes], dst: IO[bytes]) -> None:
    while block := src.read(1 << 20):
        dst.write(block)
