"""The configuration reference (``docs/configuration.md``), generated from the workflow's
schema and its two configs, so that it cannot drift from them: every key with its type, the
embedded default (``config/config.yaml``), the paper-scale value (``config/paper.yaml``,
where it differs) and the schema's description. Option sections (free-form keys that become
``--flags`` of a command) list the keys the configs set."""

from __future__ import annotations

import json
from typing import Any

MISSING = object()


def _resolve(node: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        return {**schema["$defs"][ref.removeprefix("#/$defs/")], **node}
    return node


def _type(node: dict[str, Any]) -> str:
    t = node.get("type")
    if isinstance(t, list):
        return " or ".join(str(x) for x in t)
    if t:
        return str(t)
    if "enum" in node:
        return "one of " + ", ".join(f"`{v}`" for v in node["enum"])
    if "anyOf" in node or "oneOf" in node:
        return " or ".join(_type(n) for n in node.get("anyOf", node.get("oneOf", [])))
    return "any"


def _get(config: Any, path: list[str]) -> Any:
    for key in path:
        if not isinstance(config, dict) or key not in config:
            return MISSING
        config = config[key]
    return config


def _show(value: Any) -> str:
    if value is MISSING:
        return ""
    text = json.dumps(value, separators=(", ", ": "))
    return f"`{text}`" if len(text) <= 60 else f"`{text[:57]}...`"


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def render(schema: dict[str, Any], default: dict[str, Any], paper: dict[str, Any]) -> str:
    """The Markdown reference (see the module docstring)."""
    rows: list[str] = []

    def walk(own: dict[str, Any], path: list[str]) -> None:
        node = _resolve(own, schema)
        props = node.get("properties") or {}
        is_options = not props and isinstance(node.get("additionalProperties"), dict)
        if path:
            d, p = _get(default, path), _get(paper, path)
            plain = not (props or is_options)
            shown_d = _show(d) if plain else ""
            shown_p = _show(p) if plain and p is not MISSING and p != d else ""
            what = _cell(own.get("description", "") if is_options else node.get("description", ""))
            kind = "options" if is_options else ("section" if props else _type(node))
            rows.append(f"| `{'.'.join(path)}` | {kind} | {shown_d} | {shown_p} | {what} |")
        for key, child in props.items():
            walk(child, [*path, key])
        if is_options:
            d_all, p_all = _get(default, path), _get(paper, path)
            d_all = d_all if isinstance(d_all, dict) else {}
            p_all = p_all if isinstance(p_all, dict) else {}
            for key in sorted(set(d_all) | set(p_all)):
                if isinstance(d_all.get(key), dict) or isinstance(p_all.get(key), dict):
                    _nested(d_all.get(key), p_all.get(key), [*path, key])
                    continue
                d, p = d_all.get(key, MISSING), p_all.get(key, MISSING)
                shown_p = "" if p is MISSING or p == d else _show(p)
                rows.append(f"| `{'.'.join([*path, key])}` | option | {_show(d)} | {shown_p} | |")

    def _nested(d: Any, p: Any, path: list[str]) -> None:
        """A block inside an option section (e.g. a GAN stage): its keys are options too."""
        rows.append(f"| `{'.'.join(path)}` | block | | | |")
        d = d if isinstance(d, dict) else {}
        p = p if isinstance(p, dict) else {}
        for key in sorted(set(d) | set(p)):
            dv, pv = d.get(key, MISSING), p.get(key, MISSING)
            if isinstance(dv, dict) or isinstance(pv, dict):
                _nested(dv, pv, [*path, key])
                continue
            shown_p = "" if pv is MISSING or pv == dv else _show(pv)
            rows.append(f"| `{'.'.join([*path, key])}` | option | {_show(dv)} | {shown_p} | |")

    walk(schema, [])
    head = [
        "# Configuration reference",
        "",
        "Generated from `workflow/schemas/config.schema.yaml`, `config/config.yaml` (the embedded",
        "default) and `config/paper.yaml` (paper scale; shown where it differs) by",
        "`topogen report config-reference`; `tests/test_workflow.py` fails when it is stale.",
        "Option sections pass each `key: value` to their command as `--key value`",
        "(`topogen <command> --help` lists every option with its library default).",
        "",
        "| key | type | default | paper.yaml | meaning |",
        "|---|---|---|---|---|",
    ]
    return "\n".join(head + rows) + "\n"
