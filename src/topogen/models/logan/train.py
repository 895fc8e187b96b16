"""Train one LoGAN ensemble member, load it, and draw structures from it.

A member is one (seed, hyper-parameter set); ``train_logan`` builds the real-environment
pool of the training structures (with rattled copies), trains a :class:`~topogen.models.
logan.model.LoGAN` with the house's resumable Trainer and writes ``model.ckpt`` (weights +
hyper-parameters, read back with ``weights_only=True``). ``generate`` turns seeds into
structures of the model's target (one sample per seed, so any one can be redrawn alone).
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch

from topogen.encode import EncodingError
from topogen.encode.graphs import structure_arrays
from topogen.models.logan.environments import extract_environments
from topogen.models.logan.model import LoGAN
from topogen.models.logan.settings import LoganSettings
from topogen.models.training import fingerprint, make_trainer, quiet_lightning, resume_path
from topogen.runtime import set_threads

FINAL = "model.ckpt"


def composition_numbers(formula: str) -> list[int]:
    """The target's atoms, in order of Z: "C5H12O" -> [1] * 12 + [6] * 5 + [8]."""
    from pymatgen.core import Composition

    try:
        comp = Composition(formula)
    except ValueError as exc:
        raise EncodingError(f"not a chemical formula: {formula!r} ({exc})") from exc
    if any(abs(n - round(n)) > 1e-8 for n in comp.values()) or not comp:
        raise EncodingError(f"{formula!r}: a target needs whole numbers of atoms")
    return [el.Z for el in sorted(comp, key=lambda e: e.Z) for _ in range(round(comp[el]))]


def chemical_system(structures: Sequence[Any], numbers: Sequence[int]) -> list[Any]:
    """The structures made only of the target's elements (its chemical system): their
    environments are the ones a sample of the target can have. EncodingError when none."""
    target = {int(z) for z in numbers}
    kept = [s for s in structures if set(structure_arrays(s)[2].tolist()) <= target]
    if not kept:
        raise EncodingError(
            f"no training structure is made of the target's elements Z = {sorted(target)} only"
        )
    return kept


def train_logan(
    training: Sequence[Any],
    numbers: Sequence[int],
    cell: Any,
    outdir: str | os.PathLike[str],
    settings: LoganSettings | None = None,
    *,
    pbc: Sequence[bool] = (True, True, True),
    threads: int | None = None,
    accelerator: str = "auto",
    log: Any = print,
) -> LoGAN:
    """Train on the environments of ``training`` (pymatgen Structures/Molecules or ASE Atoms)
    for the target atoms ``numbers`` in ``cell`` (3x3, rows; a box for molecules with
    ``pbc`` False); writes ``<outdir>/model.ckpt`` and returns the model (eval mode).
    Resumes from ``<outdir>/checkpoints/last.ckpt`` when it was trained with the same
    settings and data (:func:`topogen.models.training.resume_path`)."""
    settings = settings or LoganSettings()
    set_threads(threads)
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    L.seed_everything(settings.seed, verbose=False)
    species = {int(z) for s in training for z in structure_arrays(s)[2]} | set(numbers)
    cell = np.asarray(cell, dtype=np.float64).reshape(3, 3).tolist()
    model = LoGAN(numbers, cell, pbc, sorted(species), **settings.model_hparams())
    pool = extract_environments(
        training,
        model.descriptor,
        rattle=settings.rattle,
        copies=settings.copies,
        seed=settings.seed,
    )
    pool.check(numbers)
    model.pool = pool
    sizes = ", ".join(f"Z={z}: {len(p)}" for z, p in pool.pools.items())
    log(
        f"logan: {len(training)} training structures ({settings.copies} rattled copies "
        f"each), environments {sizes}; target {len(numbers)} atoms, {settings.epochs} epochs "
        f"x {settings.steps} generator steps, descriptor width {model.descriptor.dim}"
    )
    run = {k: v for k, v in asdict(settings).items() if k not in ("epochs", "snapshots")}
    stamp = fingerprint(model, [structure_arrays(s) for s in training], settings=run)
    ckpt = resume_path(outdir, stamp, settings.epochs, log)
    keep = snapshot_epochs(settings.epochs, settings.snapshots)
    loader = torch.utils.data.DataLoader(range(settings.steps), batch_size=1)
    with quiet_lightning():
        trainer = make_trainer(
            outdir,
            settings.epochs,
            accelerator=accelerator,
            devices=1,
            callbacks=[_Snapshots(keep)] if keep else None,
        )
        trainer.fit(model, loader, ckpt_path=ckpt)
        trainer.save_checkpoint(outdir / FINAL, weights_only=True)
    return model.eval()


def snapshot_epochs(epochs: int, snapshots: int) -> set[int]:
    """Epochs (counted from 1) after which a generator snapshot is kept: ``snapshots - 1``
    evenly spaced ones before the end (the final generator is the last snapshot)."""
    return {round(k * epochs / snapshots) for k in range(1, snapshots)} - {0, epochs}


class _Snapshots(L.Callback):
    def __init__(self, epochs: set[int]) -> None:
        self.epochs = epochs

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.current_epoch + 1 in self.epochs:
            pl_module.keep_snapshot()  # type: ignore[operator]


def load_logan(path: str | os.PathLike[str], map_location: Any = "cpu") -> LoGAN:
    """A trained :class:`LoGAN` from a ``.ckpt`` (read with ``weights_only=True``)."""
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
        model = LoGAN(**ckpt["hyper_parameters"])
        model.load_state_dict(ckpt["state_dict"])
        model.on_load_checkpoint(ckpt)
    except (
        OSError,
        RuntimeError,
        KeyError,
        TypeError,
        ValueError,
        EOFError,
        pickle.UnpicklingError,
    ) as exc:
        raise EncodingError(f"{path}: not a LoGAN checkpoint ({exc})") from exc
    return model.eval()


def snapshot_of(model: LoGAN, seed: int, snapshot: int | None = None) -> int:
    """The generator (index into :meth:`LoGAN.generators`) that draws ``seed``: the given
    ``snapshot`` (-1: the final generator), else the snapshots in turn (seed modulo their
    number)."""
    n = len(model.snapshot_states) + 1
    if snapshot is None:
        return int(seed) % n
    if not -n <= snapshot < n:
        raise EncodingError(f"snapshot {snapshot}: the model keeps {n} generator(s)")
    return snapshot % n


@torch.no_grad()
def generate(model: LoGAN, seeds: Sequence[int], snapshot: int | None = None) -> list[Any]:
    """One structure per seed (drawn by the generator :func:`snapshot_of` names): pymatgen
    Structures (periodic cell) or Molecules, in the order of ``seeds``."""
    from pymatgen.core import Lattice, Molecule, Structure

    model.eval()
    if not seeds:
        return []
    gens = model.generators()
    which = [snapshot_of(model, s, snapshot) for s in seeds]
    rows = []
    for s, k in zip(seeds, which, strict=True):
        rows.append(gens[k](model.noise(1, s)))
    pos = model.positions(torch.cat(rows)).double().cpu().numpy()
    hp = model.hparams
    if not any(hp.pbc):
        return [Molecule(hp.numbers, p) for p in pos]
    lattice = Lattice(hp.cell, pbc=tuple(hp.pbc))
    return [Structure(lattice, hp.numbers, p, coords_are_cartesian=True) for p in pos]
