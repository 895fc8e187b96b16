"""An offline library of 2D crystals: textbook prototypes, decorated, relaxed with CHGNet.

Candidates are built from scratch (pymatgen) with starting lattice constants from covalent
radii: 2H-, 1T- and 1T'-MX2, Janus 2H-/1T-MXY, buckled honeycombs (graphene ... bismuthene),
hexagonal AB binaries (hBN, SiC, GaN, ZnO ...), MXene-like M2X, chair-functionalised
honeycombs (SnF, GeI, BiH ...), GaS-type MX and puckered (phosphorene-like) layers. Every cell
has c perpendicular to the layer and at least :data:`VACUUM` of vacuum.

:func:`build_library` relaxes them with CHGNet (atoms and in-plane cell; c and the vacuum kept),
rejects the ones that fall apart or leave their prototype (the reasons go to the rejected
list), and drops duplicates. :func:`labels_for` attaches literature topology labels from
``resources/topo2d_labels.csv`` (the spin-Chern criterion of :mod:`topogen.io.labels`) by
(reduced formula, prototype), or by formula and space group for records of other sources.
"""

from __future__ import annotations

import math
import os
import re
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

import numpy as np

from topogen.calc.relax import RelaxSettings
from topogen.data.layer_checks import (
    MIN_DISTANCE,
    covalent_radius,
    relaxed_problem,
    space_group,
)
from topogen.io.labels import LABELS_FILE, LabelError, LiteratureLabel, read_literature
from topogen.io.quarantine import Rejected
from topogen.io.tables import Record
from topogen.runtime import set_threads
from topogen.structure.sanity import structure_problem
from topogen.structure.slabs import layer_thickness, slab

SOURCE = "prototypes"

# Element families used by the prototypes.
MX2_METALS = ("Mo", "W", "Ti", "Zr", "Hf", "Nb", "Ta", "V", "Cr", "Pt", "Pd", "Sn")
CHALCOGENS = ("S", "Se", "Te")
HONEYCOMB = ("C", "Si", "Ge", "Sn", "Pb", "P", "As", "Sb", "Bi")
AB_PAIRS = (
    ("B", "N"), ("Al", "N"), ("Ga", "N"), ("In", "N"),
    ("B", "P"), ("Al", "P"), ("Ga", "P"), ("In", "P"),
    ("B", "As"), ("Al", "As"), ("Ga", "As"), ("In", "As"),
    ("B", "Sb"), ("Al", "Sb"), ("Ga", "Sb"), ("In", "Sb"),
    ("Si", "C"), ("Ge", "C"), ("Sn", "C"), ("Si", "Ge"), ("Si", "Sn"), ("Ge", "Sn"),
    ("Be", "O"), ("Mg", "O"), ("Zn", "O"), ("Cd", "O"),
    ("Zn", "S"), ("Zn", "Se"), ("Zn", "Te"), ("Cd", "S"), ("Cd", "Se"), ("Cd", "Te"),
)  # fmt: skip
MXENE_METALS = ("Ti", "Zr", "Hf", "V", "Nb", "Ta", "Cr", "Mo")
DECORATED_HOSTS = ("Si", "Ge", "Sn", "Pb", "As", "Sb", "Bi")
DECORATIONS = ("H", "F", "Cl", "Br", "I")
GROUP_V = ("N", "P", "As", "Sb", "Bi")
FIRST_ROW = ("B", "C", "N", "O")


def _bond(a: str, b: str, scale: float = 1.0) -> float:
    return scale * (covalent_radius(a) + covalent_radius(b))


def _mx_bond(m: str, x: str) -> float:
    """Starting M-X bond: covalent radii overestimate early transition metals' bonds."""
    return _bond(m, x, 1.0 if m in ("Sn", "Pt", "Pd") else 0.93)


@dataclass
class Candidate:
    """One starting structure: its id, prototype, the substitution that made it, the cell."""

    id: str
    prototype: str
    substitution: dict[str, str]
    structure: Any  # pymatgen Structure
    properties: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        return {
            "prototype": self.prototype,
            "substitution": ",".join(f"{k}={v}" for k, v in self.substitution.items()),
            "dim": 2,
            **self.properties,
        }


def _hex(a: float) -> tuple[list[float], list[float]]:
    return [a, 0.0], [-a / 2, a * math.sqrt(3) / 2]


