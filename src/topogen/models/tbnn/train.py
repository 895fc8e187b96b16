"""Train the tight-binding network on a data set (:mod:`.data`) with the house's resumable
Trainer; ``model.ckpt`` holds weights and hyper-parameters (read with ``weights_only``)."""

from __future__ import annotations

import os
import pickle
from dataclasses import asdict
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch

from topogen.errors import TopogenError
from topogen.models.tbnn.data import Dataset
from topogen.models.tbnn.network import TBNN, sector_targets
from topogen.models.tbnn.settings import NetworkSettings
from topogen.models.training import fingerprint, make_trainer, quiet_lightning, resume_path
from topogen.runtime import accelerator_devices, set_threads

__all__ = ["FINAL", "load_tbnn", "tensors", "train_tbnn"]

FINAL = "model.ckpt"


class _Rows(torch.utils.data.Dataset):
    def __init__(self, arrays: dict[str, torch.Tensor]) -> None:
        self.arrays = arrays

    def __len__(self) -> int:
        return len(self.arrays["images"])

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {k: v[i] for k, v in self.arrays.items()}


def tensors(model: TBNN, data: Dataset) -> dict[str, torch.Tensor]:
    """The batch arrays of a data set for ``model`` (energies in units of vmax)."""
    vmax = float(data.settings.vmax)
    out = {
        "images": torch.as_tensor(data["images"], dtype=torch.float32),
        "energies": torch.as_tensor(data["energies"] / vmax),
    }
    for point in data.points:
        blocks = sector_targets(model.tb, point, data[f"energies_{point}"], data[f"labels_{point}"])
        for j, target in blocks.items():
            out[f"block_{point}_{j}"] = torch.as_tensor(target / vmax)
    return out


def train_tbnn(
    data: Dataset,
    outdir: str | os.PathLike[str],
    settings: NetworkSettings | None = None,
    *,
    val_fraction: float = 0.1,
    threads: int | None = None,
    gpus: str | int | None = None,
    log: Any = print,
) -> TBNN:
    """Train on ``data`` (a random ``val_fraction`` held out for the validation curve);
    writes ``<outdir>/model.ckpt``; resumes an interrupted run in ``outdir``."""
    settings = settings or NetworkSettings()
    set_threads(threads)
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    L.seed_everything(settings.seed, verbose=False)
    ds = data.settings
    model = TBNN(
        ds.lattice,
        ds.size,
        ds.n_bands,
        ds.vmax,
        data["kpoints"].tolist(),
        time_reversal=ds.kind == "step",
        epochs=settings.epochs,
        **settings.hparams(),
    )
    arrays = tensors(model, data)
    model.start_at(float(arrays["energies"].mean()))
    n = len(arrays["images"])
    order = np.random.default_rng(settings.seed).permutation(n)
    n_val = round(val_fraction * n) if n > 1 else 0
    val, train = order[:n_val], order[n_val:]
    loaders = [
        torch.utils.data.DataLoader(
            _Rows({k: v[idx] for k, v in arrays.items()}),
            batch_size=settings.batch_size,
            shuffle=shuffle,
        )
        for idx, shuffle in ((train, True), (val, False))
    ]
    log(
        f"tbnn: {len(train)} training / {len(val)} validation potentials, "
        f"{len(data['kpoints'])} k points, TB model {model.tb.n_orbitals} orbitals "
        f"({settings.orbitals}), {model.tb.n_params} parameters, {settings.epochs} epochs"
    )
    run = {k: v for k, v in asdict(settings).items() if k != "epochs"}
    stamp = fingerprint(model, arrays, settings=run, val_fraction=val_fraction)
    ckpt = resume_path(outdir, stamp, settings.epochs, log)
    accelerator, devices = accelerator_devices(gpus)
    with quiet_lightning():
        trainer = make_trainer(
            outdir, settings.epochs, accelerator=accelerator, devices=devices, progress="tbnn"
        )
        trainer.fit(model, loaders[0], loaders[1] if n_val else None, ckpt_path=ckpt)
        trainer.save_checkpoint(outdir / FINAL, weights_only=True)
    return model.eval()


def load_tbnn(path: str | os.PathLike[str], map_location: Any = "cpu") -> TBNN:
    """A trained :class:`TBNN` from a ``.ckpt`` (read with ``weights_only=True``)."""
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
        model = TBNN(**ckpt["hyper_parameters"])
        model.load_state_dict(ckpt["state_dict"])
    except (OSError, RuntimeError, KeyError, TypeError, ValueError, EOFError,
            pickle.UnpicklingError) as exc:  # fmt: skip
        raise TopogenError(f"{path}: not a tbnn checkpoint ({exc})") from exc
    return model.eval()
