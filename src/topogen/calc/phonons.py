"""Harmonic phonons with phonopy and CHGNet forces: dynamical stability and the phonon DOS.

The route is matcalc's ``PhononCalc`` (finite displacements with phonopy, forces from an ML
potential, force constants, frequencies on a q mesh), with changes that make it cheaper:

* forces only: one forward and ONE backward pass per displaced supercell, without
  ``create_graph`` and without stress or magnetic moments (CHGNet's ASE calculator asks for
  all of them and differentiates twice). Same forces to ~1e-5 eV/A;
* the neighbour topology of the undisplaced supercell is re-used for every displacement
  (only the coordinates change) unless the displaced atom has a neighbour within
  ``displacement`` of one of CHGNet's two graph cutoffs, where the graph could change: then
  the graph is built afresh. Identical forces; saves the graph construction (~15% of a
  force call for a 100-200 atom supercell);
* symmetry found with a tolerance of ``symprec`` = 0.01 A (phonopy's default is 1e-5 A):
  a relaxed candidate is symmetric only to within its force tolerance, and at 1e-5 A it
  is often P1 and needs 6 displacements per atom. Where some displacement has no opposite
  partner, the forces of the undisplaced supercell (one more call) are subtracted from
  every set (phonopy's ``--fz``), so residual forces of an approximately relaxed structure
  do not enter the force constants (without this, a structure relaxed to 0.05 eV/A can
  show spurious imaginary modes of ~2 THz);
* the force constants are symmetrised (phonopy's ``symmetrize_force_constants``:
  translational invariance, i.e. the acoustic sum rule, and index permutation), so the
  acoustic modes at Gamma are at zero and not an artefact of the finite displacements;
* an optional pre-screen (slabs; off by default): the phonons of a small ``prescreen`` x
  ``prescreen`` x 1 supercell (3x3x1: a quarter of the default 6x6x1's atoms and cost) on
  its own commensurate q points, which are points of the final 18 x 18 mesh too. When it
  shows an imaginary mode more than ``prescreen_margin`` (0.5 THz) beyond the tolerance,
  the structure is called unstable and the full calculation is skipped; otherwise the full
  one runs and its result stands alone. A structure stopped there gets its numbers
  (minimum frequency, stability score, imaginary fraction, DOS) on the full mesh from the
  small supercell's force constants (``supercell`` 3x3x1, ``prescreened`` True). Why it is
  off by default: in the harmonic limit the frequencies at those q points do not depend on
  the supercell, but CHGNet's energy surface is not harmonic on the scale of the 0.01 A
  displacements (a self force constant of W in a 6x6x1 supercell of 2H-WSe2: 7.6 eV/A^2
  from +-0.01 A, 7.3 from +-0.02 A, 8.5 from the exact Hessian), and the two supercells disagree
  by up to ~1 THz (``bench/phonon_prescreen.py`` on 60 relaxed library monolayers: median
  0.002 THz, but 2H-CrTeSe has a mode at +0.10 THz on 6x6x1 and -0.82 THz on 3x3x1). No
  verdict changed there (0 of 24 stopped structures were stable), yet nothing guarantees
  it, and on that set it saved 5% of the phonon time (the stable structures, which pay for
  both runs, dominate); on the 12 of ``bench/screening.py`` (9 unstable) it saves a third;
* ``batch_size`` displaced supercells may share a model call (1 by default: measured no
  faster on 2 CPU cores, and ~1 GB more memory per 100-atom supercell);
  :func:`phonons_batch` can spread structures over worker processes.

Defaults
    2D (a slab: :func:`topogen.structure.slabs.is_2d`): supercell ``n x n x 1`` with
    ``n = max(6, ceil(18 A / |a_i|))`` along each in-plane axis. 4x4x1 gives spurious small
    imaginary flexural (ZA) frequencies near Gamma for MoS2 with CHGNet (-0.14 THz); 6x6x1
    does not. q mesh 18 x 18 x 1, Gamma-centred (contains Gamma, M and K of a hexagonal cell).
    3D: each axis repeated until it is at least 10 A long, at least twice (matcalc: 2x2x2);
    q mesh 10 x 10 x 10. Displacement 0.01 A (matcalc: 0.015 A).

Dynamical stability and the stability score: :mod:`topogen.calc.stability` (the acoustic
modes alone get an allowance near Gamma).
"""

from __future__ import annotations

import contextlib
import io
import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np

