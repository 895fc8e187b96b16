"""LoGAN: the WGAN-GP on local environments learns a toy molecule (the critic's Wasserstein
estimate falls and the generated geometry approaches the real one), samples have the
requested composition (also one absent from the training set), a saved model regenerates
the same samples, and the diversity filter returns exactly K distinct samples."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from pymatgen.core import Lattice, Molecule, Structure

from topogen.encode import EncodingError
from topogen.models.logan.settings import LoganSettings
from topogen.models.logan.train import (
    generate,
    load_logan,
    snapshot_epochs,
    snapshot_of,
    train_logan,
)
from topogen.screen.selection import select_diverse

OH, HOH = 0.96, np.deg2rad(104.5)  # water: O-H bond (A) and H-O-H angle


def waters(n: int, seed: int = 0) -> list[Molecule]:
    rng = np.random.default_rng(seed)
    pos = np.array([[0, 0, 0], [OH, 0, 0], [OH * np.cos(HOH), OH * np.sin(HOH), 0]])
    out = []
    for _ in range(n):
        q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
        out.append(Molecule(["O", "H", "H"], pos @ q.T + 2.0))
    return out


def toy(tmp_path, epochs: int, **kw):
    settings = LoganSettings(epochs=epochs, steps=20, batch_size=16, r_cut=3.0, copies=1, **kw)
    box = np.eye(3) * 4.0
    return train_logan(waters(20), [8, 1, 1], box, tmp_path, settings, pbc=(False,) * 3)


def test_training_lowers_the_wasserstein_estimate_and_learns_the_toy_geometry(tmp_path):
    torch.manual_seed(0)
    model = toy(tmp_path, epochs=12)
    log = pd.read_csv(next(tmp_path.glob("logs/version_*/metrics.csv")))
    w = log.dropna(subset=["wasserstein"]).sort_values("epoch")["wasserstein"].to_numpy()
    assert len(w) == 12 and w[-1] < 0.3 * w[0]
    mols = generate(model, range(16))
    d = np.stack([m.distance_matrix for m in mols])
    assert abs(np.median(d[:, 0, 1:]) - OH) < 0.15  # O-H (an untrained generator: ~1.5 A)
    assert np.median(d[:, 1, 2]) > 1.2  # the two H apart (real: 1.52 A), not collapsed


def test_samples_have_the_target_composition_and_a_saved_model_regenerates_them(tmp_path):
    """Trained on H2O only, asked for H2O2 in a periodic cell (a composition the training
    set lacks): every sample is H2O2 in that cell; the checkpoint gives the same samples."""
    cell = np.diag([5.0, 5.0, 12.0])
    settings = LoganSettings(
        epochs=1, steps=2, batch_size=4, r_cut=3.0, copies=0, span=0.3, max_neighbors=2
    )
    model = train_logan(waters(4), [8, 8, 1, 1], cell, tmp_path, settings)
    samples = generate(model, [3, 4, 5])
    for s in samples:
        assert isinstance(s, Structure) and s.composition.as_dict() == {"O": 2.0, "H": 2.0}
        assert [site.specie.Z for site in s] == [8, 8, 1, 1]
        assert np.allclose(s.lattice.matrix, cell)
        z = s.cart_coords[:, 2]
        assert z.min() >= 12.0 * 0.35 - 1e-9 and z.max() <= 12.0 * 0.65 + 1e-9  # span 0.3
    loaded = load_logan(tmp_path / "model.ckpt")
    assert loaded.descriptor.max_neighbors == 2  # the paper's n_neig, kept in the checkpoint
    again = generate(loaded, [4])
    assert np.allclose(again[0].cart_coords, samples[1].cart_coords)


def test_snapshots_are_kept_saved_and_drawn_in_turn(tmp_path):
    """snapshots=3 over 3 epochs keeps the generators after epochs 1 and 2 next to the final
    one; the checkpoint carries them; seeds go to the three in turn, or to the one asked."""
    assert snapshot_epochs(6, 3) == {2, 4} and snapshot_epochs(3, 3) == {1, 2}
    assert snapshot_epochs(6, 1) == set()
    settings = LoganSettings(epochs=3, steps=2, batch_size=4, r_cut=3.0, copies=0, snapshots=3)
    model = train_logan(waters(4), [8, 1, 1], np.eye(3) * 4.0, tmp_path, settings, pbc=(False,) * 3)
    loaded = load_logan(tmp_path / "model.ckpt")
    assert len(loaded.generators()) == 3
    z = loaded.noise(1, 7)
    outs = [g(z) for g in loaded.generators()]
    assert not torch.allclose(outs[0], outs[2]) and not torch.allclose(outs[1], outs[2])
    assert [snapshot_of(loaded, s) for s in range(4)] == [0, 1, 2, 0]
    mixed = generate(loaded, [6, 7, 8])  # seeds 6, 7, 8 -> snapshots 0, 1, 2
    for k, mol in zip((0, 1, 2), mixed, strict=True):
        alone = generate(loaded, [6 + k], snapshot=k)[0]
        assert np.allclose(mol.cart_coords, alone.cart_coords)
    final = generate(loaded, [7], snapshot=-1)[0]
    assert np.allclose(final.cart_coords, generate(model, [7], snapshot=2)[0].cart_coords)
    assert not np.allclose(final.cart_coords, mixed[1].cart_coords)
    with pytest.raises(EncodingError, match="keeps 3 generator"):
        generate(loaded, [1], snapshot=3)


def test_an_element_without_training_environments_is_a_clear_error(tmp_path):
    with pytest.raises(EncodingError, match=r"no training environment for element\(s\) Z = \[6\]"):
        train_logan(waters(2), [6, 8], np.eye(3) * 4, tmp_path, LoganSettings(epochs=1))


def test_the_filter_returns_exactly_k_distinct_samples(tmp_path):
    settings = LoganSettings(epochs=1, steps=2, batch_size=4, r_cut=3.0, copies=0)
    cell = Lattice.hexagonal(3.2, 15.0).matrix
    model = train_logan(waters(3), [8, 1, 1], cell, tmp_path, settings)
    samples = generate(model, range(40))
    sel = select_diverse(samples, 7, seed=0, r_cut=3.0)
    assert len(sel.indices) == 7 == len(set(sel.indices))
    assert len({tuple(np.round(samples[i].frac_coords.ravel(), 6)) for i in sel.indices}) == 7


def test_xtb_relaxation_and_smiles_recover_a_rattled_isomer():
    """GFN2-xTB relaxes a rattled ethanol back to a minimum whose perceived bonds give the
    SMILES of ethanol (the test of LoGAN's molecular benchmark), not of dimethyl ether."""
    from ase.build import molecule

    from topogen.calc.xtb import relax_molecule
    from topogen.structure.molecules import canonical_smiles, geometry_smiles

    atoms = molecule("CH3CH2OH")
    atoms.rattle(0.1, seed=1)
    r = relax_molecule(atoms)
    assert r.converged and r.fmax < 0.05
    got = geometry_smiles(r.atoms.get_chemical_symbols(), r.atoms.positions)
    assert got == canonical_smiles("OCC") != canonical_smiles("COC")
    far = molecule("CH4")
    far.translate([0.0, 0.0, 4.0])
    two = molecule("CH4") + far
    assert geometry_smiles(two.get_chemical_symbols(), two.positions) == "C.C"  # fragments
    assert geometry_smiles(["C", "C"], [[0, 0, 0], [0, 0, 4.0]]) is None  # bare radicals


@pytest.mark.slow
def test_molecular_benchmark_smoke(tmp_path):
    """bench/logan_c5h12o.py end to end at toy scale on the shared QM9 files."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    from topogen.data.shared import shared_data_root

    root = shared_data_root()
    if root is None or not (root / "logan").is_dir():
        pytest.skip("../shared/data/logan is absent (set TOPOGEN_SHARED_DATA)")
    bench = Path(__file__).parents[1] / "bench" / "logan_c5h12o.py"
    args = ["--epochs", "2", "--steps", "3", "--samples", "12", "--k", "2", "4"]
    args += ["--seeds", "0", "1", "--r-cut", "5", "--n-max", "4", "--snapshots", "2"]
    args += ["--threads", "1", "--workers", "2", "--out", str(tmp_path)]
    subprocess.run([sys.executable, str(bench), *args], check=True, timeout=600)
    out = json.loads((tmp_path / "logan-molecules.json").read_text())
    assert out["n_ground_truth"] == 14 and out["n_samples"] == 24
    # the two members trained in worker processes, each in its own folder
    assert [m["name"] for m in out["members"]] == ["seed0-rcut5-nmax4", "seed1-rcut5-nmax4"]
    assert all((tmp_path / m["name"] / "model.ckpt").is_file() for m in out["members"])
    assert (
        [c["k"] for c in out["curve"]] == [2, 4] == [c["k"] for c in out["curve_final_generators"]]
    )
    assert out["n_relaxations_all_k"] >= 4  # the two pools share no generator for odd seeds
    assert sum(n for _, n in out["relaxed_smiles"]) == out["n_relaxations_all_k"]
    assert (tmp_path / "logan-molecules.png").stat().st_size > 1000


@pytest.mark.slow
def test_crystal_benchmark_smoke(tmp_path):
    """bench/logan_sio2.py end to end at toy scale on the smallest shared SiO2 target: LoGAN
    picks (the final generator's and, with --snapshots, every kept generator's) and as many
    random structures are relaxed with CHGNet and matched to the target; a --train-only run
    trains the model and writes no summary, and the next run reuses the model."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    from topogen.data.shared import shared_data_root

    root = shared_data_root()
    target = None if root is None else root / "logan" / "mp-546794_ground_truth.extxyz"
    if target is None or not target.exists():
        pytest.skip("../shared/data/logan is absent (set TOPOGEN_SHARED_DATA)")
    bench = Path(__file__).parents[1] / "bench" / "logan_sio2.py"
    args = ["--targets", str(target), "--epochs", "2", "--steps", "2", "--samples", "8"]
    args += ["--select", "2", "--seeds", "0", "--radial", "centred", "--relax-steps", "50"]
    args += ["--snapshots", "2", "--threads", "1", "--out", str(tmp_path)]

    def run(*extra: str) -> str:
        cmd = [sys.executable, str(bench), *args, *extra]
        done = subprocess.run(
            cmd,
            check=True,
            timeout=900,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        return done.stdout  # the bench's log and the training's progress lines

    assert "epoch 1/2" in run("--train-only")
    assert (tmp_path / "mp-546794" / "centred-n12-s0" / "model.ckpt").exists()
    assert not (tmp_path / "logan-crystals.json").exists()
    assert "epoch 1/2" not in run()  # the trained model is reused
    out = json.loads((tmp_path / "logan-crystals.json").read_text())
    (row,) = out["targets"]
    assert row["target"] == "mp-546794" and row["formula"] == "Si2O4"
    methods = ("logan", "logan_snapshots", "random")
    assert [row[m]["n_relaxations"] for m in methods] == [2, 2, 2]
    assert out["recovered"] == int(row["logan"]["recovered"])
    assert out["snapshots_recovered"] == int(row["logan_snapshots"]["recovered"])
    assert all("match" in r for m in methods for r in row[m]["relaxations"])
    assert [r["seed"] for r in row["logan"]["relaxations"]] == [0, 0]  # the model that drew it
    assert set(row["sets"][0]["sample_spread_A"]) == {"0"}  # one figure per seed (JSON keys)
    assert row["logan"]["distinct_minima"] >= 1 and row["random"]["distinct_minima"] >= 1
    assert (tmp_path / "logan-crystals.png").stat().st_size > 1000


def test_train_and_generate_commands_on_a_structure_table(cli, tmp_path):
    """`topogen train logan` keeps the target's chemical system of the table (MoS2: the
    Mo-S crystals, not the W-Se one), `topogen generate logan` pools the members' samples
    with checkpoint, sha256, target and seed per row; atoms too close are quarantined."""
    from ase.build import mx2

    from topogen.io.provenance import sha256
    from topogen.io.tables import Record, read_records, write_records

    layers = [mx2("MoS2", "2H", a=3.16, vacuum=8.0), mx2("MoS2", "1T", a=3.19, vacuum=8.0)]
    layers.append(mx2("WSe2", "2H", a=3.29, vacuum=8.0))
    from pymatgen.io.ase import AseAtomsAdaptor

    records = [
        Record(f"r{i}", "test", AseAtomsAdaptor.get_structure(a)) for i, a in enumerate(layers)
    ]
    table = write_records(records, tmp_path / "table.parquet")
    models = []
    for seed in (0, 1):
        out = tmp_path / f"m{seed}.ckpt"
        res = cli("train", "logan", "--table", table, "--formula", "MoS2",
                  "--lattice", "3.16", "3.16", "20", "90", "90", "120", "--out", out,
                  "--workdir", tmp_path / f"w{seed}", "--epochs", "1", "--steps", "2",
                  "--batch-size", "4", "--span", "0.2", "--seed", seed, "--r-cut", "4")  # fmt: skip
        assert res.returncode == 0, res.stderr
        assert "2 of 3 structures in the MoS2 system" in res.stdout + res.stderr
        models.append(out)
    out = tmp_path / "candidates.parquet"
    res = cli("generate", "logan", "--models", *models, "--n", "5", "--seed", "3",
              "--min-distance", "0.5", "--out", out)  # fmt: skip
    assert res.returncode == 0, res.stderr
    rows = read_records(out)
    quarantined = pd.read_csv(f"{out}.quarantine.csv")
    assert len(rows) + len(quarantined) == 10
    assert all("overlapping atoms" in r for r in quarantined["reason"])
    for r in rows:
        k, seed = (int(x) for x in r.id.split("-")[1:])
        assert r.properties["seed"] == seed and 3 <= seed < 8
        assert r.properties["checkpoint_sha256"] == sha256(models[k])
        assert r.structure.composition.as_dict() == {"Mo": 1.0, "S": 2.0}
        assert np.allclose(r.structure.lattice.abc, (3.16, 3.16, 20.0))


def bench_module(monkeypatch, name: str, *argv: str):
    """bench/<name>.py imported as a module, as run with ``argv``."""
    import importlib.util
    import sys
    from pathlib import Path

    bench = Path(__file__).parents[1] / "bench"
    monkeypatch.syspath_prepend(str(bench))
    monkeypatch.setattr(sys, "argv", [name, *argv])
    spec = importlib.util.spec_from_file_location(name, bench / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def bench_parser(monkeypatch, name: str, *argv: str):
    """The argument parser of bench/<name>.py as run with ``argv``."""
    return bench_module(monkeypatch, name, *argv).parser()


def test_crystal_benchmark_diversity_figures(monkeypatch):
    """The SiO2 benchmark's diversity figures: the samples' spread is the rms distance of
    the atoms from their mean positions (0 for copies of one structure), and the distinct
    minima count the relaxed structures StructureMatcher tells apart (failed ones left out)."""
    from types import SimpleNamespace

    from pymatgen.analysis.structure_matcher import StructureMatcher

    bench = bench_module(monkeypatch, "logan_sio2")
    lattice = Lattice.cubic(5.0)
    one = Structure(lattice, ["Si", "O"], [[0, 0, 0], [1.6, 0, 0]], coords_are_cartesian=True)
    moved = Structure(lattice, ["Si", "O"], [[0, 0, 0], [1.6, 0.4, 0]], coords_are_cartesian=True)
    assert bench.spread([one, one.copy()]) == pytest.approx(0.0)
    # the O atom sits 0.2 A from its mean in both samples, Si at its mean: sqrt(0.04 / 2)
    assert bench.spread([one, moved]) == pytest.approx(np.sqrt(0.02))
    other = Structure(lattice, ["Si", "O"], [[0, 0, 0], [2.5, 2.5, 2.5]])
    relaxed = [SimpleNamespace(structure=s, error=None) for s in (one, one.copy(), other)]
    relaxed.append(SimpleNamespace(structure=moved, error="CHGNet failed"))
    assert bench.distinct_minima(relaxed, StructureMatcher()) == 2
    assert bench.distinct_minima(relaxed[3:], StructureMatcher()) == 0


def test_benchmarks_take_the_papers_schedules_from_paper_yaml(monkeypatch, tmp_path, capsys):
    """`--config config/paper.yaml` gives both benchmarks the paper's ensembles and counts
    (the C5H12O one is the workflow's train.logan of the same file); a command-line option
    still wins; an unknown key in the file is an error naming it."""
    from pathlib import Path

    import yaml

    paper = Path(__file__).parents[1] / "config" / "paper.yaml"
    args = bench_parser(monkeypatch, "logan_c5h12o", "--config", str(paper)).parse_args()
    assert (args.seeds, args.r_cut, args.n_max) == ([0, 1, 2], [5.0, 6.0], [3, 4])
    assert args.epochs * args.steps == 60_000 and args.batch_size == 15 and args.lr == 1e-4
    assert (args.copies, args.samples, args.snapshots, args.k[-2]) == (20, 2000, 1, 38)
    logan = yaml.safe_load(paper.read_text())["train"]["logan"]
    assert logan["members"]["seeds"] == args.seeds and logan["sample"]["n"] == args.samples
    sets = {(s["r_cut"], s["n_max"]) for s in logan["members"]["sets"]}
    assert sets == {(r, n) for r in args.r_cut for n in args.n_max}
    assert logan["options"]["epochs"] * logan["options"]["steps"] == 60_000
    assert (args.radial, args.max_neighbors) == ("centred", 12)  # the authors' n_neig
    assert (logan["options"]["radial"], logan["options"]["max_neighbors"]) == ("centred", 12)
    args = bench_parser(monkeypatch, "logan_sio2", "--config", str(paper), "--seeds", "7")
    args = args.parse_args()
    assert args.seeds == [7] and args.radial == ["centred", "bessel"]
    assert args.max_neighbors == [12, 25]
    assert (args.epochs * args.steps, args.samples, args.select, args.r_cut) == (
        45_000,
        1000,
        20,
        4,
    )
    bad = tmp_path / "bad.yaml"
    bad.write_text("bench:\n  logan_sio2: {sedes: [1]}\n")
    with pytest.raises(SystemExit):
        bench_parser(monkeypatch, "logan_sio2", "--config", str(bad))
    assert "bench.logan_sio2 has unknown option(s) ['sedes']" in capsys.readouterr().err
