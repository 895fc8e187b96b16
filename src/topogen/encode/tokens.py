"""CrystalBERT inputs (Xu, Qian & Wang, arXiv:2405.18944): tokens and vectors per crystal.

Per structure:

* five space-group tokens, in this order: Hermann-Mauguin symbol (``hm:P-3m1``), point
  group (``pg:-3m``), crystal system (``system:trigonal``), Laue class (``laue:-3m``) and a
  symmetry token (``symmetry:...``) that classifies the point group by inversion, polarity
  and chirality: ``centrosymmetric`` (the 11 Laue groups), ``polar-chiral`` (1, 2, 3, 4, 6),
  ``chiral`` (222, 422, 32, 622, 23, 432), ``polar`` (m, mm2, 3m, 4mm, 6mm) or
  ``nonpolar-achiral`` (-4, -42m, -6, -6m2, -43m). The vocabulary is built from all 230
  space-group types in spglib's database (standard setting: the first Hall number of each
  type) plus the special tokens ``[PAD] [UNK] [MASK] [CLS]``.
* the electron count of the reduced formula unit (sum of Z; counts divided by their gcd,
  so Bi4Se6 -> Bi2Se3 -> 268 and a cell's size does not matter) as ``N_ELECTRON_BITS`` = 14 bits,
  little-endian (``bits[k] = (n >> k) & 1``); counts above 2^14 - 1 raise EncodingError.
* the element vector: atomic fractions of the formula, length ``MAX_Z`` = 103 (H..Lr),
  index Z - 1.
* a slot for the graph-network (CGCNN) embedding: zeros of length ``graph_dim`` that the
  model fills in, with ``has_graph`` True only when a structure was given.

Tokens come either from (space-group number, formula), as TopoA provides them, or from a
structure, whose space group spglib finds with ``symprec`` (default ``SYMPREC`` = 0.01 A,
pymatgen's default) and spglib's default angle tolerance.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from topogen.encode import EncodingError
from topogen.encode.elements import MAX_Z

SYMPREC = 0.01
N_ELECTRON_BITS = 14
GRAPH_DIM = 64
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[MASK]", "[CLS]")
TOKEN_KINDS = ("hm", "pg", "system", "laue", "symmetry")

_LAUE = {
    "-1": ("1", "-1"),
    "2/m": ("2", "m", "2/m"),
    "mmm": ("222", "mm2", "mmm"),
    "4/m": ("4", "-4", "4/m"),
    "4/mmm": ("422", "4mm", "-42m", "4/mmm"),
    "-3": ("3", "-3"),
    "-3m": ("32", "3m", "-3m"),
    "6/m": ("6", "-6", "6/m"),
    "6/mmm": ("622", "6mm", "-6m2", "6/mmm"),
    "m-3": ("23", "m-3"),
    "m-3m": ("432", "-43m", "m-3m"),
}
LAUE_CLASS = {pg: laue for laue, pgs in _LAUE.items() for pg in pgs}
_CHIRAL = {"1", "2", "3", "4", "6", "222", "422", "32", "622", "23", "432"}
_POLAR = {"1", "2", "3", "4", "6", "m", "mm2", "3m", "4mm", "6mm"}
_SYSTEMS = (
    (2, "triclinic"),
    (15, "monoclinic"),
    (74, "orthorhombic"),
    (142, "tetragonal"),
    (167, "trigonal"),
    (194, "hexagonal"),
    (230, "cubic"),
)


def symmetry_class(point_group: str) -> str:
    """Inversion/polarity/chirality class of a point group (see the module docstring)."""
    if point_group in _LAUE:
        return "centrosymmetric"
    chiral, polar = point_group in _CHIRAL, point_group in _POLAR
    if chiral and polar:
        return "polar-chiral"
    return "chiral" if chiral else "polar" if polar else "nonpolar-achiral"


def crystal_system(number: int) -> str:
    return next(name for last, name in _SYSTEMS if number <= last)


@lru_cache(maxsize=1)
def space_group_table() -> dict[int, tuple[str, ...]]:
    """Space-group number -> its five token strings, for all 230 types."""
    import spglib

    table: dict[int, tuple[str, ...]] = {}
    for hall in range(1, 531):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            sg = spglib.get_spacegroup_type(hall)
        if sg is None or sg.number in table:
            continue
        pg = sg.pointgroup_international
        table[sg.number] = (
            f"hm:{sg.international_short}",
            f"pg:{pg}",
            f"system:{crystal_system(sg.number)}",
            f"laue:{LAUE_CLASS[pg]}",
            f"symmetry:{symmetry_class(pg)}",
        )
    return table


@lru_cache(maxsize=1)
def vocabulary() -> dict[str, int]:
    """Token string -> id: special tokens, then each kind in order of space-group number."""
    table = space_group_table()
    tokens = list(SPECIAL_TOKENS)
    for k in range(len(TOKEN_KINDS)):
        tokens += [t for t in dict.fromkeys(table[n][k] for n in sorted(table))]
    return {t: i for i, t in enumerate(tokens)}


def space_group_tokens(number: int) -> tuple[str, ...]:
    """The five token strings of a space-group number (1..230)."""
    table = space_group_table()
    if int(number) not in table:
        raise EncodingError(f"space group {number!r}: not a number in 1..230")
    return table[int(number)]


def electron_bits(n_electrons: int, n_bits: int = N_ELECTRON_BITS) -> np.ndarray:
    """Little-endian binary vector of an electron count (``bits[k] = (n >> k) & 1``)."""
    n = int(n_electrons)
    if n < 0 or n >= 1 << n_bits:
        raise EncodingError(
            f"electron count {n} does not fit in {n_bits} bits (0..{(1 << n_bits) - 1})"
        )
    return ((n >> np.arange(n_bits)) & 1).astype(np.float32)


def _composition(formula: Any) -> Any:
    """A pymatgen Composition, checked: ordered elements with Z in 1..MAX_Z."""
    from pymatgen.core import Composition, Element

    try:
        comp = Composition(formula)
    except Exception as exc:
        raise EncodingError(f"formula {formula!r}: cannot parse ({exc})") from exc
    if not len(comp):
        raise EncodingError(f"formula {formula!r}: empty")
    for el in comp.elements:
        if not isinstance(el, Element) or not 1 <= el.Z <= MAX_Z:
            raise EncodingError(
                f"formula {formula!r}: unsupported species {el} "
                f"(topogen encodes elements Z = 1..{MAX_Z})"
            )
    return comp


def reduced_formula_unit(formula: Any) -> dict[str, int]:
    """Element -> count in the reduced formula unit (counts divided by their gcd; unlike
    pymatgen's ``reduced_formula``, H stays H, not H2). Non-integer counts raise."""
    comp = _composition(formula)
    counts = {}
    for el, amount in comp.items():
        if abs(amount - round(amount)) > 1e-6:
            raise EncodingError(f"formula {formula!r}: non-integer amount {amount} of {el}")
        counts[el.symbol] = round(amount)
    divisor = math.gcd(*counts.values())
    order = [re.match(r"[A-Z][a-z]*", t).group() for t in comp.formula.split()]  # type: ignore[union-attr]
    return {el: counts[el] // divisor for el in order}  # pymatgen's order (electronegativity)


def formula_string(counts: dict[str, int]) -> str:
    return "".join(f"{el}{n if n != 1 else ''}" for el, n in counts.items())


def electron_count(formula: Any) -> int:
    """Total electrons (sum of Z) of the reduced formula unit: Bi2Se3 -> 268."""
    from pymatgen.core import Element

    return sum(Element(el).Z * n for el, n in reduced_formula_unit(formula).items())


def element_fractions(formula: Any) -> np.ndarray:
    """(MAX_Z,) atomic fractions, index Z - 1."""
    comp = _composition(formula)
    out = np.zeros(MAX_Z, dtype=np.float32)
    for el, frac in comp.fractional_composition.items():
        out[el.Z - 1] = frac
    return out


@dataclass(frozen=True, eq=False)
class CrystalTokens:
    """CrystalBERT inputs for one crystal (see the module docstring)."""

    space_group: int
    formula: str  # reduced formula
    symbols: tuple[str, ...]  # five space-group token strings
    token_ids: tuple[int, ...]
    n_electrons: int
    electron_bits: np.ndarray  # (N_ELECTRON_BITS,) float32, little-endian
    element_fractions: np.ndarray  # (MAX_Z,) float32
    graph_embedding: np.ndarray  # (graph_dim,) zeros: filled in by the graph network
    has_graph: bool  # mask flag: True when a structure was given


def tokens_from_formula(
    space_group: int, formula: Any, graph_dim: int = GRAPH_DIM, has_graph: bool = False
) -> CrystalTokens:
    """Tokens from a space-group number and a formula (string or Composition)."""
    symbols = space_group_tokens(space_group)
    vocab = vocabulary()
    n_electrons = electron_count(formula)
    return CrystalTokens(
        space_group=int(space_group),
        formula=formula_string(reduced_formula_unit(formula)),
        symbols=symbols,
        token_ids=tuple(vocab[s] for s in symbols),
        n_electrons=n_electrons,
        electron_bits=electron_bits(n_electrons),
        element_fractions=element_fractions(formula),
        graph_embedding=np.zeros(graph_dim, dtype=np.float32),
        has_graph=has_graph,
    )


def space_group_number(structure: Any, symprec: float = SYMPREC) -> int:
    """Space-group number of a pymatgen Structure (or ASE Atoms) found by spglib."""
    import spglib

    if hasattr(structure, "get_positions"):  # ase.Atoms
        cell = (structure.cell[:], structure.get_scaled_positions(), structure.numbers)
    else:
        if not getattr(structure, "is_ordered", False) or not hasattr(structure, "lattice"):
            raise EncodingError("space group: need an ordered periodic structure")
        cell = (structure.lattice.matrix, structure.frac_coords, structure.atomic_numbers)
    try:
        with warnings.catch_warnings():  # spglib 2.5+: OLD_ERROR_HANDLING deprecation
            warnings.simplefilter("ignore", DeprecationWarning)
            dataset = spglib.get_symmetry_dataset(cell, symprec=symprec)
    except Exception as exc:  # spglib.error.SpglibError with the new error handling
        raise EncodingError(f"spglib failed: {exc} (symprec={symprec})") from exc
    if dataset is None:
        raise EncodingError(f"spglib found no space group (symprec={symprec})")
    return int(dataset.number)


def tokens_from_structure(
    structure: Any, symprec: float = SYMPREC, graph_dim: int = GRAPH_DIM
) -> CrystalTokens:
    """Tokens from a structure (space group via spglib); ``has_graph`` is True."""
    comp = (
        structure.get_chemical_formula()
        if hasattr(structure, "get_positions")
        else structure.composition
    )
    return tokens_from_formula(
        space_group_number(structure, symprec), comp, graph_dim, has_graph=True
    )


def collate_tokens(items: Sequence[CrystalTokens]) -> dict[str, Any]:
    """Stack tokens into tensors: ``token_ids`` (B, 5) long, ``electron_bits`` (B, 14),
    ``element_fractions`` (B, MAX_Z), ``graph_embedding`` (B, D), ``graph_mask`` (B,) bool,
    ``space_group`` (B,) long."""
    import torch

    return {
        "token_ids": torch.tensor([t.token_ids for t in items], dtype=torch.long),
        "electron_bits": torch.as_tensor(np.stack([t.electron_bits for t in items])),
        "element_fractions": torch.as_tensor(np.stack([t.element_fractions for t in items])),
        "graph_embedding": torch.as_tensor(np.stack([t.graph_embedding for t in items])),
        "graph_mask": torch.tensor([t.has_graph for t in items], dtype=torch.bool),
        "space_group": torch.tensor([t.space_group for t in items], dtype=torch.long),
    }