from topogen.brillouin import KPath, path_2d
from topogen.calc.relax import evaluate_graphs, load_model
from topogen.calc.stability import (  # noqa: F401  (re-exported: the phonons' criterion)
    GAMMA_RADIUS,
    GAMMA_TOL,
    TOL,
    Dos,
    Stability,
    acoustic_modes,
    analyse,
    stability,
)
from topogen.runtime import set_threads
from topogen.structure.slabs import is_2d

DISPLACEMENT = 0.01  # Angstrom
MIN_REPEAT_2D = 6
MIN_LENGTH_2D = 18.0  # Angstrom
MIN_LENGTH_3D = 10.0  # Angstrom
MESH_2D = (18, 18, 1)
MESH_3D = (10, 10, 10)
SYMPREC = 0.01  # Angstrom; phonopy's symmetry tolerance (phonopy's own default: 1e-5)
PRESCREEN = 0  # in-plane repeat of a slab's pre-screen supercell (0: none)
PRESCREEN_REPEAT = 3  # the pre-screen supercell's repeat where one is asked for
PRESCREEN_MARGIN = 0.5  # THz beyond the tolerance: the pre-screen's "clearly unstable"


@dataclass
class PhononResult:
    """One structure's phonons; ``error`` is set (and the rest may be empty) on failure."""

    supercell: tuple[int, int, int]
    n_displacements: int = 0
    n_evaluations: int = 0  # CHGNet calls: displacements (+1 for residual forces)
    stable: bool | None = None
    score: float | None = None
    min_frequency: float | None = None  # THz
    min_frequency_off_gamma: float | None = None
    imaginary_fraction: float | None = None
    worst_q: tuple[float, float, float] | None = None
    dos_frequencies: np.ndarray = field(default_factory=lambda: np.zeros(0))  # THz
    dos: np.ndarray = field(default_factory=lambda: np.zeros(0))  # states / THz / cell
    band_path: KPath | None = None  # with dispersion=True: the path of band_frequencies
    band_frequencies: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))  # THz
    rebuilt_graphs: int = 0  # displacements whose graph had to be built afresh
    prescreened: bool = False  # stopped at the small pre-screen supercell (module docstring)
    seconds: float = 0.0
    error: str | None = None

    def reason(self) -> str:
        """One line for a funnel table."""
        if self.error:
            return self.error
        if self.stable:
            return f"stable (min {self.min_frequency:.3f} THz)"
        q = ", ".join(f"{v:.2f}" for v in self.worst_q or ())
        note = f" ({'x'.join(map(str, self.supercell))} pre-screen)" if self.prescreened else ""
        return (
            f"imaginary modes: min {self.min_frequency:.2f} THz, worst at q=({q}), "
            f"{100 * (self.imaginary_fraction or 0):.1f}% of modes{note}"
        )


def default_supercell(
    structure: Any,
    two_d: bool | None = None,
    *,
    min_repeat_2d: int = MIN_REPEAT_2D,
    min_length_2d: float = MIN_LENGTH_2D,
    min_length_3d: float = MIN_LENGTH_3D,
) -> tuple[int, int, int]:
    """Diagonal supercell: see the module docstring. ``two_d=None`` detects slabs."""
    two_d = is_2d(structure) if two_d is None else two_d
    abc = structure.lattice.abc
    if two_d:
        n = [max(min_repeat_2d, math.ceil(min_length_2d / x)) for x in abc[:2]]
        return n[0], n[1], 1
    n3 = [max(2, math.ceil(min_length_3d / x)) for x in abc]
    return n3[0], n3[1], n3[2]


def _pmg(cell: Any) -> Any:
    from pymatgen.core import Lattice, Structure

    return Structure(Lattice(np.array(cell.cell)), list(cell.symbols), cell.scaled_positions)


@dataclass
class _Borderline:
    """Neighbour pairs of a structure whose distance is within ``delta`` of a graph cutoff."""

    i: np.ndarray
    j: np.ndarray
    images: np.ndarray
    distances: np.ndarray

    @property
    def atoms(self) -> set[int]:
        return {int(x) for x in np.concatenate([self.i, self.j])}


def _borderline_pairs(structure: Any, cutoffs: Sequence[float], delta: float) -> _Borderline:
    r = max(cutoffs) + delta
    i, j, images, d = structure.get_neighbor_list(r, numerical_tol=1e-8)
    near = np.zeros(len(d), dtype=bool)
    for rc in cutoffs:
        near |= np.abs(d - rc) <= delta
    near &= i != j  # an atom and its own image keep their distance
    return _Borderline(i[near], j[near], np.asarray(images)[near], d[near])


