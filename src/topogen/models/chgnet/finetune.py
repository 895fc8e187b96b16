"""Fine-tune CHGNet on DFT relaxation trajectories, as Tyner et al. do before CHGNet serves
as the Stage III oracle (they relax 1,600 Stage I samples with QE and fine-tune on the
trajectories).

:func:`finetune` reads trajectory files (:mod:`topogen.io.trajectories`, written by
``topogen dft trajectory``), holds out whole structures (every frame of a held-out
relaxation: data the model never saw, not neighbouring frames of a trajectory it trained
on), and trains with CHGNet's own ``chgnet.trainer.Trainer`` on
``chgnet.data.dataset.StructureData`` (energy per atom, forces, optionally stress). The
metrics compare the held-out energy and force MAE before and after.

Energies of our pw.x runs (PseudoDojo norm-conserving, spin-orbit) sit on another absolute
scale than CHGNet's (VASP PBE/PBE+U, MPtrj). As CHGNet's authors advise for such data, the
per-element reference energies (its ``AtomRef`` composition model) are refit first, by least
squares on the training frames' residuals, and kept fixed while training (an element
found only in held-out structures has no reference: the metrics list such elements, whose
energies are then off by their whole reference). "Before" is the
pretrained model with refit references (its forces are exactly the pretrained ones); the
metrics also give the raw pretrained energy MAE. The model after the last epoch is kept
(no selection on any split), saved by :func:`topogen.calc.relax.save_model`.

Departures from the paper: its DFT settings are in ``config/paper.yaml``, but it does not
state its fine-tuning hyper-parameters; ours are :class:`FinetuneSettings`. Magnetic
moments are not trained (the noncollinear runs are not spin-polarised).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from topogen.errors import TopogenError
from topogen.io.trajectories import Frame, Trajectory, read_trajectory

__all__ = ["FinetuneSettings", "evaluate_frames", "finetune", "refit_reference", "split"]


@dataclass(frozen=True)
class FinetuneSettings:
    """Hyper-parameters of the fine-tuning (CHGNet's trainer; loss weights as its own)."""

    epochs: int = 30
    batch_size: int = 8
    lr: float = 1e-3
    held_out: float = 0.2  # fraction of the structures (whole trajectories) held out
    val_fraction: float = 0.1  # of the training frames: the trainer's per-epoch check
    stress: bool = False  # train on stresses too (needs converged cutoffs: Pulay stress)
    force_weight: float = 1.0
    stress_weight: float = 0.1
    refit_reference: bool = True  # per-element reference energies refit before training
    seed: int = 0


def split(ids: Sequence[str], held_out: float, seed: int) -> tuple[list[str], list[str]]:
    """(train, held-out) structure ids: ``held_out`` of them (at least one each side)."""
    if len(ids) < 2:
        raise TopogenError(
            f"fine-tuning needs at least 2 relaxed structures (one held out), got {len(ids)}"
        )
    order = np.random.default_rng(seed).permutation(len(ids))
    n_test = min(len(ids) - 1, max(1, round(held_out * len(ids))))
    test = sorted(ids[i] for i in order[:n_test])
    return [i for i in ids if i not in set(test)], test


def _frames(trajectories: Sequence[Trajectory]) -> list[Frame]:
    return [f for t in trajectories for f in t.frames]


def _predict(model: Any, frames: Sequence[Frame], task: str) -> list[dict[str, Any]]:
    """CHGNet's predictions (``e`` per atom, ``f``), one dict per frame."""
    preds = model.predict_structure([f.structure() for f in frames], task=task, batch_size=16)
    return [preds] if isinstance(preds, dict) else list(preds)


def evaluate_frames(model: Any, frames: Sequence[Frame]) -> dict[str, Any]:
    """Energy MAE (eV/atom) and force MAE (eV/A, over every component) of ``model`` on
    ``frames``."""
    if not frames:
        raise TopogenError("no frames to evaluate on")
    pairs = list(zip(_predict(model, frames, "ef"), frames, strict=True))
    e_err = [abs(float(p["e"]) - f.energy / len(f.species)) for p, f in pairs]
    f_err = np.concatenate([np.abs(np.asarray(p["f"]) - f.forces).ravel() for p, f in pairs])
    return {
        "energy_mae_eV_per_atom": float(np.mean(e_err)),
        "force_mae_eV_per_A": float(np.mean(f_err)),
        "frames": len(frames),
    }


def refit_reference(model: Any, frames: Sequence[Frame]) -> None:
    """Refit ``model``'s per-element reference energies (``AtomRef``) so that it predicts
    the frames' energies per atom with least squares error (module docstring)."""
    import torch

    graphs = [model.graph_converter(f.structure()) for f in frames]
    with torch.no_grad():
        old = model.composition_model(graphs).numpy()
    e_model = np.array([float(p["e"]) for p in _predict(model, frames, "e")])
    e_dft = np.array([f.energy / len(f.species) for f in frames])
    model.composition_model.fit(graphs, e_dft - (e_model - old))


def _loader(frames: Sequence[Frame], settings: FinetuneSettings, shuffle: bool) -> Any:
    import torch
    from chgnet.data.dataset import StructureData, collate_graphs

    with contextlib.redirect_stdout(sys.stderr):
        data = StructureData(
            structures=[f.structure() for f in frames],
            energies=[f.energy / len(f.species) for f in frames],
            forces=[f.forces.tolist() for f in frames],
            # StructureData takes VASP-sign stresses in kbar (it converts to CHGNet's GPa)
            stresses=[f.stress.tolist() for f in frames] if settings.stress else None,
            shuffle=False,
        )
    return torch.utils.data.DataLoader(
        data,
        batch_size=settings.batch_size,
        shuffle=shuffle,
        collate_fn=collate_graphs,
        generator=torch.Generator().manual_seed(settings.seed),
    )


def _check_stress(frames: Sequence[Frame], settings: FinetuneSettings) -> None:
    if settings.stress and any(f.stress is None for f in frames):
        raise TopogenError("stress training asked for, but some frames have no stress")


def finetune(
    trajectories: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    workdir: str | os.PathLike[str],
    settings: FinetuneSettings | None = None,
    *,
    init: str | os.PathLike[str] | None = None,
    log: Callable[[str], None] = lambda message: None,
) -> dict[str, Any]:
    """Fine-tune CHGNet (``init``: a saved one; None: the pretrained) on the trajectory
    files, save it to ``out`` and return the metrics (module docstring)."""
    import torch
    from chgnet.trainer import Trainer

    from topogen.calc.relax import load_model, save_model

    s = settings or FinetuneSettings()
    loaded = [read_trajectory(p) for p in trajectories]
    usable = [t for t in loaded if t.frames]
    ids = [t.id for t in usable]
    if len(set(ids)) != len(ids):
        raise TopogenError("two trajectory files have the same structure id")
    train_ids, test_ids = split(ids, s.held_out, s.seed)
    train = _frames([t for t in usable if t.id in set(train_ids)])
    test = _frames([t for t in usable if t.id in set(test_ids)])
    _check_stress(train, s)
    trained = {el for f in train for el in f.species}
    unseen = sorted({el for f in test for el in f.species} - trained)
    log(
        f"chgnet finetune: {len(usable)} of {len(loaded)} trajectories have frames; "
        f"{len(train_ids)} structures ({len(train)} frames) to train on, {len(test_ids)} "
        f"({len(test)} frames) held out"
        + (f"; held-out elements never trained on: {', '.join(unseen)}" if unseen else "")
    )

    torch.manual_seed(s.seed)
    model = load_model(init)
    pretrained = evaluate_frames(model, test)
    if s.refit_reference:
        refit_reference(model, train)
    before = evaluate_frames(model, test)

    rng = np.random.default_rng(s.seed)
    order = rng.permutation(len(train))
    n_val = max(1, round(s.val_fraction * len(train))) if len(train) > 1 else 0
    val = [train[i] for i in order[:n_val]] or train
    fit = [train[i] for i in order[n_val:]]
    trainer = Trainer(
        model,
        targets="efs" if s.stress else "ef",
        force_loss_ratio=s.force_weight,
        stress_loss_ratio=s.stress_weight,
        epochs=s.epochs,
        learning_rate=s.lr,
        torch_seed=s.seed,
        use_device="cpu",
        print_freq=10**9,
    )
    save_dir = Path(workdir) / "trainer"
    with contextlib.redirect_stdout(sys.stderr):  # the trainer prints its progress
        trainer.train(
            _loader(fit, s, shuffle=True),
            _loader(val, s, shuffle=False),
            save_dir=str(save_dir),
            train_composition_model=False,
        )
    model = trainer.model
    model.eval()
    after = evaluate_frames(model, test)
    save_model(model, out)
    log(
        f"chgnet finetune: held-out force MAE {before['force_mae_eV_per_A']:.4f} -> "
        f"{after['force_mae_eV_per_A']:.4f} eV/A, energy MAE "
        f"{before['energy_mae_eV_per_atom']:.4f} -> {after['energy_mae_eV_per_atom']:.4f} "
        f"eV/atom ({s.epochs} epochs) -> {out}"
    )
    return {
        "held_out": {"before": before, "after": after, "pretrained_raw": pretrained},
        "structures": {"train": train_ids, "held_out": test_ids},
        "frames": {"train": len(fit), "validation": len(val), "held_out": len(test)},
        "unseen_elements": unseen,  # held out, never trained on: no reference energy
        "history": trainer.training_history,
        "settings": asdict(s),
        "init": None if init is None else str(init),
    }