# --- prototypes ---------------------------------------------------------------------------


def mx2_2h(m: str, x: str, y: str | None = None) -> Any:
    """Trigonal prismatic MX2 (2H, MoS2-type); Janus MXY when ``y`` is given (Y below)."""
    y = y or x
    dx, dy = _mx_bond(m, x), _mx_bond(m, y)
    a = (dx + dy) / 2 * math.sqrt(12 / 7)  # ideal prism: X-X height equals a
    hx = math.sqrt(max(dx**2 - a**2 / 3, 0.5))
    hy = math.sqrt(max(dy**2 - a**2 / 3, 0.5))
    return slab(*_hex(a), [m, x, y], [[1 / 3, 2 / 3], [2 / 3, 1 / 3], [2 / 3, 1 / 3]], [0, hx, -hy])


def mx2_1t(m: str, x: str, y: str | None = None) -> Any:
    """Octahedral MX2 (1T, CdI2-type); Janus MXY when ``y`` is given (Y below)."""
    y = y or x
    dx, dy = _mx_bond(m, x), _mx_bond(m, y)
    a = (dx + dy) / 2 * math.sqrt(2)  # ideal octahedron
    hx = math.sqrt(max(dx**2 - a**2 / 3, 0.5))
    hy = math.sqrt(max(dy**2 - a**2 / 3, 0.5))
    return slab(*_hex(a), [m, x, y], [[0, 0], [1 / 3, 2 / 3], [2 / 3, 1 / 3]], [0, hx, -hy])


def mx2_1tp(m: str, x: str, shift: float = 0.04) -> Any:
    """Distorted octahedral MX2 (1T', WTe2-type): the 1T cell made rectangular (a x sqrt3 a),
    with the metal atoms paired into zigzag chains along a (``shift`` of b each)."""
    d = _mx_bond(m, x)
    a = d * math.sqrt(2)
    h = math.sqrt(d**2 - a**2 / 3)
    species = [m, m, x, x, x, x]
    frac = [[0, shift], [0.5, 0.5 - shift], [0, 1 / 3], [0.5, 5 / 6], [0.5, 1 / 6], [0, 2 / 3]]
    z = [0, 0, h, h, -h, -h]
    return slab([a, 0], [0, a * math.sqrt(3)], species, frac, z)


def honeycomb(a_el: str, b_el: str | None = None, buckling: float | None = None) -> Any:
    """Buckled (or planar) honeycomb: graphene, silicene ... bismuthene; hBN-type AB when two
    elements are given. ``buckling`` is the height difference as a fraction of the bond."""
    b_el = b_el or a_el
    d = _bond(a_el, b_el)
    if buckling is None:
        if a_el in FIRST_ROW or b_el in FIRST_ROW:
            buckling = 0.0  # sp2, planar
        elif a_el == b_el and a_el in GROUP_V:
            buckling = 0.55  # blue phosphorene, arsenene, antimonene, bismuthene
        else:
            buckling = 0.2  # low-buckled (silicene, germanene, stanene, GaAs ...)
    h = buckling * d
    a = math.sqrt(3 * (d**2 - h**2))
    return slab(*_hex(a), [a_el, b_el], [[1 / 3, 2 / 3], [2 / 3, 1 / 3]], [h / 2, -h / 2])


def mxene(m: str, x: str) -> Any:
    """MXene-like M2X (Ti2C-type): X in octahedral holes between two M planes."""
    d = _bond(m, x, 0.9)
    a = d * math.sqrt(2)
    h = d / math.sqrt(3)
    return slab(*_hex(a), [x, m, m], [[0, 0], [1 / 3, 2 / 3], [2 / 3, 1 / 3]], [0, h, -h])


def decorated_honeycomb(host: str, x: str) -> Any:
    """Chair-functionalised honeycomb (germanane, fluorostanene, BiH ...): one X on each host
    atom, on alternating sides."""
    d = _bond(host, host)
    buckling = 0.1 if host in GROUP_V else 1 / 3  # group V: nearly flat; group IV: sp3
    h = buckling * d
    a = math.sqrt(3 * (d**2 - h**2))
    dx = _bond(host, x)
    species = [host, host, x, x]
    frac = [[1 / 3, 2 / 3], [2 / 3, 1 / 3], [1 / 3, 2 / 3], [2 / 3, 1 / 3]]
    return slab(*_hex(a), species, frac, [h / 2, -h / 2, h / 2 + dx, -h / 2 - dx])


