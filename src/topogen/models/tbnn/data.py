"""Training and validation sets of the p6 case: random step potentials and their exact bands
on the irreducible wedge with the symmetry labels at the high-symmetry points, in one
``.npz`` (written atomically). Sample i of a set with seed s is drawn from the generator
seeded (s, i), so a set is the same whatever the number of worker processes."""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from topogen.errors import TopogenError
from topogen.io.atomic import atomic_path
from topogen.models.tbnn.bhz import Supercell, mass_map, supercell_bands
from topogen.models.tbnn.exact import PlaneWaves
from topogen.models.tbnn.potentials import random_field, random_potential
from topogen.models.tbnn.settings import DataSettings
from topogen.models.tbnn.symmetry import LATTICES, wedge_grid
from topogen.runtime import Progress

__all__ = ["Dataset", "exact_energies", "make_dataset", "read_dataset", "solve"]


class Dataset(dict):
    """Arrays of a set: ``images (n, L, L)`` in units of vmax, ``energies (n, n_k, n_bands)``
    (E0), ``kpoints (n_k, 2)``, and per high-symmetry point P ``energies_P``/``labels_P``
    ``(n, n_bands)``; ``settings`` (a :class:`DataSettings`) and ``seed``."""

    @property
    def settings(self) -> DataSettings:
        return DataSettings(**self["settings"])

    @property
    def points(self) -> list[str]:
        return [k.removeprefix("labels_") for k in self if k.startswith("labels_")]


def solve(settings: DataSettings, images: np.ndarray, kpoints: np.ndarray) -> dict[str, Any]:
    """Exact bands and labels of images (step: potentials in units of vmax; bhz: mass
    maps, 1 where the second mass sits); bhz adds the Chern numbers."""
    lattice = LATTICES[settings.lattice]
    out: dict[str, list] = {"energies": []}
    if settings.kind == "bhz":
        for image in images:
            masses = mass_map(image, settings.masses)
            exact = supercell_bands(masses, kpoints, settings.n_bands, settings.chern_grid)
            for key, value in exact.items():
                out.setdefault(key, []).append(value)
        return {k: np.array(v) for k, v in out.items()}
    pw = PlaneWaves(lattice, settings.ecut)
    for image in images:
        bands = pw.bands(image * settings.vmax, kpoints, settings.n_bands)
        out["energies"].append(bands.energies)
        for name, labels in bands.labels.items():
            out.setdefault(f"labels_{name}", []).append(labels)
            out.setdefault(f"energies_{name}", []).append(bands.points[name])
    return {k: np.array(v) for k, v in out.items()}


def exact_energies(settings: DataSettings, image: np.ndarray, kpoints: np.ndarray) -> np.ndarray:
    """Lowest ``n_bands`` (n_k, n_bands) of one image at ``kpoints`` (e.g. a path)."""
    if settings.kind == "bhz":
        masses = mass_map(image, settings.masses)
        return np.linalg.eigvalsh(Supercell(masses).hamiltonian(kpoints))[:, : settings.n_bands]
    pw = PlaneWaves(LATTICES[settings.lattice], settings.ecut)
    return pw.bands(image * settings.vmax, kpoints, settings.n_bands).energies


def _chunk(args: tuple[DataSettings, int, list[int], np.ndarray]) -> dict[str, Any]:
    settings, seed, indices, kpoints = args
    lattice = LATTICES[settings.lattice]
    images = []
    for i in indices:
        rng = np.random.default_rng([seed, i])
        if settings.kind == "bhz":
            images.append((random_field(lattice, settings.size, rng) > 0).astype(float))
        else:
            images.append(random_potential(lattice, settings.size, rng, 1.0))
    images = np.array(images)
    return {"images": images, **solve(settings, images, kpoints)}


def make_dataset(
    settings: DataSettings,
    n: int,
    out: str | os.PathLike[str],
    *,
    seed: int = 0,
    wedge: int | None = None,
    threads: int = 1,
    log: Any = print,
) -> Dataset:
    """``n`` random potentials and their exact bands on the wedge grid of ``wedge`` (default
    the settings') intervals, written to ``out`` (``.npz``)."""
    if n < 1:
        raise TopogenError(f"a data set needs at least one sample, not {n}")
    lattice = LATTICES[settings.lattice]
    kpoints = wedge_grid(lattice, wedge or settings.wedge)
    chunks = [list(range(i, min(n, i + 25))) for i in range(0, n, 25)]
    progress = Progress(f"tbnn data {Path(out).name}", n)
    parts: list[dict[str, Any]] = []
    jobs = [(settings, seed, c, kpoints) for c in chunks]
    if threads <= 1:  # in this process
        for job in jobs:
            parts.append(_chunk(job))
            progress.update(sum(len(p["images"]) for p in parts))
        return _finish(parts, kpoints, settings, seed, out, log)
    # fresh workers with one BLAS thread each (a forked one keeps the parent's thread pool)
    saved = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = "1"
    try:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max(1, threads), mp_context=context) as pool:
            for part in pool.map(_chunk, jobs):
                parts.append(part)
                progress.update(sum(len(p["images"]) for p in parts))
    finally:
        if saved is None:
            os.environ.pop("OMP_NUM_THREADS")
        else:
            os.environ["OMP_NUM_THREADS"] = saved
    return _finish(parts, kpoints, settings, seed, out, log)


def _finish(
    parts: list[dict[str, Any]],
    kpoints: np.ndarray,
    settings: DataSettings,
    seed: int,
    out: str | os.PathLike[str],
    log: Any,
) -> Dataset:
    data = Dataset({k: np.concatenate([p[k] for p in parts]) for k in parts[0]})
    data["kpoints"] = kpoints
    data["settings"] = asdict(settings)
    data["seed"] = seed
    write_dataset(data, out)
    log(f"tbnn: {len(data['images'])} potentials x {len(kpoints)} k points -> {out}")
    return data


def write_dataset(data: Dataset, out: str | os.PathLike[str]) -> None:
    arrays = {k: v for k, v in data.items() if k != "settings"}
    with atomic_path(out) as part, open(part, "wb") as fh:
        np.savez_compressed(fh, settings=np.array(repr(data["settings"])), **arrays)


def read_dataset(path: str | os.PathLike[str]) -> Dataset:
    """A set written by :func:`make_dataset`; a clear error for anything else."""
    import ast

    try:
        with np.load(path, allow_pickle=False) as z:
            data = Dataset({k: z[k] for k in z.files})
        data["settings"] = ast.literal_eval(str(data["settings"]))
        data["settings"].pop("lattice", None)  # sets written before bhz: all p6 step
        DataSettings(**data["settings"])
        missing = {"images", "energies", "kpoints"} - set(data)
    except (OSError, ValueError, SyntaxError, TypeError, KeyError) as exc:
        raise TopogenError(f"{path}: not a tbnn data set ({exc})") from exc
    if missing or not data.points:
        raise TopogenError(f"{path}: not a tbnn data set (missing {sorted(missing) or 'labels'})")
    if not np.all(np.isfinite(data["energies"])):
        bad = np.flatnonzero(~np.isfinite(data["energies"]).all(axis=(1, 2)))
        raise TopogenError(f"{path}: non-finite band energies in samples {bad[:10].tolist()}")
    return data
