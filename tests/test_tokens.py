"""CrystalBERT tokens (topogen.encode.tokens): vocabulary, electron bits, invariance."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch
from pymatgen.core import Lattice, Structure
from pymatgen.core.operations import SymmOp
from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

from topogen.encode import EncodingError
from topogen.encode.elements import MAX_Z
from topogen.encode.tokens import (
    SPECIAL_TOKENS,
    CrystalTokens,
    collate_tokens,
    electron_bits,
    space_group_table,
    space_group_tokens,
    tokens_from_formula,
    tokens_from_structure,
    vocabulary,
)

# pymatgen's SpacegroupAnalyzer (used to build settings) triggers spglib's deprecation notice
pytestmark = pytest.mark.filterwarnings("ignore:Set OLD_ERROR_HANDLING:DeprecationWarning")


def bi2se3() -> Structure:
    return Structure.from_spacegroup(
        "R-3m",
        Lattice.hexagonal(4.14, 28.64),
        ["Bi", "Se", "Se"],
        [[0, 0, 0.4008], [0, 0, 0], [0, 0, 0.2117]],
    )


def mos2() -> Structure:
    return Structure(
        Lattice.hexagonal(3.19, 20.0),
        ["Mo", "S", "S"],
        [[0, 0, 0.5], [1 / 3, 2 / 3, 0.422], [1 / 3, 2 / 3, 0.578]],
    )


def same(a: CrystalTokens, b: CrystalTokens, graph: bool = True) -> bool:
    return (
        a.space_group == b.space_group
        and a.formula == b.formula
        and a.symbols == b.symbols
        and a.token_ids == b.token_ids
        and a.n_electrons == b.n_electrons
        and np.array_equal(a.electron_bits, b.electron_bits)
        and np.allclose(a.element_fractions, b.element_fractions, atol=1e-7)
        and np.array_equal(a.graph_embedding, b.graph_embedding)
        and (not graph or a.has_graph == b.has_graph)
    )


def test_vocabulary_covers_all_230_space_groups():
    table = space_group_table()
    assert sorted(table) == list(range(1, 231))
    vocab = vocabulary()
    assert list(vocab)[: len(SPECIAL_TOKENS)] == list(SPECIAL_TOKENS)
    assert sorted(vocab.values()) == list(range(len(vocab)))
    per_kind = Counter(t.split(":")[0] for t in vocab if ":" in t)
    assert per_kind == {"hm": 230, "pg": 32, "system": 7, "laue": 11, "symmetry": 5}
    for number in range(1, 231):
        assert all(s in vocab for s in space_group_tokens(number))
    # textbook counts: 92 centrosymmetric, 65 Sohncke (chiral), 68 polar space groups
    sym = Counter(tokens[4] for tokens in table.values())
    assert sym["symmetry:centrosymmetric"] == 92
    assert sym["symmetry:chiral"] + sym["symmetry:polar-chiral"] == 65
    assert sym["symmetry:polar"] + sym["symmetry:polar-chiral"] == 68


@pytest.mark.parametrize(
    ("number", "expected"),
    [
        (166, ("R-3m", "-3m", "trigonal", "-3m", "centrosymmetric")),
        (187, ("P-6m2", "-6m2", "hexagonal", "6/mmm", "nonpolar-achiral")),
        (4, ("P2_1", "2", "monoclinic", "2/m", "polar-chiral")),
        (19, ("P2_12_12_1", "222", "orthorhombic", "mmm", "chiral")),
        (186, ("P6_3mc", "6mm", "hexagonal", "6/mmm", "polar")),
        (227, ("Fd-3m", "m-3m", "cubic", "m-3m", "centrosymmetric")),
        (1, ("P1", "1", "triclinic", "-1", "polar-chiral")),
    ],
)
def test_known_space_group_tokens(number, expected):
    assert tuple(t.split(":", 1)[1] for t in space_group_tokens(number)) == expected


@pytest.mark.parametrize(
    ("formula", "electrons", "ones"),
    [
        ("Bi2Se3", 268, {2, 3, 8}),
        ("NaCl", 28, {2, 3, 4}),
        ("Bi4Se6", 268, {2, 3, 8}),
        ("H", 1, {0}),
        ("O2", 8, {3}),
    ],
)
def test_electron_count_bits_little_endian(formula, electrons, ones):
    tokens = tokens_from_formula(225, formula)
    assert tokens.n_electrons == electrons
    assert tokens.electron_bits.shape == (14,)
    assert set(np.flatnonzero(tokens.electron_bits)) == ones
    assert sum(int(b) << k for k, b in enumerate(tokens.electron_bits)) == electrons


def test_electron_bits_overflow_and_bad_input():
    assert electron_bits(2**14 - 1).all()
    with pytest.raises(EncodingError, match="14 bits"):
        electron_bits(2**14)
    with pytest.raises(EncodingError, match="14 bits"):
        tokens_from_formula(1, "Bi199Se")  # 199 * 83 + 34 = 16551 electrons
    with pytest.raises(EncodingError, match="unsupported species"):
        tokens_from_formula(1, "Og2")
    with pytest.raises(EncodingError, match="unsupported species Qq"):
        tokens_from_formula(1, "Qq2")
    with pytest.raises(EncodingError, match="cannot parse"):
        tokens_from_formula(1, "Bi((2")
    with pytest.raises(EncodingError, match="non-integer"):
        tokens_from_formula(166, "Bi1.5Sb0.5Te3")
    with pytest.raises(EncodingError, match=r"1\.\.230"):
        tokens_from_formula(231, "NaCl")


def test_element_fractions():
    fractions = tokens_from_formula(166, "Bi2Se3").element_fractions
    assert fractions.shape == (MAX_Z,)
    assert fractions[83 - 1] == pytest.approx(0.4) and fractions[34 - 1] == pytest.approx(0.6)
    assert fractions.sum() == pytest.approx(1.0)


def settings(structure: Structure) -> dict[str, Structure]:
    """Symmetry-equivalent descriptions of one crystal."""
    rotated = structure.copy()
    rotated.apply_operation(SymmOp.from_axis_angle_and_translation([1, 2, 3], 37.0))
    translated = structure.copy()
    translated.translate_sites(range(len(translated)), [0.123, -0.31, 0.07])
    permuted = Structure.from_sites(list(reversed(structure.sites)))
    sga = SpacegroupAnalyzer(structure)
    return {
        "rotated": rotated,
        "translated": translated,
        "permuted": permuted,
        "supercell": structure.make_supercell([[1, 1, 0], [-1, 1, 0], [0, 0, 2]], in_place=False),
        "primitive": sga.get_primitive_standard_structure(),
        "conventional": sga.get_conventional_standard_structure(),
    }


@pytest.mark.parametrize(("make", "number"), [(bi2se3, 166), (mos2, 187)])
def test_tokens_identical_for_equivalent_settings(make, number):
    structure = make()
    ref = tokens_from_structure(structure)
    assert ref.space_group == number and ref.has_graph
    for name, variant in settings(structure).items():
        assert same(tokens_from_structure(variant), ref), name
    from pymatgen.io.ase import AseAtomsAdaptor

    assert same(tokens_from_structure(AseAtomsAdaptor.get_atoms(structure)), ref)


def test_formula_tokens_equal_structure_tokens():
    for structure, number, formula in ((bi2se3(), 166, "Bi2Se3"), (mos2(), 187, "MoS2")):
        from_structure = tokens_from_structure(structure)
        from_formula = tokens_from_formula(number, formula)
        assert same(from_structure, from_formula, graph=False)
        assert from_structure.has_graph and not from_formula.has_graph


def test_collate_tokens():
    batch = collate_tokens([tokens_from_structure(mos2()), tokens_from_formula(166, "Bi2Se3")])
    assert batch["token_ids"].shape == (2, 5) and batch["token_ids"].dtype == torch.long
    assert batch["electron_bits"].shape == (2, 14)
    assert batch["element_fractions"].shape == (2, MAX_Z)
    assert batch["graph_embedding"].shape == (2, 64) and not batch["graph_embedding"].any()
    assert batch["graph_mask"].tolist() == [True, False]
    assert batch["space_group"].tolist() == [187, 166]
