"""Batched CHGNet relaxation: lock-step FIRE over many small cells, one model call per step.

The stock route (``chgnet.model.StructOptimizer``: ASE FIRE + ``CHGNetCalculator``) relaxes one
structure at a time and pays for two backward passes with ``create_graph=True`` per step. Here
all active structures share one forward pass per step and one backward pass gives forces and
stress together, without ``create_graph``. Each structure keeps its own FIRE state (ASE's
defaults and update rule) and its own ASE cell filter (with a strain mask, so a slab keeps its
vacuum), so the trajectory is the one ASE would take with a ``CHGNetCalculator``. Finished
structures leave the batch and waiting ones take their place.

The default cell filter is ASE's ``UnitCellFilter``, not ``FrechetCellFilter``: for 2-12 atom
cells the latter's matrix logarithm/exponential (scipy ``logm``, ``expm_frechet``) cost more
than the batched model itself (measured: the whole relaxation 2.5x slower). Both reach the
same minimum within the force tolerance; ``cell_filter="frechet"`` selects the other.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import pickle
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from topogen.errors import TopogenError
from topogen.runtime import set_threads

# Voigt order xx yy zz yz xz xy: in-plane strains only, c (and the vacuum) kept.
SLAB_MASK = (1, 1, 0, 0, 0, 1)


@dataclass
class RelaxSettings:
    """The relaxation's knobs; their defaults are the screening funnel's."""

    fmax: float = 0.05  # eV/A: converged when the largest force is below this
    steps: int = 300  # FIRE steps at most
    batch_size: int = 32  # structures per CHGNet call
    cell_filter: str = "unit"  # "unit" (ASE UnitCellFilter) or "frechet"


@dataclass
class RelaxResult:
    """Outcome of one relaxation; ``error`` is set (and the rest may be None) on failure."""

    structure: Any  # pymatgen Structure (relaxed), or the last one reached
    energy_per_atom: float | None
    fmax: float | None  # largest force on the filter's degrees of freedom (eV/A)
    steps: int
    converged: bool
    error: str | None = None
    history: tuple[tuple[float, float], ...] = ()  # (eV/atom, fmax eV/A) per FIRE step


def load_model(path: str | os.PathLike[str] | None = None) -> Any:
    """CHGNet in eval mode: the pretrained one (weights ship with the package; offline), or
    the one saved at ``path`` by :func:`save_model` (a fine-tuned one). The one loader of
    the funnel's and the Stage III oracle's force field."""
    import torch
    from chgnet.model import CHGNet

    with contextlib.redirect_stdout(io.StringIO()):  # it prints its size even when quiet
        if path is None:
            model = CHGNet.load(verbose=False, use_device="cpu")
        else:
            try:
                state = torch.load(path, map_location="cpu", weights_only=True)
                model = CHGNet.from_dict(state)
            except (OSError, KeyError, RuntimeError, TypeError, pickle.UnpicklingError) as exc:
                raise TopogenError(f"{path}: not a CHGNet saved by topogen: {exc}") from None
    model.eval()
    return model


def save_model(model: Any, path: str | os.PathLike[str]) -> None:
    """Save a CHGNet's arguments and weights (``CHGNet.as_dict``) atomically, in a form
    that :func:`load_model` reads with ``torch.load(weights_only=True)``."""
    import torch

    from topogen.io.atomic import atomic_path

    with atomic_path(path) as tmp:
        torch.save(model.as_dict(), tmp)


class _Fire:
    """ASE's FIRE update rule (ase.optimize.FIRE, default parameters) for one structure."""

    def __init__(self, maxstep: float = 0.2, dt: float = 0.1, dtmax: float = 1.0) -> None:
        self.maxstep, self.dt, self.dtmax = maxstep, dt, dtmax
        self.nmin, self.finc, self.fdec = 5, 1.1, 0.5
        self.astart = self.a = 0.1
        self.fa = 0.99
        self.nsteps_since_reset = 0
        self.v: np.ndarray | None = None

    def step(self, r: np.ndarray, f: np.ndarray) -> np.ndarray:
        if self.v is None:
            self.v = np.zeros_like(r)
        else:
            vf = np.vdot(f, self.v)
            if vf > 0.0:
                self.v = (1.0 - self.a) * self.v + self.a * f / np.sqrt(np.vdot(f, f)) * np.sqrt(
                    np.vdot(self.v, self.v)
                )
                if self.nsteps_since_reset > self.nmin:
                    self.dt = min(self.dt * self.finc, self.dtmax)
                    self.a *= self.fa
                self.nsteps_since_reset += 1
            else:
                self.v[:] *= 0.0
                self.a = self.astart
                self.dt *= self.fdec
                self.nsteps_since_reset = 0
        self.v += self.dt * f
        dr = self.dt * self.v
        normdr = np.sqrt(np.vdot(dr, dr))
        if normdr > self.maxstep:
            dr = self.maxstep * dr / normdr
        return r + dr