def _borderline_atoms(structure: Any, cutoffs: Sequence[float], delta: float) -> set[int]:
    """Atoms with a neighbour within ``delta`` of any cutoff: moving them by up to ``delta``
    could add or remove a graph edge."""
    return _borderline_pairs(structure, cutoffs, delta).atoms


def _topology_changes(
    structure: Any, pairs: _Borderline, atom: int, vec: np.ndarray, cutoffs: Sequence[float]
) -> bool:
    """Would moving ``atom`` by ``vec`` take one of its borderline pairs across a cutoff (or
    within 1e-6 A of one, where the graph builder's own tolerances decide)? Also True when
    the recomputed reference distance disagrees with pymatgen's (then nothing is assumed)."""
    mine = (pairs.i == atom) | (pairs.j == atom)
    if not mine.any():
        return False
    cart = np.asarray(structure.cart_coords, dtype=float)
    lat = np.asarray(structure.lattice.matrix, dtype=float)
    i, j = pairs.i[mine], pairs.j[mine]
    offset = pairs.images[mine] @ lat
    before = cart[j] + offset - cart[i]
    if np.abs(np.linalg.norm(before, axis=1) - pairs.distances[mine]).max() > 1e-6:
        return True
    shift = np.where((j == atom)[:, None], vec, 0.0) - np.where((i == atom)[:, None], vec, 0.0)
    d0 = pairs.distances[mine]
    d1 = np.linalg.norm(before + shift, axis=1)
    for rc in cutoffs:
        if (np.abs(d1 - rc) < 1e-6).any() or ((d0 <= rc) != (d1 <= rc)).any():
            return True
    return False


def _moved_graph(graph: Any, frac: np.ndarray) -> Any:
    """A copy of a CHGNet CrystalGraph with new fractional coordinates (same topology)."""
    import torch
    from chgnet.graph.crystalgraph import CrystalGraph

    return CrystalGraph(
        atomic_number=graph.atomic_number,
        atom_frac_coord=torch.tensor(frac, dtype=torch.float32, requires_grad=True),
        atom_graph=graph.atom_graph,
        atom_graph_cutoff=graph.atom_graph_cutoff,
        neighbor_image=graph.neighbor_image,
        directed2undirected=graph.directed2undirected,
        undirected2directed=graph.undirected2directed,
        bond_graph=graph.bond_graph,
        bond_graph_cutoff=graph.bond_graph_cutoff,
        lattice=graph.lattice,
        graph_id=graph.graph_id,
        composition=graph.composition,
    )


def displaced_graphs(
    model: Any,
    supercell: Any,
    displacements: Sequence[tuple[int, np.ndarray]],
    *,
    reuse_topology: bool = True,
) -> tuple[list[Any], int]:
    """CHGNet graphs of ``supercell`` (pymatgen) with one atom moved per displacement
    ``(atom index, Cartesian vector)``; returns (graphs, number built afresh).

    With ``reuse_topology`` the undisplaced supercell's graph is built once and copied with
    new coordinates, unless the move takes a pair of atoms across one of CHGNet's cutoffs
    (atom graph 6 A, bond graph 3 A): then that displacement's graph is built afresh.
    """
    graphs, fresh, _ = _displaced_graphs(
        model, supercell, displacements, reuse_topology=reuse_topology
    )
    return graphs, fresh


def _displaced_graphs(
    model: Any,
    supercell: Any,
    displacements: Sequence[tuple[int, np.ndarray]],
    *,
    reuse_topology: bool = True,
) -> tuple[list[Any], int, Any]:
    """:func:`displaced_graphs`, plus the undisplaced supercell's graph when it was built."""
    from pymatgen.core import Structure

    frac0 = np.array(supercell.frac_coords, dtype=float)
    inv = np.linalg.inv(supercell.lattice.matrix)
    conv = model.graph_converter
    cutoffs = (float(conv.atom_graph_cutoff), float(conv.bond_graph_cutoff))
    ref = None
    pairs = None
    if reuse_topology and displacements:
        ref = conv(supercell)
        delta = max(float(np.linalg.norm(v)) for _, v in displacements) + 1e-6
        pairs = _borderline_pairs(supercell, cutoffs, delta)
    graphs, fresh = [], 0
    for atom, vec in displacements:
        vec = np.asarray(vec, dtype=float)
        frac = frac0.copy()
        frac[atom] += vec @ inv
        if (
            ref is not None
            and pairs is not None
            and not _topology_changes(supercell, pairs, atom, vec, cutoffs)
        ):
            graphs.append(_moved_graph(ref, frac))
        else:
            graphs.append(conv(Structure(supercell.lattice, supercell.species, frac)))
            fresh += 1
    return graphs, fresh, ref