def mx_gas(m: str, x: str) -> Any:
    """GaS/InSe-type MX: an M-M dimer layer between two X planes (X-M-M-X)."""
    d = _bond(m, x)
    dmm = _bond(m, m, 0.95)
    a = math.sqrt(3) * 0.87 * d
    dz = math.sqrt(d**2 - a**2 / 3)
    frac = [[1 / 3, 2 / 3], [2 / 3, 1 / 3], [2 / 3, 1 / 3], [1 / 3, 2 / 3]]
    z = [dmm / 2 + dz, dmm / 2, -dmm / 2, -dmm / 2 - dz]
    return slab(*_hex(a), [x, m, m, x], frac, z)


def puckered(el: str) -> Any:
    """Puckered (black-phosphorene-type) layer: zigzag chains along a, armchair along b."""
    d = _bond(el, el)
    a = 1.49 * d  # zigzag period (phosphorene: 3.30 A for a 2.22 A bond)
    w = math.sqrt(d**2 - a**2 / 4)  # in-plane armchair step
    hz = 0.95 * d  # height between the two sub-layers
    t = math.sqrt(d**2 - hz**2)
    b = 2 * w + 2 * t
    frac = [[0, 0], [0.5, w / b], [0.5, (w + t) / b], [0, (2 * w + t) / b]]
    return slab([a, 0], [0, b], [el] * 4, frac, [hz, hz, 0, 0])


def readable_formula(structure: Any) -> str:
    """Reduced formula in IUPAC order (``MoTe2``, ``PbH``), for ids."""
    tokens = structure.composition.reduced_composition.iupac_formula.split()
    return "".join(t[:-1] if re.fullmatch(r"[A-Za-z]+1", t) else t for t in tokens)


def candidates() -> list[Candidate]:
    """Every starting structure of the library, in a fixed order."""
    out: list[Candidate] = []

    def add(proto: str, sub: dict[str, str], structure: Any) -> None:
        out.append(Candidate(f"{proto}-{readable_formula(structure)}", proto, sub, structure))

    for m in MX2_METALS:
        for x in CHALCOGENS:
            add("2H-MX2", {"M": m, "X": x}, mx2_2h(m, x))
            add("1T-MX2", {"M": m, "X": x}, mx2_1t(m, x))
    for m in ("Mo", "W"):
        for x in CHALCOGENS:
            add("1T'-MX2", {"M": m, "X": x}, mx2_1tp(m, x))
    for m in MX2_METALS:
        for x, y in combinations(CHALCOGENS, 2):
            add("2H-MXY", {"M": m, "X": x, "Y": y}, mx2_2h(m, x, y))
            add("1T-MXY", {"M": m, "X": x, "Y": y}, mx2_1t(m, x, y))
    for el in HONEYCOMB:
        add("honeycomb-X2", {"X": el}, honeycomb(el))
    for a_el, b_el in AB_PAIRS:
        add("honeycomb-AB", {"A": a_el, "B": b_el}, honeycomb(a_el, b_el))
    for m in MXENE_METALS:
        for x in ("C", "N"):
            add("MXene-M2X", {"M": m, "X": x}, mxene(m, x))
    for host in DECORATED_HOSTS:
        for x in DECORATIONS:
            add("decorated-honeycomb-AX", {"A": host, "X": x}, decorated_honeycomb(host, x))
    for m in ("Ga", "In"):
        for x in CHALCOGENS:
            add("GaS-MX", {"M": m, "X": x}, mx_gas(m, x))
    for el in GROUP_V[1:]:
        add("puckered-X4", {"X": el}, puckered(el))
    return out


def select(cands: Sequence[Candidate], n_max: int | None, seed: int) -> list[Candidate]:
    """``n_max`` candidates spread over the prototypes (round robin, seeded order)."""
    if n_max is None or n_max >= len(cands):
        return list(cands)
    rng = np.random.default_rng(seed)
    by_proto: dict[str, list[Candidate]] = {}
    for c in cands:
        by_proto.setdefault(c.prototype, []).append(c)
    queues = [[group[i] for i in rng.permutation(len(group))] for group in by_proto.values()]
    chosen: list[Candidate] = []
    while len(chosen) < n_max:
        for q in queues:
            if q and len(chosen) < n_max:
                chosen.append(q.pop(0))
    return chosen


