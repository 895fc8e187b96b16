"""Shared fixtures: the repository root, a CLI runner and structure files written on the fly."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest_plugins = ["slurm.fixture"]  # the session-scoped `slurm_cluster` fixture

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


@pytest.fixture
def repo_root() -> Path:
    return ROOT


WORKFLOW_PARTS = ("Snakefile", "workflow", "config", "resources", "profiles", "envs")


def copy_workflow(repo_root: Path, dest: Path) -> Path:
    """A copy of the workflow (Snakefile, rules, config, ...) in ``dest``, so that tests
    never write into the checkout."""
    dest.mkdir(parents=True, exist_ok=True)
    for part in WORKFLOW_PARTS:
        src = repo_root / part
        if src.is_dir():
            shutil.copytree(src, dest / part)
        elif src.exists():
            shutil.copy2(src, dest / part)
    return dest


def run(args: list[str], cwd: Path | None = None, env: dict | None = None, timeout: int = 600):
    """Run a program from the venv as a real subprocess; returns CompletedProcess."""
    full_env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    full_env.update(env or {})
    return subprocess.run(
        [str(BIN / args[0]), *args[1:]],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def cli():
    """``cli("data", "import", ...)`` runs the installed ``topogen`` console script."""

    def _cli(*args: str, cwd: Path | None = None, env: dict | None = None):
        return run(["topogen", *map(str, args)], cwd=cwd, env=env)

    return _cli


def monolayers():
    """A few 2D crystals built from textbook lattice constants (ASE Atoms)."""
    from ase import Atoms
    from ase.build import mx2

    def honeycomb(sym: str, a: float, buckle: float) -> Atoms:
        cell = np.array([[a, 0, 0], [-a / 2, a * np.sqrt(3) / 2, 0], [0, 0, 18.0]])
        pos = np.array([[1 / 3, 2 / 3, 0.5], [2 / 3, 1 / 3, 0.5]]) @ cell
        pos[:, 2] += [buckle / 2, -buckle / 2]
        return Atoms(sym, positions=pos, cell=cell, pbc=True)

    mos2 = mx2("MoS2", kind="2H", a=3.18, thickness=3.13, vacuum=9.0)
    mos2.pbc = True
    return {
        "graphene": honeycomb("C2", 2.46, 0.0),
        "hBN": honeycomb("BN", 2.50, 0.0),
        "Bi2": honeycomb("Bi2", 4.34, 1.73),
        "MoS2": mos2,
    }


@pytest.fixture
def structure_files(tmp_path: Path) -> dict[str, Path]:
    """Good files in every supported format, and bad ones, each with a known problem."""
    import ase.db
    from ase.io import write

    mono = monolayers()
    d = tmp_path / "inputs"
    d.mkdir()
    files = {
        "cif": d / "MoS2.cif",
        "poscar": d / "POSCAR_graphene",
        "extxyz": d / "pair.extxyz",
        "db": d / "library.db",
    }
    write(files["cif"], mono["MoS2"], format="cif")
    write(files["poscar"], mono["graphene"], format="vasp", direct=True)
    hbn, bi = mono["hBN"].copy(), mono["Bi2"].copy()
    hbn.info.update(id="hBN-x", gap=4.6)
    bi.info.update(id="Bi2-x", gap=0.5, topological=True)
    write(files["extxyz"], [hbn, bi], format="extxyz")
    with ase.db.connect(files["db"]) as db:
        db.write(mono["graphene"], uid="graphene-db", gap=0.0)
        db.write(mono["Bi2"], uid="Bi2-db", gap=0.55, magstate="NM")

    bad = {
        "garbage": d / "garbage.cif",
        "empty": d / "empty.xyz",
        "nan": d / "nan.extxyz",
        "overlap": d / "overlap.vasp",
        "unknown": d / "notes.txt",
        "same_site": d / "same-site.cif",
    }
    bad["garbage"].write_text("data_broken\n_cell_length_a abc\nthis is not a CIF\n")
    bad["empty"].write_text("")
    nan = mono["hBN"].copy()
    nan.positions[1, 0] = np.nan
    write(bad["nan"], nan, format="extxyz")
    overlap = mono["graphene"].copy()
    overlap.positions[1] = overlap.positions[0] + [0.1, 0.0, 0.0]
    write(bad["overlap"], overlap, format="vasp")
    bad["unknown"].write_text("hello\n")
    bad["same_site"].write_text(  # two atom sites on one position
        "data_x\n_cell_length_a 3\n_cell_length_b 3\n_cell_length_c 3\n_cell_angle_alpha 90\n"
        "_cell_angle_beta 90\n_cell_angle_gamma 90\n_symmetry_space_group_name_H-M 'P 1'\n"
        "loop_\n_atom_site_label\n_atom_site_type_symbol\n_atom_site_fract_x\n"
        "_atom_site_fract_y\n_atom_site_fract_z\nA C 0 0 0\nB C 0 0 0\n"
    )
    return {**files, **{f"bad_{k}": v for k, v in bad.items()}}