def _phonopy(
    structure: Any, supercell: Sequence[int], displacement: float, symprec: float = 1e-5
) -> Any:
    from phonopy import Phonopy
    from phonopy.structure.atoms import PhonopyAtoms

    unit = PhonopyAtoms(
        symbols=[site.specie.symbol for site in structure],
        cell=np.array(structure.lattice.matrix),
        scaled_positions=np.array(structure.frac_coords),
    )
    with warnings.catch_warnings():  # "auto" found a smaller primitive cell: intended
        warnings.filterwarnings("ignore", "primitive_matrix defaulted")
        # lang="C": phonopy 4's default Rust backend keeps a thread pool that does not
        # survive a fork, so worker processes forked after the parent used it hang
        ph = Phonopy(
            unit,
            supercell_matrix=np.diag(supercell),
            primitive_matrix="auto",
            symprec=symprec,
            lang="C",
        )
    ph.generate_displacements(distance=displacement)
    return ph


def _unpaired(displacements: Sequence[tuple[int, np.ndarray]]) -> bool:
    """True when some displacement has no opposite partner (then residual forces of the
    undisplaced supercell would not cancel and must be subtracted)."""
    keys = {(a, tuple(np.round(v, 8))) for a, v in displacements}
    return any((a, tuple(np.round(-v, 8))) not in keys for a, v in displacements)


def phonons(
    structure: Any,
    *,
    model: Any = None,
    supercell: Sequence[int] | None = None,
    displacement: float = DISPLACEMENT,
    mesh: Sequence[int] | None = None,
    tol: float = TOL,
    gamma_tol: float = GAMMA_TOL,
    gamma_radius: float = GAMMA_RADIUS,
    two_d: bool | None = None,
    min_repeat_2d: int = MIN_REPEAT_2D,
    symprec: float = SYMPREC,
    reuse_topology: bool = True,
    prescreen: int = PRESCREEN,
    prescreen_margin: float = PRESCREEN_MARGIN,
    batch_size: int = 1,
    dos: Dos = True,
    dispersion: bool = False,
) -> PhononResult:
    """Phonons of one relaxed structure (pymatgen) with CHGNet forces; raises on failure.

    ``supercell`` (diagonal) and ``mesh`` default as in the module docstring (``min_repeat_2d``
    sets the smallest in-plane repeat of a slab); ``two_d=None`` detects slabs; a slab with
    the default supercell and mesh is pre-screened on a ``prescreen`` x ``prescreen`` x 1
    supercell (module docstring; 0: not). See :func:`phonons_batch` for the version that
    catches errors.
    """
    t0 = time.perf_counter()
    model = model if model is not None else load_model()
    two_d = is_2d(structure) if two_d is None else two_d
    sc = (
        tuple(supercell)
        if supercell is not None
        else default_supercell(structure, two_d, min_repeat_2d=min_repeat_2d)
    )
    mesh = tuple(mesh) if mesh is not None else (MESH_2D if two_d else MESH_3D)
    run = partial(
        _phonons_at,
        structure,
        model,
        displacement=displacement,
        tol=tol,
        gamma_tol=gamma_tol,
        gamma_radius=gamma_radius,
        symprec=symprec,
        reuse_topology=reuse_topology,
        batch_size=batch_size,
    )
    small = (prescreen, prescreen, 1)
    pre = None
    if (
        two_d
        and supercell is None
        and not dispersion
        and 0 < prescreen < min(sc[0], sc[1])
        and all(m % prescreen == 0 for m in mesh[:2])  # its q points are on the mesh
    ):
        pre, stab, small_ph = run(small, small, dos=False)
        if stab.excess >= prescreen_margin:
            # the numbers on the full mesh, interpolated from the small supercell's force
            # constants (exact at its own q points, so the verdict stays "unstable")
            stab, pre.dos_frequencies, pre.dos = analyse(
                small_ph, mesh, tol=tol, gamma_tol=gamma_tol, gamma_radius=gamma_radius, dos=dos
            )
            _set_stability(pre, stab)
            pre.prescreened = True
            pre.seconds = time.perf_counter() - t0
            return pre
    result, _, _ = run(sc, mesh, dos=dos, dispersion=dispersion)
    if pre is not None:
        result.n_evaluations += pre.n_evaluations
    result.seconds = time.perf_counter() - t0
    return result