def rattle(structure: Any, amplitude: float, seed: int, key: str) -> Any:
    """A copy with every atom displaced by up to ``amplitude`` Angstrom (seeded per ``key``)."""
    s = structure.copy()
    if amplitude <= 0:
        return s
    rng = np.random.default_rng([seed, zlib.crc32(key.encode())])
    disp = rng.uniform(-amplitude, amplitude, size=(len(s), 3))
    for i, vec in enumerate(disp):
        s.translate_sites([i], vec, frac_coords=False, to_unit_cell=True)
    return s


# --- the library --------------------------------------------------------------------------


def matcher() -> Any:
    """A StructureMatcher for relaxed slabs that share a c axis and vacuum.

    pymatgen's defaults are too loose here: ``stol`` is relative to (V/n)^(1/3), which the
    vacuum inflates to ~4 A, so the default 0.3 calls 2H- and 1T-MoS2 (one S plane shifted by
    1.8 A) equal. ``stol=0.1`` (~0.4 A) separates them; ``scale=False`` keeps the slab's
    vacuum out of the volume scaling.
    """
    from pymatgen.analysis.structure_matcher import StructureMatcher

    return StructureMatcher(ltol=0.1, stol=0.1, angle_tol=3, scale=False)


def deduplicate(records: list[Record]) -> tuple[list[Record], list[Rejected]]:
    """Drop structures that :func:`matcher` finds equal to an earlier one (same formula)."""
    match = matcher()
    kept: list[Record] = []
    dropped: list[Rejected] = []
    by_formula: dict[str, list[Record]] = {}
    for r in records:
        twins = by_formula.setdefault(r.formula, [])
        twin = next((k for k in twins if match.fit(k.structure, r.structure)), None)
        if twin is not None:
            dropped.append(Rejected(SOURCE, "", r.id, f"duplicate of {twin.id} (StructureMatcher)"))
            continue
        twins.append(r)
        kept.append(r)
    return kept, dropped


