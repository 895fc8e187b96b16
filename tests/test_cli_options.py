"""Options generated from dataclasses: each default lives in the dataclass, flags read back."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field

import pytest

from topogen.cli import build_parser
from topogen.cli.options import add_options, read_options


@dataclass(frozen=True)
class _Inner:
    min_distance: float = 0.5
    window: tuple[float, float] = (-1.0, 0.5)
    label: str | None = None


@dataclass
class _Outer:
    steps: int = 300
    phonons: bool = True
    mode: str | None = None
    inner: _Inner = field(default_factory=_Inner)


HELP = {name: name for name in ("min_distance", "window", "label", "steps", "phonons", "mode")}


def _parser(**kwargs) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser()
    add_options(p, _Outer, HELP, **kwargs)
    return p


def test_defaults_come_from_the_dataclass():
    assert read_options(_parser().parse_args([]), _Outer) == _Outer()


def test_flags_read_back_into_the_dataclass():
    p = _parser(choices={"mode": ("none", "fast")})
    args = p.parse_args(
        ["--steps", "5", "--no-phonons", "--mode", "fast", "--window", "-2", "1", "--label", "x"]
    )
    assert read_options(args, _Outer) == _Outer(5, False, "fast", _Inner(0.5, (-2.0, 1.0), "x"))
    assert read_options(p.parse_args(["--mode", "none"]), _Outer).mode is None


def test_only_and_given_fields():
    p = _parser(only={"steps"})
    args = p.parse_args(["--steps", "7"])
    with pytest.raises(SystemExit):
        p.parse_args(["--phonons"])
    assert read_options(args, _Outer, only={"steps"}, phonons=False) == _Outer(7, False)


def test_every_help_table_covers_its_dataclass(capsys):
    """Generated options are added when a command is used: their help must exist."""
    parser = build_parser()
    for argv in (["screen", "chunk"], ["dft", "scf"], ["encode", "images"], ["train", "gan"]):
        with pytest.raises(SystemExit) as exc:
            parser.parse_args([*argv, "--help"])
        assert exc.value.code == 0
    capsys.readouterr()


def test_funnel_and_dft_flags_match_the_library_defaults():
    from topogen.cli.screen import NOT_IN_CHUNKS
    from topogen.dft.validate import ValidationSettings
    from topogen.screen.funnel import FunnelOptions

    parser = build_parser()
    args = parser.parse_args(
        ["screen", "chunk", "c.parquet", "--out", "o", "--funnel", "f", "--dos", "d"]
    )
    assert read_options(args, FunnelOptions, exclude=NOT_IN_CHUNKS) == FunnelOptions()
    assert not hasattr(args, "topology_min")  # the topology step runs after the merge
    args = parser.parse_args(["screen", "chunk", "c", "--out", "o", "--funnel", "f", "--dos", "d",
                              "--no-phonons", "--oxidation-states-set", "smact14"])  # fmt: skip
    opts = read_options(args, FunnelOptions, exclude=NOT_IN_CHUNKS)
    assert not opts.phonons and opts.validity.oxidation_states_set == "smact14"
    step = ["dft", "scf", "c.json", "--pseudos", "p", "--workdir", "w", "--out", "o"]
    assert read_options(parser.parse_args(step), ValidationSettings) == ValidationSettings()
    args = parser.parse_args(
        [*step, "--relax", "vc-relax", "--scdm", "--nscf-kgrid", "6", "6", "1"]
    )
    assert read_options(args, ValidationSettings) == ValidationSettings(
        relax="vc-relax", scdm=True, nscf_kgrid=(6, 6, 1)
    )


def test_every_normalize_source_has_a_reader():
    from topogen.data.sources import READERS

    parser = build_parser()
    data = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    normalize = data.choices["data"]._actions[-1].choices["normalize"]
    sources = next(a for a in normalize._actions if isinstance(a, argparse._SubParsersAction))
    assert set(sources.choices) == set(READERS)