def _phonons_at(
    structure: Any,
    model: Any,
    sc: tuple[int, int, int],
    mesh: Sequence[int],
    *,
    displacement: float = DISPLACEMENT,
    tol: float = TOL,
    gamma_tol: float = GAMMA_TOL,
    gamma_radius: float = GAMMA_RADIUS,
    symprec: float = SYMPREC,
    reuse_topology: bool = True,
    batch_size: int = 1,
    dos: Dos = True,
    dispersion: bool = False,
) -> tuple[PhononResult, Stability, Any]:
    """:func:`phonons` on one supercell and q mesh (no pre-screen); also the stability and
    the phonopy object (force constants set)."""
    with contextlib.redirect_stdout(io.StringIO()):
        ph = _phonopy(structure, sc, displacement, symprec)
    disps = [(int(d["number"]), np.asarray(d["displacement"])) for d in ph.dataset["first_atoms"]]
    supercell_s = _pmg(ph.supercell)
    graphs, fresh, reference = _displaced_graphs(
        model, supercell_s, disps, reuse_topology=reuse_topology
    )
    residual = _unpaired(disps)
    if residual:  # forces of the undisplaced supercell, subtracted below (phonopy's --fz)
        graphs.append(reference if reference is not None else model.graph_converter(supercell_s))
    forces = []
    for k in range(0, len(graphs), max(1, batch_size)):
        for _, f, _ in evaluate_graphs(model, graphs[k : k + batch_size], stress=False):
            if not np.isfinite(f).all():
                raise FloatingPointError("non-finite CHGNet forces in a displaced supercell")
            forces.append(f)
    sets = np.array(forces[: len(disps)])
    if residual:
        sets = sets - forces[-1]
    ph.forces = sets
    with contextlib.redirect_stdout(io.StringIO()):
        ph.produce_force_constants(show_drift=False)
        ph.symmetrize_force_constants(show_drift=False)  # acoustic sum rule
    stab, freq, dens = analyse(
        ph, mesh, tol=tol, gamma_tol=gamma_tol, gamma_radius=gamma_radius, dos=dos
    )
    path, bands = None, np.zeros((0, 0))
    if dispersion:
        path = path_2d(ph.primitive.cell)
        ph.run_qpoints(path.kpoints)
        bands = np.asarray(ph.get_qpoints_dict()["frequencies"])
    result = PhononResult(
        supercell=(int(sc[0]), int(sc[1]), int(sc[2])),
        band_path=path,
        band_frequencies=bands,
        n_displacements=len(disps),
        n_evaluations=len(graphs),
        dos_frequencies=freq,
        dos=dens,
        rebuilt_graphs=fresh if reuse_topology else len(disps),
    )
    _set_stability(result, stab)
    return result, stab, ph


def _set_stability(result: PhononResult, stab: Stability) -> None:
    result.stable, result.score = stab.stable, stab.score
    result.min_frequency = stab.min_frequency
    result.min_frequency_off_gamma = stab.min_frequency_off_gamma
    result.imaginary_fraction, result.worst_q = stab.imaginary_fraction, stab.worst_q


def _one(model: Any, job: tuple[Any, dict[str, Any]]) -> PhononResult:
    structure, options = job
    try:
        return phonons(structure, model=model, **options)
    except Exception as exc:  # one bad structure must not stop a chunk
        sc = options.get("supercell") or (0, 0, 0)
        msg = " ".join(f"phonons failed: {type(exc).__name__}: {exc}".split())
        return PhononResult(supercell=tuple(sc), error=msg[:300])


def phonons_batch(
    structures: Sequence[Any],
    *,
    model: Any = None,
    threads: int | None = None,
    workers: int = 1,
    progress: Callable[[int, int], None] | None = None,
    **options: Any,
) -> list[PhononResult]:
    """:func:`phonons` for each structure, in order; a structure that makes CHGNet or
    phonopy raise gets a result with ``error`` set and the others go on. ``options`` are
    :func:`phonons`'s keyword arguments. ``workers`` > 1 spreads the structures over that
    many processes of ``threads // workers`` threads (:mod:`topogen.calc.workers`)."""
    from topogen.calc.workers import map_with_model

    set_threads(threads)
    model = model if model is not None else load_model()
    per_worker = max(1, (threads or workers) // max(workers, 1))
    cost = [float(len(s)) ** 2 for s in structures]  # displacements x supercell size
    return map_with_model(
        _one,
        [(s, options) for s in structures],
        model=model,
        workers=workers,
        threads=per_worker,
        cost=cost,
        progress=progress,
    )