def build_library(
    n_max: int | None = None,
    seed: int = 0,
    *,
    relax: bool = True,
    settings: RelaxSettings | None = None,
    threads: int | None = None,
    rattle_amplitude: float = 0.02,
    keep_unconverged: bool = False,
    candidates_in: Iterable[Candidate] | None = None,
    model: Any = None,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[list[Record], list[Rejected]]:
    """Build, relax (CHGNet), check and deduplicate the 2D library.

    ``n_max`` candidates are taken from :func:`candidates` (spread over the prototypes; all by
    default), or from ``candidates_in`` when given. Each starting cell is rattled by up to
    ``rattle_amplitude`` Angstrom (seeded per candidate id), relaxed with CHGNet and FIRE
    (atoms + in-plane cell; c and the vacuum kept; ``settings``: fmax, steps, structures per
    model call) on ``threads`` CPU threads. A candidate is rejected, with the reason, if its
    id repeats, its start is unusable, CHGNet fails, it does not converge (unless
    ``keep_unconverged``), or :func:`~topogen.data.layer_checks.relaxed_problem` finds a
    problem; then duplicates (:func:`deduplicate`) go. ``relax=False`` skips CHGNet (starting
    cells only). Returns (records, rejected) in candidate order; every candidate is in exactly
    one. The same arguments (and thread count) give the same result.
    """
    from topogen.calc.calculators import RelaxCalc
    from topogen.calc.chain import Chain

    set_threads(threads)
    if candidates_in is None:
        chosen = select(candidates(), n_max, seed)
    else:
        chosen = list(candidates_in)[:n_max]
    rejected: list[Rejected] = []
    todo: list[tuple[int, Candidate, Any]] = []
    seen: set[str] = set()
    for k, cand in enumerate(chosen):
        start = rattle(cand.structure, rattle_amplitude, seed, cand.id)
        problem = f"duplicate id {cand.id!r}" if cand.id in seen else None
        problem = problem or structure_problem(start, MIN_DISTANCE)
        seen.add(cand.id)
        if problem:
            rejected.append(Rejected(SOURCE, str(k), cand.id, f"starting cell: {problem}"))
        else:
            todo.append((k, cand, start))

    records: list[Record] = []
    if not relax:
        for _, cand, start in todo:
            records.append(Record(cand.id, SOURCE, start, {**cand.describe(), "relaxed": False}))
        return _finish(chosen, records, rejected)

    ideal = {id(start): cand.structure for _, cand, start in todo}
    relax_calc = RelaxCalc(
        settings,
        model=model,
        require_converged=not keep_unconverged,
        check=lambda start, r: relaxed_problem(ideal[id(start)], r.structure, r.energy_per_atom),
        progress=progress,
    )
    chain = Chain(relax_calc)
    for (k, cand, _), out in zip(todo, chain.calc_many([s for _, _, s in todo]), strict=True):
        if out["verdict"] != "pass":
            rejected.append(Rejected(SOURCE, str(k), cand.id, out["reason"]))
            continue
        res = out["steps"]["relax"]
        props = {
            **cand.describe(),
            "relaxed": True,
            "relaxer": "CHGNet",
            "relax_fmax_target": relax_calc.settings.fmax,
            "energy_per_atom": res["energy_per_atom"],
            "fmax": res["relax_fmax"],
            "steps": res["relax_steps"],
            "converged": res["relax_converged"],
            "thickness": layer_thickness(out["structure"]),
            "space_group": space_group(out["structure"]),
        }
        records.append(Record(cand.id, SOURCE, out["structure"], props))
    return _finish(chosen, records, rejected)


def _finish(
    chosen: list[Candidate], records: list[Record], rejected: list[Rejected]
) -> tuple[list[Record], list[Rejected]]:
    records, dups = deduplicate(records)
    order = {}
    for k, c in enumerate(chosen):
        order.setdefault(c.id, k)
    rejected = sorted([*rejected, *dups], key=lambda r: order.get(r.id, len(order)))
    return records, rejected


# --- literature topology labels -----------------------------------------------------------


def labels_for(
    records: Iterable[Record], path: str | os.PathLike[str] = LABELS_FILE
) -> list[Record]:
    """Attach the literature labels of ``path`` (:mod:`topogen.io.labels`) to ``records``.

    A record with a ``prototype`` property matches a row by (reduced formula, prototype); one
    without (e.g. a C2DB monolayer) by reduced formula, space group and number of sites of the
    row's prototype as :func:`candidates` builds it. Matched records get ``topo_class``,
    ``topo_invariant``, ``topo_reference`` and ``label_match`` (``prototype`` / ``space_group``);
    every record gets ``topo2d`` (1 / 0, None where no row matches or the row is a Chern
    insulator). Returns the same records.
    """
    from pymatgen.core import Composition

    rows = {(Composition(r.formula).reduced_formula, r.prototype): r for r in read_literature(path)}
    out = list(records)
    by_symmetry: dict[tuple[str, str, int], LiteratureLabel] | None = None
    for r in out:
        row, how = rows.get((r.formula, r.properties.get("prototype"))), "prototype"
        if row is None and "prototype" not in r.properties and any(f == r.formula for f, _ in rows):
            if by_symmetry is None:
                by_symmetry = _rows_by_symmetry(rows)
            key = (r.formula, space_group(r.structure), len(r.structure))
            row, how = by_symmetry.get(key), "space_group"
        r.properties["topo2d"] = row.topo2d if row is not None else None
        if row is not None:
            r.properties.update(
                topo_class=row.topo_class,
                topo_invariant=row.invariant,
                topo_reference=row.reference,
                label_match=how,
            )
    return out


def _rows_by_symmetry(
    rows: dict[tuple[str, str], LiteratureLabel],
) -> dict[tuple[str, str, int], LiteratureLabel]:
    """(reduced formula, space group, sites) of each row's starting structure -> the row."""
    out: dict[tuple[str, str, int], LiteratureLabel] = {}
    for c in candidates():
        key = (c.structure.composition.reduced_formula, c.prototype)
        if key in rows:
            sym = (key[0], space_group(c.structure), len(c.structure))
            if sym in out and out[sym] is not rows[key]:
                raise LabelError(f"{out[sym]} and {rows[key]} cannot be told apart by symmetry")
            out[sym] = rows[key]
    return out
