"""Which UPF file of a family serves an element."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from topogen.dft.pseudos import PseudoError
from topogen.dft.pseudos.sources import PseudoFamily
from topogen.dft.pseudos.upf import UPF_SUFFIXES, read_upf_header

__all__ = ["pseudo_for", "pseudos_for"]


def _name_matches(element: str, name: str) -> bool:
    stem, suffix = os.path.splitext(name)
    return suffix.lower() in UPF_SUFFIXES and bool(
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
