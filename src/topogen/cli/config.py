"""``topogen config check``: a workflow configuration against the schema, before a run."""

from __future__ import annotations

import argparse
from pathlib import Path

from topogen.cli.parser import Subparsers, command, group
from topogen.cli.stage import log
from topogen.errors import TopogenError


def _check(args: argparse.Namespace) -> int:
    from topogen.config_schema import config_problems, load_config, merge_config

    cfg = load_config(args.default)
    for path in args.configfiles:
        cfg = merge_config(cfg, load_config(path))
    problems = config_problems(cfg, args.schema)
    files = " + ".join([args.default, *args.configfiles])
    if problems:
        raise TopogenError(f"{files} does not match {args.schema}:\n" + "\n".join(problems))
    log(f"config check: {files} matches {Path(args.schema).name}")
    return 0


def register(stages: Subparsers) -> None:
    """Add ``topogen config ...``."""
    cmds = group(stages, "config", "the workflow configuration", "command", "COMMAND")
    p = command(
        cmds,
        "check",
        _check,
        "check config files as `snakemake --configfile` would merge them",
        "Reads the workflow's default config and each CONFIGFILE over it (as Snakemake\n"
        "does) and checks the result against the schema: one line per problem with its key\n"
        "path and a 'did you mean'. A YAML syntax error names the file, line and column\n"
        "(Snakemake's own message for a --configfile does not).",
    )
    p.add_argument("configfiles", nargs="*", metavar="CONFIGFILE", help="--configfile files")
    p.add_argument("--default", default="config/config.yaml", metavar="YAML")
    p.add_argument("--schema", default="workflow/schemas/config.schema.yaml", metavar="YAML")
