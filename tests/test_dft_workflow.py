"""The DFT stage as commands and rules: `topogen dft ...` and workflow/rules/dft.smk.

Fast tests: candidate files and names, the controls' check, the summary, and a Snakemake dry
run in which the checkpoint expands a table of two candidates into per-candidate jobs.

The slow test runs the controls through Snakemake with the real programs (pw.x,
pw2wannier90.x, wannier90.x): `snakemake dft_controls`, which runs every `topogen dft` step
(relax, scf, nscf, wannierize, invariants, edge-states) on the Bi bilayer (Z2 = 1) and the
Sb bilayer (Z2 = 0) at the config's reduced settings. The CLI checks (a rerun resumes and
runs nothing, a step run out of order or a failing pw.x gives one line naming the
candidate, attempts kept) then reuse that run's folders instead of computing the chain again.
A last one checks what a job's time limit does to pw.x (bulk Si, seconds).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import copy_workflow, monolayers, run
from PIL import Image
from test_dft import DEBIAN_SI, _si, needs_qe
from test_spin_chern import _winding

from topogen.dft.candidates import CONTROLS, read_candidate, unique_names, write_candidate
from topogen.dft.cards import verdict_model
from topogen.dft.qe.handlers import PwFailedError, run_pw
from topogen.dft.qe.namelists import parse_namelists
from topogen.dft.qe.pwinput import pw_input
from topogen.dft.summary import check_controls, summary_table
from topogen.errors import TopogenError
from topogen.io.tables import Record, write_records
from topogen.topology.invariants import spin_resolved_centres


def _snakemake(workdir: Path, *args: str):
    return run(["snakemake", *args], cwd=workdir)


def _verdict(path: Path, rid: str, z2, expected=None, trusted=True, problems=()) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    props = {"control": True, "expected_z2": expected} if expected is not None else {}
    path.write_text(
        json.dumps(
            {
                "id": rid,
                "formula": "Bi2",
                "status": "ok",
                "verdict": ({1: "topological", 0: "trivial"}.get(z2) if trusted else "untrusted"),
                "reason": "; ".join(problems),
                "z2": z2,
                "spin_chern": z2,
                "trusted": trusted,
                "problems": list(problems),
                "properties": props,
                "invariants": {"z2_by_direction": [z2, z2]},
                "checks": {"dft_gap_direct_eV": 0.5, "wannier_gap_indirect_eV": 0.4},
            }
        )
    )
    return path


# ---------------------------------------------------------------- fast


def test_candidate_files_round_trip_and_names(tmp_path: Path) -> None:
    assert unique_names(["1T'-MX2-MoS2", "1T'-MX2-MoS2", "a/b c", "..."]) == [
        "1T_-MX2-MoS2", "1T_-MX2-MoS2-2", "a_b_c", "candidate",
    ]  # fmt: skip
    record = CONTROLS["Bi2"].record()
    assert record.id == "control-Bi2" and record.properties["expected_z2"] == 1
    assert CONTROLS["Sb2"].record().properties["expected_z2"] == 0  # from the topo2d table
    write_candidate(record, tmp_path / "c.json")
    back = read_candidate(tmp_path / "c.json")
    assert back.id == record.id and back.properties == record.properties
    assert back.structure.lattice.abc == pytest.approx(record.structure.lattice.abc)
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(TopogenError, match=r"bad\.json: not a candidate file"):
        read_candidate(tmp_path / "bad.json")


def test_summary_and_controls_check(tmp_path: Path, cli) -> None:
    bi = _verdict(tmp_path / "control-Bi2/verdict.json", "control-Bi2", 1, expected=1)
    sb = _verdict(tmp_path / "control-Sb2/verdict.json", "control-Sb2", 1, expected=0)
    cand = _verdict(tmp_path / "x/verdict.json", "x", None, trusted=False, problems=["p"])
    table = summary_table([bi, cand])
    assert table["candidate"].tolist() == ["control-Bi2", "x"]
    assert table["z2"].isna().tolist() == [False, True] and table.loc[0, "z2_k1_loops"] == 1
    check_controls(table)  # Bi2 gives what it must
    res = cli("dft", "summary", bi, sb, "--out", tmp_path / "c.csv", "--check-controls")
    assert res.returncode == 1 and not (tmp_path / "c.csv").exists()
    assert res.stderr.strip() == (
        "topogen: error: control(s) failed, so no verdict of this chain can be trusted: "
        "control-Sb2: topological, Z2 = 1 (expected 0), spin Chern 1, trusted = True"
    )
    res = cli("dft", "summary", bi, cand, "--out", tmp_path / "s.csv", "--plot", tmp_path / "s.png",
              "--html", tmp_path / "s.html")  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert len(pd.read_csv(tmp_path / "s.csv")) == 2 and (tmp_path / "s.png.prov.json").exists()
    page = pd.read_html(tmp_path / "s.html", keep_default_na=False)[0]  # the report's table
    assert page["candidate"].tolist() == ["control-Bi2 (control)", "x"]
    assert page["verdict"].tolist() == ["topological", "untrusted"]
    assert page["z2"].tolist() == ["1", "-"] and page["dft_gap_direct_eV"].tolist() == [0.5] * 2
    assert (
        "DFT verdicts of 2 candidates (topological: 1, untrusted: 1)"
        in (tmp_path / "s.html").read_text()
    )


def test_checkpoint_expands_selected_candidates(repo_root: Path, tmp_path: Path) -> None:
    """A dry run plans the checkpoint; once it has run, every per-candidate rule appears for
    each of the two selected candidates (from two tables) and the two controls."""
    wf = copy_workflow(repo_root, tmp_path / "wf")
    mono = monolayers()
    from pymatgen.io.ase import AseAtomsAdaptor

    tables = []
    for rid, name, source in (("1T'-odd/id", "MoS2", "gan"), ("honeycomb-X2-Bi2", "Bi2", "logan")):
        tables.append(tmp_path / f"{source}.parquet")
        write_records([Record(rid, source, AseAtomsAdaptor.get_structure(mono[name]))], tables[-1])
    override = tmp_path / "dft.yaml"  # two tables (e.g. two generators' selections)
    override.write_text(f"dft:\n  candidates: [{tables[0]}, {tables[1]}]\n")

    res = _snakemake(wf, "-n", "dft_summary", "--configfile", str(override))
    assert res.returncode == 0, res.stdout + res.stderr
    assert "checkpoint dft_candidates:" in res.stdout
    assert "honeycomb-X2-Bi2" not in res.stdout  # unknown until the checkpoint has run

    res = _snakemake(wf, "--cores", "1", "dft_candidates", "--configfile", str(override))
    assert res.returncode == 0, res.stdout + res.stderr
    index = pd.read_csv(wf / "results/dft/selected/index.csv")
    assert index["candidate"].tolist() == ["1T_-odd_id", "honeycomb-X2-Bi2"]
    assert index["source"].tolist() == ["gan", "logan"]

    res = _snakemake(wf, "-n", "dft_summary", "--configfile", str(override))
    assert res.returncode == 0, res.stdout + res.stderr
    expected = {"control-Bi2", "control-Sb2", "1T_-odd_id", "honeycomb-X2-Bi2"}
    for rule in ("dft_relax", "dft_scf", "dft_nscf", "wannierize", "invariants", "edge_states"):
        jobs = {
            line.split("cand=")[1].strip()
            for block in res.stdout.split(f"rule {rule}:")[1:]
            for line in block.splitlines()
            if "wildcards: cand=" in line
        }
        assert jobs == expected, (rule, jobs)
    assert "--tasks 1 --pools 1 --mpi auto --time-limit 1440" in res.stdout
    assert "rule dft_summary:" in res.stdout and "checkpoint dft_candidates:" not in res.stdout


def test_controls_target_needs_no_screening(repo_root: Path, tmp_path: Path) -> None:
    wf = copy_workflow(repo_root, tmp_path / "wf")
    res = _snakemake(wf, "-n", "dft_controls")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "dft_candidates" not in res.stdout and "screen" not in res.stdout
    assert "control-Bi2" in res.stdout and "control-Sb2" in res.stdout


# ---------------------------------------------------------------- slow: real programs


@pytest.fixture(scope="module")
def controls_run(tmp_path_factory, request):
    """`snakemake --cores 2 dft_controls` in a copy of the workflow (the real chain)."""
    root = Path(request.config.rootpath)
    wf = copy_workflow(root, tmp_path_factory.mktemp("dft") / "wf")
    t0 = time.monotonic()
    res = run(["snakemake", "--cores", "2", "dft_controls"], cwd=wf, timeout=1800)
    return wf, res, time.monotonic() - t0


@pytest.mark.slow
@needs_qe
def test_snakemake_runs_the_controls(controls_run, cli) -> None:
    wf, res, seconds = controls_run
    assert res.returncode == 0, (res.stdout + res.stderr)[-4000:]
    table = pd.read_csv(wf / "results/dft/controls.csv").set_index("candidate")
    print(f"\nsnakemake dft_controls: {seconds:.0f} s\n{table.T.to_string()}")
    assert table.loc["control-Bi2", "z2"] == 1 and table.loc["control-Sb2", "z2"] == 0
    for name in ("control-Bi2", "control-Sb2"):
        row = table.loc[name]
        assert row["trusted"] and row["z2_k1_loops"] == row["z2_k2_loops"] == row["z2"]
        assert row["expected_z2"] == row["z2"] and row["dft_gap_direct_eV"] > 0.3
        assert row["dft_gap_indirect_eV"] > 0 and row["wannier_gap_indirect_eV"] > 0
        assert row["verdict"] == ("topological" if row["z2"] == 1 else "trivial")
        verdict = json.loads((wf / f"results/dft/{name}/verdict.json").read_text())
        element = name.removeprefix("control-")[:-1]
        assert verdict["wannier"]["projections"] == [f"{element}:p"], verdict["wannier"]
        assert len(verdict["pseudos"][element]["sha256"]) == 64
        assert pd.isna(row["failed_step"]) and pd.notna(row["spin_phi_deg"])
        assert (wf / f"results/dft/{name}/edge_states.png").stat().st_size > 10_000
        for step in ("scf", "nscf"):
            assert (wf / f"results/dft/{name}/{step}/attempt-01/pw.out").exists()
        # the standalone command on the control's own Wannier model gives the chain's answer
        out = wf / f"results/dft/{name}/standalone.json"
        n_occ = verdict["invariants"]["n_occupied"]
        res = cli("topology", "invariants", verdict["paths"]["hr"], "--occupied", n_occ,
                  "--json", out, cwd=wf)  # fmt: skip
        assert res.returncode == 0, res.stderr
        alone = json.loads(out.read_text())
        assert alone["z2"] == row["z2"] and alone["time_reversal"], alone
        assert alone["spin_order"] == "interleaved" and alone["spin_chern"] == row["spin_chern"]
        # the spin-resolved flow of the card winds as the verdict's spin Chern number
        paths = {k: str(wf / v) for k, v in verdict["paths"].items()}  # relative to wf
        model, nocc = verdict_model({**verdict, "paths": paths})
        phi = np.radians(row["spin_phi_deg"])
        _, up, down = spin_resolved_centres(model, nocc, phi, n_k=24, n_loop=31)
        assert np.isclose(-(_winding(up) - _winding(down)) / 2, row["spin_chern"], atol=1e-6)
        card = wf / f"cards/{name}"
        res = cli("dft", "card", f"results/dft/{name}/verdict.json", "--candidate",
                  f"results/dft/controls/{name}.json", "--out", card / "card.md", "--picture",
                  card / "structure.png", "--bands", card / "bands.png", "--spin",
                  card / "spin.png", cwd=wf)  # fmt: skip
        assert res.returncode == 0, res.stderr
        text = (card / "card.md").read_text()
        assert "## DFT vs Wannier bands" in text and "## Spin-resolved Wannier-centre" in text
        for figure in ("bands.png", "spin.png"):  # drawn, not the one-line "no model" note
            assert Image.open(card / figure).size[1] > 400, figure
    lineage = cli("provenance", "results/dft/controls.csv", cwd=wf)
    assert lineage.returncode == 0, lineage.stderr
    for command in ("dft pseudos", "dft control", "dft relax", "dft wannierize", "invariants"):
        assert command in lineage.stdout


@pytest.mark.slow
@needs_qe
def test_cli_steps_resume_and_fail_with_one_line(controls_run, cli) -> None:
    """On the folders of the Snakemake run: the rule's own scf command again resumes (no new
    attempt); a step whose predecessor has not run, and a pw.x that fails, give one line
    naming the candidate, and the failed attempt stays on disk."""
    wf, res, _ = controls_run
    assert res.returncode == 0, (res.stdout + res.stderr)[-4000:]
    scf_json = wf / "results/dft/control-Bi2/scf.json"
    argv = json.loads(Path(f"{scf_json}.prov.json").read_text())["argv"]
    t0 = time.monotonic()
    again = cli("dft", *argv[argv.index("scf") :], cwd=wf)
    assert again.returncode == 0, again.stderr
    assert time.monotonic() - t0 < 30
    assert len(json.loads(scf_json.read_text())["attempts"]) == 1
    assert not (wf / "results/dft/control-Bi2/scf/attempt-02").exists()

    step = argv[argv.index("scf") :]
    fresh = [*step[: step.index("--workdir") + 1], "fresh", *step[step.index("--workdir") + 2 :]]
    fresh[fresh.index("--out") + 1] = "fresh/out.json"
    res = cli("dft", "nscf", *fresh[1:], cwd=wf)
    assert res.returncode == 1 and len(res.stderr.strip().splitlines()) == 1
    assert res.stderr.startswith("topogen: error: candidate control-Bi2: dft nscf: ")
    assert "step 'scf' has not finished" in res.stderr

    res = cli("dft", *fresh, "--smearing", "no-such-smearing", cwd=wf)
    assert res.returncode == 1 and len(res.stderr.strip().splitlines()) == 1
    assert res.stderr.startswith("topogen: error: candidate control-Bi2: dft scf: pw.x scf")
    assert "failed after 1 attempt(s)" in res.stderr and "no-such-smearing" in res.stderr
    attempt = wf / "fresh/scf/attempt-01"
    assert (attempt / "pw.in").exists() and (attempt / "pw.out").exists()
    assert json.loads((attempt / "attempt.json").read_text())["reason"].startswith("error:")


@pytest.mark.slow
@needs_qe
@pytest.mark.skipif(not DEBIAN_SI.exists(), reason=f"{DEBIAN_SI} (Debian QE data) not installed")
def test_time_limit_stops_then_the_next_job_restarts(tmp_path: Path) -> None:
    """What `--time-limit` does: pw.x stopped by max_seconds ends the call (the job's time is
    up); the next call, with the new job's max_seconds, restarts from the saved files."""
    common = dict(ecutwfc=30, kpoints=(8, 8, 8), spin_orbit=False, two_d=False,
                  conv_thr=1e-11, mixing_beta=0.2)  # fmt: skip
    first = pw_input(_si(), {"Si": DEBIAN_SI}, max_seconds=2.0, **common)
    with pytest.raises(PwFailedError, match="stopped at max_seconds; rerun to restart"):
        run_pw(first, tmp_path / "scf", stop_at_max_seconds=True)
    assert not (tmp_path / "scf/attempt-02").exists()
    second = pw_input(_si(), {"Si": DEBIAN_SI}, max_seconds=600.0, **common)
    result = run_pw(second, tmp_path / "scf", stop_at_max_seconds=True)
    assert [a.reason for a in result.attempts] == ["max_seconds_reached", None]
    restarted = parse_namelists((result.attempts[1].directory / "pw.in").read_text())
    assert restarted["control"]["restart_mode"] == "restart"
    assert restarted["control"]["max_seconds"] == 600.0
    assert "Calculation restarted" in result.output_path.read_text()
