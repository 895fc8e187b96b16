"""The skeleton every handler shares: threads, a provenance run, quarantine, a log line.

    with stage(args, inputs=[args.table]) as run:
        result = work(...)
        run.save_records(result, args.out, "verb:")

``stage`` pins torch threads to ``--threads`` (when the command has it), opens a
:func:`topogen.io.provenance.record` named after the command with the command's options as
its config, and hands out a :class:`Stage` whose writers register their files with the run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

from topogen.errors import TopogenError

# Output options of the commands: their folders must be writable before any work starts.
OUTPUT_OPTIONS = ("out", "out_dir", "metrics", "plot", "summary", "json", "data", "funnel", "dos")
# Namespace entries that are argparse plumbing, not parameters of the command.
_PLUMBING = {"func", "debug", "stage", "command", "command_line"}


def config(args: argparse.Namespace, *exclude: str) -> dict[str, Any]:
    """The parameters a command ran with: the config subset recorded in its manifests."""
    skip = _PLUMBING | set(exclude)
    return {k: v for k, v in vars(args).items() if k not in skip}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class Stage:
    """A running command: ``output(path)`` registers a file; the writers below do it for you."""

    def __init__(self, run: Any) -> None:
        self.run = run

    @property
    def extra(self) -> dict[str, Any]:
        return self.run.extra

    def output(self, path: str | os.PathLike[str]) -> Path:
        return self.run.output(path)

    def quarantine(self, out: str | os.PathLike[str], rejected: Sequence[Any]) -> Path:
        """Write ``rejected`` next to ``out`` (``<out>.quarantine.csv``); returns its path."""
        from topogen.io.quarantine import quarantine_path, write_quarantine

        return write_quarantine(self.output(quarantine_path(out)), rejected)

    def save_records(self, result: Any, out: str, verb: str) -> None:
        """Write a LoadResult's table and quarantine file; log counts. No record: an error,
        after the quarantine file (every row's reason) is written, and no table."""
        from topogen.io.quarantine import quarantine_path, write_quarantine
        from topogen.io.tables import write_records

        if not result.records:
            first = result.rejected[0] if result.rejected else None
            where = ""
            if result.rejected:
                kept = write_quarantine(quarantine_path(out), result.rejected)
                where = f" (every reason: {kept})"
            raise TopogenError(
                f"no usable structure; {len(result.rejected)} rejected{where}"
                + (f", first: {first.file} {first.item} {first.reason}" if first else "")
            )
        write_records(result.records, self.output(out))
        qpath = self.quarantine(out, result.rejected)
        log(
            f"{verb} {len(result.records)} structure(s) -> {out}; "
            f"{len(result.rejected)} quarantined -> {qpath}"
        )

    def write_json(self, path: str | os.PathLike[str], data: Any) -> None:
        from topogen.io.atomic import write_text

        write_text(self.output(path), json.dumps(data, indent=2) + "\n")


@contextmanager
def stage(
    args: argparse.Namespace,
    inputs: Sequence[str | os.PathLike[str] | None] = (),
    command: str | None = None,
) -> Iterator[Stage]:
    """Run a command's work as one provenance record (``None`` inputs are left out); a
    ``--seed`` option is recorded as the run's seed. A command with a ``--workdir`` holds
    its lock (:func:`~topogen.io.locks.folder_lock`) throughout."""
    from topogen.io import provenance
    from topogen.io.atomic import check_writable
    from topogen.io.locks import folder_lock

    threads = getattr(args, "threads", None)
    if threads:
        from topogen.runtime import set_threads

        set_threads(threads)
    name = command or args.command_line
    files = [p for p in inputs if p]
    seeds = {"seed": args.seed} if "seed" in vars(args) else None
    outputs = [getattr(args, k, None) for k in OUTPUT_OPTIONS]
    check_writable([p for p in outputs if isinstance(p, str | os.PathLike)])
    workdir = getattr(args, "workdir", None)
    with (
        folder_lock(workdir) if workdir else nullcontext(),
        provenance.record(name, config(args), inputs=files, seeds=seeds) as run,
    ):
        yield Stage(run)
