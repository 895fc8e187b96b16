"""The CLI contract: --version, --help everywhere with defaults, exit codes 0/1/2."""

from __future__ import annotations

import argparse

import pytest

from topogen import __version__
from topogen.cli import build_parser, main


def _subcommands(parser: argparse.ArgumentParser, prefix=()):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield (*prefix, name), sub
                yield from _subcommands(sub, (*prefix, name))


ALL = [path for path, _ in _subcommands(build_parser())]


def test_version(cli):
    res = cli("--version")
    assert res.returncode == 0 and res.stdout.strip() == f"topogen {__version__}"


def test_help_lists_stages(cli):
    res = cli("--help")
    assert res.returncode == 0
    for stage in ("data", "report", "provenance"):
        assert stage in res.stdout


@pytest.mark.parametrize("path", ALL, ids=[" ".join(p) for p in ALL])
def test_every_subcommand_has_help(capsys, path):
    with pytest.raises(SystemExit) as exc:
        main([*path, "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    assert text.startswith("usage: topogen " + " ".join(path))


def test_options_with_defaults_show_them(capsys):
    with pytest.raises(SystemExit):
        main(["data", "import", "--help"])
    text = capsys.readouterr().out
    assert "(default: import)" in text and "(default: 0.5)" in text


def test_usage_error_exits_2(cli):
    assert cli("data", "import").returncode == 2
    assert cli("no-such-stage").returncode == 2
    assert cli("data", "import", "x.cif", "--out", "y", "--min-distance", "abc").returncode == 2


def test_failure_exits_1_with_one_line(cli, tmp_path):
    bogus = tmp_path / "bogus.parquet"
    bogus.write_text("not a table")
    res = cli("data", "merge", bogus, "--out", tmp_path / "m.parquet")
    assert res.returncode == 1
    assert res.stderr.startswith(f"topogen: error: {bogus}: not a readable Parquet file")
    assert len(res.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "m.parquet").exists()


def test_no_benchmark_script_shadows_a_standard_module():
    """A script's folder comes first on sys.path: bench/ssl.py broke every benchmark that
    imports pyarrow (which imports the standard library's ssl)."""
    import sys
    from pathlib import Path

    bench = Path(__file__).parents[1] / "bench"
    names = {p.stem for p in bench.glob("*.py")}
    assert names and not names & set(sys.stdlib_module_names)
