"""DFT verdicts: metal vs insulator on the indirect gap, topological by Z2 or the spin Chern
number (with its axis), and a `failed` verdict row for every candidate that cannot finish.

The verdict logic runs on tight-binding models with the real invariants code; the failure
path runs the `topogen dft` step commands on candidates that fail for reasons of their own
(no valid 2D cell; a pw.x, here a stand-in script, that never converges) and on a set-up
error (no pw.x), which must still stop the workflow.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from test_dft import bilayer, fake_family  # noqa: F401

from topogen.dft.summary import COLUMNS, check_controls, plot_summary, summary_table
from topogen.dft.validate import ValidationSettings, _invariants
from topogen.dft.verdict import classify, gap_problems, parity_problem
from topogen.topology import bhz, kane_mele
from topogen.topology.gaps import model_gap
from topogen.topology.models import bhz_pair

# ---------------------------------------------------------------- verdict logic


def _verdict_of(model, nocc: int, settings: ValidationSettings | None = None):
    settings = settings or ValidationSettings()
    inv = _invariants(SimpleNamespace(model=model, n_occupied=nocc), settings)
    g = model_gap(model, nocc)
    gaps = {"dft_gap_indirect_eV": g["gap_indirect"], "wannier_gap_indirect_eV": g["gap_indirect"]}
    problems = parity_problem(inv["z2"], inv["spin_chern"])
    return inv, g, classify(inv["z2"], inv["spin_chern"], problems, gap_problems(gaps))


def test_spin_chern_two_with_z2_zero_is_topological():
    inv, gaps, (verdict, reason) = _verdict_of(bhz_pair(spin_phi=np.pi / 8), 4)
    assert inv["z2"] == 0 and inv["spin_chern"] == 2.0
    assert inv["spin_phi_deg"] == pytest.approx(22.5)  # the paper's axis has the largest gap
    assert inv["spin_gap"] == pytest.approx(0.965, abs=0.005)
    assert verdict == "topological" and reason == "Z2 = 0, spin Chern 2"
    assert gaps["gap_indirect"] > 1.0
    # a fixed axis from the settings: s_z, where the spin gap is smaller but still open
    fixed = _invariants(
        SimpleNamespace(model=bhz_pair(spin_phi=np.pi / 8), n_occupied=4),
        ValidationSettings(spin_phi_deg=90.0),
    )
    assert fixed["spin_phi_deg"] == 90.0 and fixed["spin_chern"] == 2.0
    assert fixed["spin_gap"] == pytest.approx(0.163, abs=0.005)
    assert list(fixed["spin_gaps_by_phi_deg"]) == ["90"]


@pytest.mark.parametrize(
    ("model", "z2", "cs", "verdict"),
    [
        (kane_mele(lambda_v=0.1, lambda_r=0.05), 1, -1.0, "topological"),
        (kane_mele(lambda_v=0.5), 0, 0.0, "trivial"),
        (bhz(m=1.0, delta=0.3), 1, 1.0, "topological"),
        (bhz(m=-1.0, delta=0.3), 0, 0.0, "trivial"),
    ],
)
def test_known_models_keep_their_verdicts(model, z2, cs, verdict):
    inv, _, (got, _) = _verdict_of(model, 2)
    assert (inv["z2"], inv["spin_chern"], got) == (z2, cs, verdict)


def test_semimetal_with_a_z2_is_a_metal():
    """BHZ with a strong particle-hole asymmetry D: the direct gap stays open (Z2 = 1 is
    defined) but the bands overlap in energy: a semimetal, never a Z2 insulator."""
    model = bhz(m=1.0, d=1.2, delta=0.3)
    inv, gaps, (verdict, reason) = _verdict_of(model, 2)
    assert gaps["gap_direct"] > 1.0 and gaps["gap_indirect"] < -1.5
    assert inv["z2"] == 1
    assert verdict == "metal"
    assert "DFT bands have no indirect gap" in reason and "Wannier model" in reason


def test_classify_rules():
    assert classify(1, None, [], []) == ("topological", "Z2 = 1, spin Chern undefined")
    assert classify(0, None, [], []) == ("trivial", "Z2 = 0, spin Chern undefined")
    assert classify(0, -2.0, [], [])[0] == "topological"
    assert classify(1, 1.0, ["bands off"], []) == ("untrusted", "bands off")
    assert classify(None, None, [], []) == ("untrusted", "no Z2")
    assert classify(1, 1.0, ["bands off"], ["no gap"]) == ("metal", "no gap")
    assert gap_problems({"dft_gap_indirect_eV": 0.2, "wannier_gap_indirect_eV": 0.1}) == []
    assert len(gap_problems({"dft_gap_indirect_eV": 0.2, "wannier_gap_indirect_eV": 0.0})) == 1
    assert "(none)" in gap_problems({"wannier_gap_indirect_eV": 0.1})[0]
    assert parity_problem(1, 2.0) and not parity_problem(0, -2.0) and not parity_problem(1, None)


# ---------------------------------------------------------------- summary


def _write(path: Path, **fields) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(fields))
    return path


def _ok(path: Path, rid: str, verdict: str, z2, cs, gap: float, expected=None) -> Path:
    props = {"control": True, "expected_z2": expected} if expected is not None else {}
    return _write(
        path, id=rid, formula="X", status="ok", verdict=verdict, reason=f"{verdict} because",
        z2=z2, spin_chern=cs, spin_phi_deg=22.5, spin_gap=0.4,
        trusted=verdict in ("topological", "trivial"), problems=[], properties=props,
        invariants={"z2_by_direction": [z2, z2]},
        checks={"dft_gap_direct_eV": abs(gap) + 0.1, "dft_gap_indirect_eV": gap,
                "wannier_gap_direct_eV": abs(gap) + 0.1, "wannier_gap_indirect_eV": gap},
    )  # fmt: skip


def test_summary_has_every_verdict_and_controls_need_their_class(tmp_path: Path):
    paths = [
        _ok(tmp_path / "bi/verdict.json", "control-Bi2", "topological", 1, 1.0, 0.5, expected=1),
        _ok(tmp_path / "sb/verdict.json", "control-Sb2", "trivial", 0, 0.0, 0.3, expected=0),
        _ok(tmp_path / "mns/verdict.json", "MnS", "topological", 0, 2.0, 0.2),
        _ok(tmp_path / "semi/verdict.json", "semi", "metal", 1, 1.0, -0.2),
        _write(
            tmp_path / "f/verdict.json",
            id="f",
            status="failed",
            verdict="failed",
            reason="pw.x scf failed",
            failed_step="scf",
            failed_output="f/scf/pw.out",
            trusted=False,
            z2=None,
            spin_chern=None,
        ),
        _write(tmp_path / "old/verdict.json", id="old", status="failed", error="boom"),
    ]
    table = summary_table(paths)
    assert list(table.columns) == list(COLUMNS)
    assert table["verdict"].tolist() == [
        "topological",
        "trivial",
        "topological",
        "metal",
        "failed",
        "failed",
    ]
    mns = table.iloc[2]
    assert mns["z2"] == 0 and mns["spin_chern"] == 2.0 and mns["spin_phi_deg"] == 22.5
    assert table.iloc[3]["dft_gap_indirect_eV"] == -0.2 and not table.iloc[3]["trusted"]
    assert table.iloc[4]["failed_step"] == "scf" and table.iloc[4]["reason"] == "pw.x scf failed"
    assert table.iloc[5]["reason"] == "boom"
    check_controls(table)
    plot_summary(table, tmp_path / "s.png")
    assert (tmp_path / "s.png").stat().st_size > 5000
    # a control with the right Z2 but a non-zero spin Chern number is not "trivial"
    bad = _ok(tmp_path / "sb2/verdict.json", "control-Sb2", "topological", 0, 2.0, 0.3, 0)
    with pytest.raises(Exception, match=r"control-Sb2: topological, Z2 = 0 .*spin Chern 2\.0"):
        check_controls(summary_table([paths[0], bad]))


# ---------------------------------------------------------------- failed candidates


NEVER_CONVERGES = """#!{python}
print("     convergence NOT achieved after 100 iterations: stopping")
raise SystemExit(2)
"""


@pytest.fixture
def chain_env(tmp_path: Path, fake_family: Path, cli):  # noqa: F811
    """Pseudos record, three candidates (one with no room for vacuum, one with a NaN
    coordinate), a never-converging pw.x."""
    from pymatgen.core import Lattice, Structure
    from pymatgen.io.ase import AseAtomsAdaptor

    from topogen.dft.candidates import write_candidate
    from topogen.io.tables import Record

    res = cli("dft", "pseudos", "--source", "local", "--dir", fake_family,
              "--out", tmp_path / "pseudos.json")  # fmt: skip
    assert res.returncode == 0, res.stderr
    for name, c in (("short", 8.0), ("stuck", 17.0)):
        struct = AseAtomsAdaptor.get_structure(bilayer("Bi", 4.34, 1.73, c=c))
        write_candidate(Record(name, "test", struct), tmp_path / f"{name}.json")
    broken = Structure(Lattice.hexagonal(4.3, 17.0), ["Bi", "Bi"], [[0, 0, 0.5], [np.nan, 0, 0.4]])
    write_candidate(Record("nan", "test", broken), tmp_path / "nan.json")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "pw.x").write_text(NEVER_CONVERGES.format(python=sys.executable))
    (bin_dir / "pw.x").chmod(0o755 | stat.S_IEXEC)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    return tmp_path, env


def _chain(cli, root: Path, name: str, env: dict) -> list:
    """Every step command of one candidate, as the rules chain them; the return codes."""
    work, pseudos = root / "dft" / name, root / "pseudos.json"
    codes = []
    candidate = root / f"{name}.json"
    for step, out in (("relax", "relaxed.json"), ("scf", "scf.json"), ("nscf", "nscf.json"),
                      ("wannierize", "wannier.json"), ("invariants", "verdict.json")):  # fmt: skip
        res = cli("dft", step, candidate, "--pseudos", pseudos, "--workdir", work,
                  "--out", work / out, "--mpi", "none", "--max-attempts", "2", env=env)  # fmt: skip
        codes.append((step, res.returncode, res.stderr.strip()))
        candidate = work / "relaxed.json"
    res = cli("dft", "edge-states", work / "wannier.json", "--plot", work / "edge.png",
              "--data", work / "edge.npz", env=env)  # fmt: skip
    codes.append(("edge-states", res.returncode, res.stderr.strip()))
    return codes


def test_failed_candidates_get_a_failed_verdict_row(chain_env, cli):
    root, env = chain_env
    for name in ("short", "stuck", "nan"):
        codes = _chain(cli, root, name, env)
        assert all(rc == 0 for _, rc, _ in codes), codes
        assert "FAILED at dft" in codes[-2][2]  # the invariants step says so
    short = json.loads((root / "dft/short/verdict.json").read_text())
    assert short["status"] == short["verdict"] == "failed" and short["failed_step"] == "relax"
    assert "too short for the 2D Coulomb cutoff" in short["reason"] and short["id"] == "short"
    assert not (root / "dft/short/scf").exists()  # later steps did not run
    broken = json.loads((root / "dft/nan/verdict.json").read_text())
    assert broken["verdict"] == "failed" and broken["failed_step"] == "relax"
    assert broken["reason"] == "cell or positions hold NaN or infinite values"
    stuck = json.loads((root / "dft/stuck/verdict.json").read_text())
    assert stuck["failed_step"] == "scf" and "2 attempts used" in stuck["reason"]
    assert stuck["failed_output"].endswith("scf/attempt-02/pw.out")
    assert Path(stuck["failed_output"]).exists()
    assert json.loads((root / "dft/stuck/nscf.json").read_text())["status"] == "failed"
    assert (root / "dft/stuck/edge.png").stat().st_size > 1000
    res = cli("dft", "summary", root / "dft/short/verdict.json", root / "dft/stuck/verdict.json",
              "--out", root / "summary.csv", "--plot", root / "summary.png")  # fmt: skip
    assert res.returncode == 0, res.stderr
    table = pd.read_csv(root / "summary.csv")
    assert table["verdict"].tolist() == ["failed", "failed"]
    assert table["failed_step"].tolist() == ["relax", "scf"]
    # the card of a failed candidate says where and why, and still shows the structure
    card = root / "cards/stuck/card.md"
    res = cli("dft", "card", root / "dft/stuck/verdict.json", "--candidate", root / "stuck.json",
              "--relaxed", root / "dft/stuck/relaxed.json", "--edge-plot",
              root / "dft/stuck/edge.png", "--out", card, "--picture",
              root / "cards/stuck/structure.png", "--flow",
              root / "cards/stuck/flow.png")  # fmt: skip
    assert res.returncode == 0, res.stderr
    text = card.read_text()
    assert "- **verdict: failed** (" in text and "2 attempts used" in text
    assert "| failed at | scf: `" in text and "scf/attempt-02/pw.out" in text
    assert "## Provenance" in text and "topogen dft invariants" in text
    assert (root / "cards/stuck/structure.png").stat().st_size > 10_000
    assert (root / "cards/stuck/flow.png").stat().st_size > 1000  # a note: no Wannier model
    assert "![flow](flow.png)" in text
    res = cli("dft", "cards-index", "--verdicts", root / "dft/stuck/verdict.json", "--cards",
              card, "--out", root / "cards/index.md")  # fmt: skip
    assert res.returncode == 0 and "| stuck |" in (root / "cards/index.md").read_text()
    # rerunning a failed step hands the failure on without running pw.x again
    calls = len(list((root / "dft/stuck/scf").glob("attempt-*")))
    assert _chain(cli, root, "stuck", env)[1][1] == 0
    assert len(list((root / "dft/stuck/scf").glob("attempt-*"))) == calls


def test_setup_errors_still_stop_the_workflow(chain_env, cli):
    """No pw.x on PATH: not the candidate's fault; exit 1, no failure recorded."""
    root, env = chain_env
    env = {**env, "PATH": str(Path(sys.executable).parent)}
    res = cli("dft", "scf", root / "stuck.json", "--pseudos", root / "pseudos.json",
              "--workdir", root / "w", "--out", root / "w/scf.json", "--mpi", "none",
              env=env)  # fmt: skip
    assert res.returncode == 1, res.stderr
    assert "candidate stuck: dft scf:" in res.stderr
    assert "'pw.x' not found on PATH: install Quantum ESPRESSO (Debian: `make system-deps`" in (
        res.stderr
    )
    assert len(res.stderr.strip().splitlines()) == 1
    assert not (root / "w/failed.json").exists() and not (root / "w/scf.json").exists()


