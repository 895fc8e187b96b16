"""Provenance by construction: a ``<file>.prov.json`` manifest beside every output.

A manifest records how its file was made: the command line, the configuration subset the
command used, every input with its sha256, the code version, key package versions, seeds,
host and times. :func:`lineage` walks manifests back to the raw inputs and re-checks every
checksum. Secrets (API keys, tokens, passwords) never reach a manifest: configuration keys
that look secret are redacted, and any value of a secret-looking environment variable is
scrubbed from the whole manifest text before it is written.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import hashlib
import json
import os
import platform
import re
import socket
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from topogen.errors import ProvenanceError
from topogen.io.atomic import write_text

MANIFEST_VERSION = "topogen-provenance/1"
SUFFIX = ".prov.json"
KEY_PACKAGES = (
    "topogen", "torch", "lightning", "torch-geometric", "pymatgen", "ase", "chgnet",
    "phonopy", "spglib", "numpy", "scipy", "pandas", "pyarrow", "snakemake",
)  # fmt: skip
_SECRET_ENV = re.compile(r"KEY|TOKEN|SECRET|PASSW|CREDENTIAL", re.IGNORECASE)
_SECRET_KEY = re.compile(
    r"(^|[_-])(api[_-]?key|key|token|secret|password|passwd|credentials?)$", re.IGNORECASE
)
REDACTED = "<redacted>"


def manifest_path(path: str | os.PathLike[str]) -> Path:
    path = Path(path)
    return path.with_name(path.name + SUFFIX)


def sha256(path: str | os.PathLike[str]) -> str:
    """sha256 of a file; of a directory, the sha256 of its sorted (relative path, sha256) list."""
    path = Path(path)
    if path.is_dir():
        h = hashlib.sha256()
        for p in sorted(q for q in path.rglob("*") if q.is_file() and not _is_sidecar(q)):
            h.update(f"{p.relative_to(path).as_posix()}\0{sha256(p)}\n".encode())
        return h.hexdigest()
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _is_sidecar(p: Path) -> bool:
    return p.name.endswith(SUFFIX)


def _secret_values() -> list[str]:
    values = {v for k, v in os.environ.items() if _SECRET_ENV.search(k) and len(v) >= 6}
    return sorted(values, key=len, reverse=True)


def redact(obj: Any) -> Any:
    """Replace the values of secret-looking keys, recursively."""
    if isinstance(obj, Mapping):
        return {
            str(k): REDACTED if _SECRET_KEY.search(str(k)) and v else redact(v)
            for k, v in obj.items()
        }
    if isinstance(obj, list | tuple):
        return [redact(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if obj is None or isinstance(obj, bool | int | float | str):
        return obj
    return str(obj)


def _scrub(text: str) -> str:
    for value in _secret_values():
        text = text.replace(value, REDACTED)
        text = text.replace(json.dumps(value)[1:-1], REDACTED)  # the JSON-escaped form
    return text


@functools.lru_cache(maxsize=1)
def code_version() -> dict[str, Any]:
    """Package version, plus ``git describe`` and a dirty flag when run from a checkout."""
    info: dict[str, Any] = {"version": _version("topogen"), "git": None, "dirty": None}
    root = Path(__file__).resolve().parents[3]
    if (root / ".git").exists() and (root / "src" / "topogen").is_dir():
        try:
            out = subprocess.run(
                ["git", "-C", str(root), "describe", "--always", "--dirty", "--tags"],
                capture_output=True, text=True, timeout=10, check=True,
            ).stdout.strip()  # fmt: skip
            info.update(git=out, dirty=out.endswith("-dirty"))
        except (OSError, subprocess.SubprocessError):
            pass
    return info


def _version(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _input_entry(path: Path, manifest_dir: Path) -> dict[str, Any]:
    if not path.exists():
        raise ProvenanceError(f"{path}: input does not exist")
    return {
        "path": str(path),
        "relpath": os.path.relpath(path.resolve(), manifest_dir.resolve()),
        "sha256": sha256(path),
        "size": path.stat().st_size if path.is_file() else None,
        "derived": manifest_path(path).exists(),  # made by a command (it had a manifest)
    }


@dataclass
class Run:
    """One command's provenance, filled while it runs (see :func:`record`)."""

    command: str
    config: dict[str, Any]
    inputs: list[Path]
    seeds: dict[str, int] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    outputs: list[Path] = field(default_factory=list)
    argv: list[str] = field(default_factory=lambda: list(sys.argv))
    started: str = field(default_factory=_now)
    _input_sums: dict[Path, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Hash inputs when the command starts: that is the content it reads.
        for p in self.inputs:
            p = Path(p)
            if not p.exists():
                raise ProvenanceError(f"{p}: input does not exist")
            self._input_sums[p] = sha256(p)

    def output(self, path: str | os.PathLike[str]) -> Path:
        """Register an output file (written before the block ends); returns the path."""
        self.outputs.append(Path(path))
        return Path(path)

    def manifest(self, output: Path) -> dict[str, Any]:
        mdir = output.parent
        inputs = []
        for p, digest in self._input_sums.items():
            entry = _input_entry(p, mdir)
            entry["sha256"] = digest
            inputs.append(entry)
        return {
            "manifest": MANIFEST_VERSION,
            "file": output.name,
            "sha256": sha256(output),
            "size": output.stat().st_size if output.is_file() else None,
            "command": self.command,
            "argv": self.argv,
            "config": redact(self.config),
            "inputs": inputs,
            "outputs": [p.name for p in self.outputs],
            "seeds": dict(self.seeds),
            "code": code_version(),
            "packages": {name: _version(name) for name in KEY_PACKAGES},
            "python": platform.python_version(),
            "host": socket.gethostname(),
            "started": self.started,
            "finished": _now(),
            **({"extra": redact(self.extra)} if self.extra else {}),
        }

    def write(self) -> None:
        for out in self.outputs:
            if not out.exists():
                raise ProvenanceError(f"{out}: registered output was not written")
            text = json.dumps(self.manifest(out), indent=2, sort_keys=False) + "\n"
            write_text(manifest_path(out), _scrub(text))


@contextlib.contextmanager
def record(
    command: str,
    config: Mapping[str, Any],
    inputs: Sequence[str | os.PathLike[str]] = (),
    seeds: Mapping[str, int] | None = None,
) -> Iterator[Run]:
    """Record a command: inputs are hashed now; manifests are written if the block succeeds."""
    run = Run(
        command=command,
        config=dict(config),
        inputs=[Path(p) for p in inputs],
        seeds=dict(seeds or {}),
    )
    yield run
    run.write()


def read_manifest(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The manifest of ``path`` (not the manifest file itself), or None for a raw file."""
    mpath = manifest_path(path)
    if not mpath.exists():
        return None
    try:
        return json.loads(mpath.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ProvenanceError(f"{mpath}: unreadable manifest ({exc})") from exc


@dataclass
class Node:
    """One file in a lineage tree."""

    path: Path
    status: str  # "ok", "modified", "missing", "unrecorded" (a derived file lost its manifest)
    sha256: str | None
    expected: str | None
    manifest: dict[str, Any] | None
    children: list[Node] = field(default_factory=list)

    def first_problem(self) -> Node | None:
        if self.status != "ok":
            return self
        for child in self.children:
            bad = child.first_problem()
            if bad is not None:
                return bad
        return None

    def as_dict(self) -> dict[str, Any]:
        m = self.manifest or {}
        return {
            "path": str(self.path),
            "status": self.status,
            "sha256": self.sha256,
            "expected_sha256": self.expected,
            "command": m.get("command"),
            "finished": m.get("finished"),
            "inputs": [c.as_dict() for c in self.children],
        }


def lineage(
    path: str | os.PathLike[str],
    expected: str | None = None,
    _seen: set[Path] | None = None,
    derived: bool = False,
) -> Node:
    """Walk manifests from ``path`` back to raw inputs, re-checking every sha256.

    ``expected`` is the checksum a consumer recorded for this file; the file's own manifest,
    if any, records another. Both must match the file as it is now. ``derived``: the consumer
    recorded that the file had a manifest (a command made it); without one now it is
    ``unrecorded``, not a raw input.
    """
    path = Path(path)
    seen = _seen if _seen is not None else set()
    if not path.exists():
        return Node(path, "missing", None, expected, None)
    manifest = read_manifest(path)
    actual = sha256(path)
    wanted = [s for s in (expected, (manifest or {}).get("sha256")) if s]
    status = "ok" if all(s == actual for s in wanted) else "modified"
    if status == "ok" and manifest is None and derived:
        status = "unrecorded"
    node = Node(path, status, actual, wanted[0] if wanted else None, manifest)
    key = path.resolve()
    if manifest is None or key in seen:
        return node
    seen.add(key)
    for entry in manifest.get("inputs", []):
        child_path = Path(os.path.normpath(path.parent / entry["relpath"]))
        node.children.append(
            lineage(child_path, entry.get("sha256"), seen, bool(entry.get("derived")))
        )
    return node


def format_tree(node: Node) -> str:
    """Render a lineage tree, one file per line."""
    lines: list[str] = []

    def describe(n: Node) -> str:
        short = (n.sha256 or "-")[:12]
        state = {"ok": "ok", "modified": "MODIFIED", "missing": "MISSING"}.get(
            n.status, "MANIFEST DELETED"
        )
        how = (
            f"{n.manifest['command']}  {n.manifest.get('finished', '')}"
            if n.manifest
            else ("raw input")
        )
        shown = os.path.relpath(n.path)
        shown = str(n.path) if shown.startswith("..") else shown
        return f"{shown}  [{state} sha256:{short}]  {how}"

    def walk(n: Node, prefix: str, last: bool, root: bool) -> None:
        branch = "" if root else ("└── " if last else "├── ")
        lines.append(prefix + branch + describe(n))
        child_prefix = prefix if root else prefix + ("    " if last else "│   ")
        for i, child in enumerate(n.children):
            walk(child, child_prefix, i == len(n.children) - 1, False)

    walk(node, "", True, True)
    return "\n".join(lines)


def check(path: str | os.PathLike[str]) -> Node:
    """Lineage of ``path``; raises ProvenanceError naming the first file that fails."""
    node = lineage(path)
    bad = node.first_problem()
    if bad is not None:
        if bad.status == "missing":
            raise ProvenanceError(f"{bad.path}: file in the lineage is missing")
        if bad.status == "unrecorded":
            raise ProvenanceError(
                f"{bad.path}: its manifest ({manifest_path(bad.path)}) is gone; a command made "
                "this file, so the lineage breaks here (rerun the rule that makes it)"
            )
        raise ProvenanceError(
            f"{bad.path}: checksum no longer matches (recorded {bad.expected}, now {bad.sha256})"
        )
    return node
