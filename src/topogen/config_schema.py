"""The workflow's configuration against its schema, one line per problem.

Used by the workflow at start-up (``workflow/rules/common.smk``) and by ``topogen config
check``, which also reads the files itself so that a YAML syntax error names the file, line
and column (Snakemake reads ``--configfile`` files before any workflow code runs, and its
message names neither).
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from topogen.errors import TopogenError

__all__ = ["config_problems", "load_config", "merge_config"]


def load_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A YAML (or JSON) config file as a dict; a clear error names the file and, for a
    syntax error, the line and column."""
    import yaml

    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise TopogenError(f"{p}: cannot read the config file ({exc.strerror})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        where = f"{p}:{mark.line + 1}:{mark.column + 1}" if mark else str(p)
        what = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise TopogenError(f"{where}: YAML syntax error: {what}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise TopogenError(f"{p}: a config must be a mapping of keys, got {type(data).__name__}")
    return data


def merge_config(base: dict[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """``update`` over ``base``, nested mappings merged key by key (as Snakemake merges
    ``--configfile`` files over the workflow's own)."""
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge_config(dict(out[key]), value)
        else:
            out[key] = value
    return out


def config_problems(
    cfg: Mapping[str, Any], schema_path: str | os.PathLike[str], limit: int = 10
) -> list[str]:
    """One line per schema violation: the key path, the reason (instances cut short) and,
    for an unknown key, the closest known one. Integers must be integers (4.0 is not)."""
    import jsonschema
    import yaml

    schema = yaml.safe_load(Path(schema_path).read_text(encoding="utf-8"))
    base = jsonschema.Draft202012Validator
    strict = base.TYPE_CHECKER.redefine(
        "integer", lambda _, x: isinstance(x, int) and not isinstance(x, bool)
    )
    validator = jsonschema.validators.extend(base, type_checker=strict)(schema)
    lines = []
    for err in sorted(validator.iter_errors(cfg), key=lambda e: [str(p) for p in e.path]):
        where = ".".join(str(p) for p in err.absolute_path) or "(top level)"
        reason = err.message if len(err.message) <= 160 else err.message[:157] + "..."
        if err.validator == "additionalProperties" and isinstance(err.instance, dict):
            known = sorted(err.schema.get("properties", {}))
            for key in sorted(set(err.instance) - set(known)):
                close = difflib.get_close_matches(key, known, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else f"; known: {', '.join(known)}"
                lines.append(f"  {where}: unknown key {key!r}{hint}")
            continue
        lines.append(f"  {where}: {reason}")
    return lines[:limit] + ([f"  ... and {len(lines) - limit} more"] if len(lines) > limit else [])