def test_workflow_chains_a_failed_candidate_to_its_verdict(repo_root, tmp_path, fake_family):  # noqa: F811
    """dft.smk with a candidate whose cell is tilted (c not perpendicular to the layer): the
    relax rule records the failure and every later rule still writes its output, so the
    candidate's verdict, edge-state plot and summary row exist (no pw.x runs)."""
    from conftest import copy_workflow, run
    from pymatgen.core import Lattice, Structure

    from topogen.io.tables import Record, write_records

    tilted = Structure(
        Lattice.from_parameters(4.34, 4.34, 17.0, 80.0, 90.0, 120.0), ["Bi", "Bi"],
        [[1 / 3, 2 / 3, 0.55], [2 / 3, 1 / 3, 0.45]],
    )  # fmt: skip
    write_records([Record("tilted/1", "test", tilted)], tmp_path / "selected.parquet")
    wf = copy_workflow(repo_root, tmp_path / "wf")
    override = tmp_path / "dft.yaml"
    override.write_text(
        f"dft:\n  candidates: {tmp_path / 'selected.parquet'}\n"
        f"  pseudos: {{source: local, dir: {fake_family}}}\n"
    )
    targets = [f"results/dft/tilted_1/{f}" for f in ("verdict.json", "edge_states.png")]
    res = run(
        ["snakemake", "--cores", "1", "dft_candidates", "--configfile", str(override)], cwd=wf
    )
    assert res.returncode == 0, (res.stdout + res.stderr)[-3000:]
    res = run(["snakemake", "--cores", "1", *targets, "--configfile", str(override)], cwd=wf)
    assert res.returncode == 0, (res.stdout + res.stderr)[-3000:]
    verdict = json.loads((wf / targets[0]).read_text())
    assert verdict["verdict"] == "failed" and verdict["failed_step"] == "relax"
    assert "perpendicular" in verdict["reason"] and verdict["id"] == "tilted/1"
    res = run(["topogen", "dft", "summary", targets[0], "--out", "s.csv"], cwd=wf)
    assert res.returncode == 0, res.stderr
    row = pd.read_csv(wf / "s.csv").iloc[0]
    assert (row["verdict"], row["failed_step"]) == ("failed", "relax")
