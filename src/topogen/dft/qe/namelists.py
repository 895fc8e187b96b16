"""Fortran namelists (``&name ... /``) of QE-style inputs: read and written."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from topogen.dft.qe import EspressoError

__all__ = ["parse_namelists", "render_namelist"]


def _fortran(value: Any) -> str:
    if isinstance(value, bool):
        return ".true." if value else ".false."
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        if not np.isfinite(value):
            raise EspressoError(f"cannot write {value} to a Fortran namelist")
        return repr(float(value))
    if isinstance(value, str | os.PathLike):
        return "'" + str(value).replace("'", "''") + "'"
    raise EspressoError(f"cannot write {type(value).__name__} {value!r} to a Fortran namelist")


def _python(token: str) -> Any:
    t = token.strip()
    if t[:1] in ("'", '"') and t[-1:] == t[:1]:
        return t[1:-1].replace(t[0] * 2, t[0])
    low = t.lower()
    if low in (".true.", ".t.", "t", "true"):
        return True
    if low in (".false.", ".f.", "f", "false"):
        return False
    try:
        return int(t)
    except ValueError:
        pass
    try:
        return float(low.replace("d", "e"))
    except ValueError:
        raise EspressoError(f"cannot read namelist value {token!r}") from None


def _split_assignments(text: str) -> list[str]:
    out, cur, quote = [], "", ""
    for ch in text:
        if quote:
            cur += ch
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
            cur += ch
        elif ch in ",\n":
            out.append(cur)
            cur = ""
        elif ch == "!":  # comment to end of line
            quote = "\n"
        else:
            cur += ch
    out.append(cur)
    return [s.strip() for s in out if s.strip()]


def parse_namelists(text: str) -> dict[str, dict[str, Any]]:
    """The Fortran namelists (``&name ... /``) of a QE-style input, keys lower case."""
    out: dict[str, dict[str, Any]] = {}
    for m in re.finditer(r"^\s*&(\w+)(.*?)^\s*/\s*$", text, re.S | re.M):
        body = re.sub(r"!.*", "", m.group(2))
        entries: dict[str, Any] = {}
        for item in _split_assignments(body):
            if "=" not in item:
                raise EspressoError(f"&{m.group(1)}: cannot read {item!r}")
            key, value = item.split("=", 1)
            entries[key.strip().lower()] = _python(value)
        out[m.group(1).lower()] = entries
    return out


def render_namelist(name: str, entries: Mapping[str, Any]) -> str:
    lines = [f"&{name.upper()}"]
    lines += [f"  {k} = {_fortran(v)}" for k, v in entries.items() if v is not None]
    return "\n".join([*lines, "/"])
