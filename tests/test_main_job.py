"""Issue 13's acceptance: hand-made candidates through the whole main job.

A candidate table (a tilted copy of a MoS2 slab, the slab itself, a 2x1 supercell of a
training crystal, a squashed slab, a metallic K monolayer) goes through the workflow's rules
`split_candidates` -> `screen_chunk` (real CHGNet relaxation and phonons) -> `merge_screen` ->
`score_topology` (no model: the step is recorded as skipped) ->
`select_dft` -> the DFT rules (real pw.x, Wannier90, invariants) at the config's reduced
settings -> `dft_summary`, and every decision is checked where it is recorded: the funnel table
for the structures that stop there, `results/dft/summary.csv` for those that reach DFT.

The tilted copy is listed before the square slab, so it is the one uniqueness keeps (the
square slab is its duplicate): the tilted cell has to reach a DFT verdict itself. The controls
are skipped (`dft.controls: null`): tests/test_dft_workflow.py runs them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import copy_workflow, run
from pymatgen.core import Lattice, Structure
from test_dft import needs_qe

from topogen.io.tables import Record, write_records

CONFIG = """
generators: []
screen:
  candidates: {handmade: tables/handmade.parquet}
  training: tables/training.parquet
  chunks: 2
  band_gap_model: null   # the metal must reach DFT: its verdict is the check
  topology: {model: null}
dft:
  activate: true
  candidates: results/screen/handmade/selected.parquet
  top_k: 5
  controls: {qsh: null, trivial: null}
"""


def _tilted(s: Structure, alpha: float, beta: float) -> Structure:
    """The same fractional coordinates in a cell whose c axis leans by alpha, beta."""
    a, b, c = s.lattice.abc
    lattice = Lattice.from_parameters(a, b, c, alpha, beta, s.lattice.gamma)
    return Structure(lattice, s.species, s.frac_coords)


def _tables(root: Path, repo_root: Path) -> None:
    mos2 = Structure.from_file(repo_root / "resources/structures/MoS2.cif")
    hbn = Structure.from_file(repo_root / "resources/structures/hBN.cif")
    squashed = Structure(
        Lattice(mos2.lattice.matrix * [[0.5], [0.5], [1.0]]), mos2.species, mos2.frac_coords
    )
    potassium = Structure(
        Lattice.hexagonal(4.45, 21.8), ["K"], [[1 / 3, 2 / 3, 0.5]]
    )  # a hexagonal K monolayer: a metal that CHGNet finds stable
    candidates = [
        ("MoS2-tilted", _tilted(mos2, 89.9, 90.1)),
        ("MoS2", mos2),
        ("hBN-2x1", hbn * (2, 1, 1)),
        ("MoS2-squashed", squashed),
        ("K", potassium),
    ]
    (root / "tables").mkdir()
    write_records(
        [Record(rid, "handmade", s) for rid, s in candidates], root / "tables/handmade.parquet"
    )
    write_records([Record("hBN", "training", hbn)], root / "tables/training.parquet")


@pytest.mark.slow
@needs_qe
def test_handmade_candidates_reach_their_verdicts(repo_root: Path, tmp_path: Path) -> None:
    root = copy_workflow(repo_root, tmp_path / "wf")
    _tables(root, repo_root)
    (root / "override.yaml").write_text(CONFIG)
    res = run(
        ["snakemake", "results/dft/summary.csv", "--cores", "2", "--configfile", "override.yaml"],
        cwd=root,
        timeout=3000,
    )
    assert res.returncode == 0, res.stderr[-3000:]

    funnel = pd.read_parquet(root / "results/screen/handmade/funnel.parquet").set_index("id")
    assert len(funnel) == 5  # a row for every candidate, whatever its fate
    assert funnel.at["MoS2", "uniqueness"] == "fail"
    assert funnel.at["MoS2", "duplicate_of"] == "MoS2-tilted"
    assert funnel.at["hBN-2x1", "novelty"] == "fail"
    assert "matches training structure hBN" in funnel.at["hBN-2x1", "novelty_reason"]
    assert funnel.at["MoS2-squashed", "validity"] == "fail"
    assert funnel.at["MoS2-squashed", "validity_reason"]
    for rid in ("MoS2-tilted", "K"):
        assert funnel.at[rid, "phonons"] == "pass" and bool(funnel.at[rid, "passed"]), rid
    assert set(funnel.index[funnel["passed"].astype(bool)]) == {"MoS2-tilted", "K"}

    summary = pd.read_csv(root / "results/dft/summary.csv").set_index("candidate")
    assert set(summary.index) == {"MoS2-tilted", "K"}  # no controls, nothing rejected
    assert set(summary["source"]) == {"handmade"}  # the table's source, carried to the verdict
    # the tilted cell was put in the canonical frame and finished: a trusted trivial insulator
    # with about MoS2's PBE+SOC gap (1.6 eV, at K) on the Wannier model's 24 x 24 grid
    # (1.85 eV from the demo's 4x4x1 Wannier mesh); the DFT bands, on that mesh alone
    # (without K), can only show a larger one
    mos2 = summary.loc["MoS2-tilted"]
    assert mos2["status"] == "ok" and mos2["verdict"] == "trivial", mos2.to_dict()
    assert bool(mos2["trusted"]) and mos2["z2"] == 0 and mos2["spin_chern"] == 0
    assert 1.4 < mos2["wannier_gap_indirect_eV"] < 2.1
    assert mos2["dft_gap_indirect_eV"] > mos2["wannier_gap_indirect_eV"] - 0.1
    assert "Z2 = 0" in mos2["reason"]
    # the metal: no gap at the filling, so no insulator verdict and no invariant reported
    metal = summary.loc["K"]
    assert metal["verdict"] == "metal", metal.to_dict()
    assert metal["dft_gap_indirect_eV"] < 0
    assert "no indirect gap" in metal["reason"]
    assert np.isnan(metal["z2"])
    # no edge spectrum for the metal (it checks insulators): a note with the reason instead;
    # the insulator's is computed
    edges = {c: np.load(root / f"results/dft/{c}/edge_states.npz") for c in ("K", "MoS2-tilted")}
    assert "metal or semimetal" in str(edges["K"]["reason"])
    assert "reason" not in edges["MoS2-tilted"] and edges["MoS2-tilted"]["surface_dos"].size > 1000