@dataclass
class _Job:
    index: int
    atoms: Any
    filt: Any
    fire: _Fire
    steps: int = 0
    energy: float | None = None
    fmax: float | None = None
    history: list[tuple[float, float]] = field(default_factory=list)


def _to_structure(atoms: Any) -> Any:
    from pymatgen.core import Lattice, Structure

    return Structure(
        Lattice(np.array(atoms.cell.array)),
        atoms.get_chemical_symbols(),
        atoms.positions,
        coords_are_cartesian=True,
    )


def evaluate(
    model: Any, structures: Sequence[Any], *, stress: bool = True
) -> list[tuple[float, np.ndarray, np.ndarray | None]]:
    """Energy per atom (eV), forces (eV/A) and stress (3x3, eV/A^3, ASE sign) for each structure.

    One batched forward pass and one backward pass (no ``create_graph``) for all of them.
    Matches ``CHGNet.predict_structure(task="efs")`` to floating-point precision.
    ``stress=False`` skips the strain derivative (the stress is then None): forces only.
    """
    return evaluate_graphs(model, [model.graph_converter(s) for s in structures], stress=stress)


def evaluate_graphs(
    model: Any, graphs: Sequence[Any], *, stress: bool = True
) -> list[tuple[float, np.ndarray, np.ndarray | None]]:
    """:func:`evaluate` on CHGNet ``CrystalGraph`` objects already built (or re-used)."""
    import torch
    from chgnet.model.model import BatchedGraph

    comp = 0 if model.composition_model is None else model.composition_model(graphs)
    with torch.enable_grad(), warnings.catch_warnings():
        # chgnet turns grad-tracking volumes into a tensor
        warnings.filterwarnings("ignore", "Converting a tensor with requires_grad", UserWarning)
        batch = BatchedGraph.from_graphs(
            graphs,
            bond_basis_expansion=model.bond_basis_expansion,
            angle_basis_expansion=model.angle_basis_expansion,
            compute_stress=stress,
        )
        pred = model._compute(batch, compute_force=False, compute_stress=False)
        n_atoms = pred["atoms_per_graph"]
        e_atom = pred["e"]  # per atom when the model is intensive (CHGNet's is)
        total = (e_atom * n_atoms).sum() if model.is_intensive else e_atom.sum()
        wrt = [*batch.atom_positions, *(batch.strains if stress else ())]
        grads = torch.autograd.grad(total, wrt)
    n = len(graphs)
    e_atom = (e_atom if model.is_intensive else e_atom / n_atoms).detach() + comp
    out = []
    for i in range(n):
        forces = -grads[i].detach().numpy().astype(float)
        sigma = None
        if stress:
            sigma = grads[n + i].detach().numpy().astype(float) / float(batch.volumes[i])
        out.append((float(e_atom[i]), forces, sigma))
    return out


def _stress_voigt(s: np.ndarray) -> np.ndarray:
    return np.array([s[0, 0], s[1, 1], s[2, 2], s[1, 2], s[0, 2], s[0, 1]])


