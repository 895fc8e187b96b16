"""Benchmark schedules kept in a config file: ``--config config/paper.yaml`` makes the
``bench.<name>`` mapping of that file the defaults of a benchmark's options (keys are the
options' names with underscores), so the paper's schedule is stated once, beside the
workflow's paper-scale settings. Options given on the command line still win. Also where the
LoGAN benchmarks find their reference data (:func:`shared_logan`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def config_defaults(ap: argparse.ArgumentParser, name: str) -> None:
    """Add ``--config FILE`` to ``ap`` and, when it is given, take ``bench.<name>`` of FILE
    as defaults; an unknown key or a missing section is a clear error."""
    ap.add_argument(
        "--config", type=Path, default=None, help=f"take defaults from bench.{name} of FILE"
    )
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config", type=Path, default=None)
    known, _ = pre.parse_known_args(sys.argv[1:])
    if known.config is None:
        return
    import yaml

    section = (yaml.safe_load(known.config.read_text()) or {}).get("bench", {}).get(name)
    if not isinstance(section, dict):
        ap.error(f"{known.config}: no mapping bench.{name}")
    dests = {a.dest for a in ap._actions}
    unknown = sorted(set(section) - dests)
    if unknown:
        ap.error(f"{known.config}: bench.{name} has unknown option(s) {unknown}")
    ap.set_defaults(**section)


def shared_logan() -> Path:
    """The LoGAN reference sets: ``<shared data>/logan`` (default ``../shared/data/logan``)."""
    from topogen.data.shared import shared_data_root

    root = shared_data_root()
    return (root or Path("../shared/data")) / "logan"
