"""UPF pseudopotential files: their names and headers (element, valence, functional,
relativistic treatment, valence shells from ``PP_CHI``)."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from topogen.dft.pseudos import PseudoError

__all__ = ["UPF_SUFFIXES", "Shell", "UpfHeader", "read_upf_header", "upf_files"]

UPF_SUFFIXES = (".upf",)


def upf_files(directory: Path) -> list[Path]:
    """The UPF files in ``directory``, sorted."""
    return sorted(p for p in directory.iterdir() if p.suffix.lower() in UPF_SUFFIXES)


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