def relax_batch(
    structures: Sequence[Any],
    settings: RelaxSettings | None = None,
    *,
    model: Any = None,
    mask: Sequence[int] | None = SLAB_MASK,
    masks: Sequence[Sequence[int] | None] | None = None,
    relax_cell: bool = True,
    threads: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[RelaxResult]:
    """Relax every structure (pymatgen) with CHGNet and FIRE; results in input order.

    ``mask`` selects the cell strains that may relax (Voigt order; the default keeps c and the
    vacuum of a slab fixed; None relaxes the whole cell); ``masks`` gives one mask per
    structure instead (a batch that mixes slabs and bulk crystals); ``relax_cell=False``
    relaxes positions only; ``settings`` (:class:`RelaxSettings`) give the cell filter,
    ``fmax``, ``steps`` and ``batch_size``. Converged means the largest force on the
    filter's degrees of freedom (atoms and masked cell) is below ``fmax`` within ``steps``
    FIRE steps. A structure whose model call fails or whose energy, forces or stress become
    non-finite stops with ``error`` set; the others go on. ``batch_size`` structures share a
    model call; ``progress(done, total)`` is called as structures finish.
    """
    import torch
    from ase.calculators.singlepoint import SinglePointCalculator
    from ase.filters import FrechetCellFilter, UnitCellFilter
    from pymatgen.io.ase import AseAtomsAdaptor

    set_threads(threads)
    opts = settings or RelaxSettings()
    fmax, steps, batch_size, cell_filter = opts.fmax, opts.steps, opts.batch_size, opts.cell_filter
    model = model if model is not None else load_model()
    total = len(structures)
    if masks is not None and len(masks) != total:
        raise ValueError(f"relax_batch: {len(masks)} masks for {total} structures")
    results: list[RelaxResult | None] = [None] * total
    queue = list(range(total))[::-1]
    active: list[_Job] = []
    done = 0

    def finish(job: _Job, converged: bool, error: str | None = None) -> None:
        nonlocal done
        try:
            final = _to_structure(job.atoms)
        except Exception:  # non-finite coordinates: keep the input for the record
            final = structures[job.index]
        results[job.index] = RelaxResult(
            final,
            job.energy,
            job.fmax,
            job.steps,
            converged and error is None,
            error,
            tuple(job.history),
        )
        done += 1
        if progress is not None:
            progress(done, total)

    while queue or active:
        while queue and len(active) < batch_size:
            i = queue.pop()
            atoms = AseAtomsAdaptor.get_atoms(structures[i])
            atoms.pbc = True
            if relax_cell:
                cls = {"unit": UnitCellFilter, "frechet": FrechetCellFilter}[cell_filter]
                m = mask if masks is None else masks[i]
                filt = cls(atoms, mask=None if m is None else list(m))
            else:
                filt = atoms
            active.append(_Job(i, atoms, filt, _Fire()))
        try:
            with torch.enable_grad():
                preds = evaluate(model, [_to_structure(j.atoms) for j in active])
        except Exception:
            # Find the culprit(s) one by one so one bad structure cannot stop a batch.
            preds = []
            for j in active:
                try:
                    with torch.enable_grad():
                        preds.append(evaluate(model, [_to_structure(j.atoms)])[0])
                except Exception as exc:
                    preds.append(exc)
        still: list[_Job] = []
        for job, pred in zip(active, preds, strict=True):
            if isinstance(pred, Exception):
                finish(job, False, f"CHGNet failed: {type(pred).__name__}: {pred}"[:300])
                continue
            e_atom, forces, stress = pred
            job.energy = e_atom
            if not (math.isfinite(e_atom) and np.isfinite(forces).all()):
                finish(job, False, "non-finite energy or forces")
                continue
            if not np.isfinite(stress).all():
                finish(job, False, "non-finite stress")
                continue
            n = len(job.atoms)
            job.atoms.calc = SinglePointCalculator(
                job.atoms, energy=e_atom * n, forces=forces, stress=_stress_voigt(stress)
            )
            f = job.filt.get_forces()
            job.fmax = float(np.sqrt((f**2).sum(axis=1).max()))
            job.history.append((float(e_atom), job.fmax))
            if job.fmax < fmax:
                finish(job, True)
                continue
            if job.steps >= steps:
                finish(job, False)
                continue
            job.filt.set_positions(job.fire.step(job.filt.get_positions(), f))
            job.steps += 1
            still.append(job)
        active = still
    return [r for r in results if r is not None]
