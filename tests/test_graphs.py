"""Periodic neighbour lists and crystal graphs (topogen.encode.graphs) against pymatgen."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pymatgen.core import Lattice, Molecule, Structure

from topogen.encode import EncodingError
from topogen.encode.graphs import graph_batch, neighbor_list, structure_graph


def _pairs(i, j, offsets, distances) -> dict[tuple[int, ...], float]:
    return {
        (int(a), int(b), *map(int, np.rint(o))): float(d)
        for a, b, o, d in zip(i, j, offsets, distances, strict=True)
    }


def assert_matches_pymatgen(structure: Structure, cutoff: float) -> None:
    ref = _pairs(*structure.get_neighbor_list(cutoff))
    nl = neighbor_list(
        structure.lattice.matrix, structure.frac_coords, cutoff, pbc=structure.lattice.pbc
    )
    ours = _pairs(*nl)
    assert len(ours) == len(nl.i), "duplicate pairs"
    assert ours.keys() == ref.keys()
    assert max(abs(ours[k] - ref[k]) for k in ref) < 1e-8
    # the Cartesian form gives the same list
    cart = neighbor_list(
        structure.lattice.matrix,
        structure.cart_coords,
        cutoff,
        pbc=structure.lattice.pbc,
        cartesian=True,
    )
    assert _pairs(*cart).keys() == ref.keys()


def random_structure(rng: np.random.Generator, n_atoms: int) -> Structure:
    matrix = np.diag(rng.uniform(2.5, 5.0, 3)) + rng.uniform(-1.5, 1.5, (3, 3))
    if np.linalg.det(matrix) < 0:
        matrix[0] *= -1
    species = rng.choice(["Si", "O", "Bi", "Se"], n_atoms)
    return Structure(Lattice(matrix), species, rng.random((n_atoms, 3)))


@pytest.mark.parametrize("seed", range(6))
def test_random_cells_match_pymatgen(seed):
    rng = np.random.default_rng(seed)
    structure = random_structure(rng, int(rng.integers(1, 6)))
    assert_matches_pymatgen(structure, cutoff=float(rng.uniform(3.0, 7.0)))


def test_one_atom_cell_neighbours_only_its_images():
    structure = Structure(Lattice.hexagonal(2.5, 4.0), ["C"], [[0.1, 0.2, 0.3]])
    assert_matches_pymatgen(structure, 6.0)
    nl = neighbor_list(structure.lattice.matrix, structure.frac_coords, 6.0)
    assert len(nl.i) > 0 and (nl.i == 0).all() and (nl.j == 0).all()
    assert (np.abs(nl.offsets).sum(axis=1) > 0).all()


@pytest.mark.parametrize(
    "lattice",
    [
        Lattice.from_parameters(4.0, 4.5, 5.0, 30, 28, 25),
        Lattice([[3.0, 0.0, 0.0], [8.5, 2.5, 0.0], [6.0, 7.0, 3.0]]),
    ],
    ids=["acute-angles", "large-off-diagonal"],
)
def test_sheared_cells_match_pymatgen(lattice):
    rng = np.random.default_rng(7)
    structure = Structure(lattice, ["Si", "O", "O"], rng.random((3, 3)))
    assert_matches_pymatgen(structure, 6.5)


def mos2(pbc=(True, True, True)) -> Structure:
    lattice = Lattice(Lattice.hexagonal(3.19, 20.0).matrix, pbc=pbc)
    return Structure(
        lattice, ["Mo", "S", "S"], [[0, 0, 0.5], [1 / 3, 2 / 3, 0.422], [1 / 3, 2 / 3, 0.578]]
    )


@pytest.mark.parametrize("pbc", [(True, True, True), (True, True, False)])
def test_slab_with_vacuum_matches_pymatgen(pbc):
    for cutoff in (5.0, 8.0, 21.0):  # the last reaches across the vacuum
        assert_matches_pymatgen(mos2(pbc), cutoff)


def test_ase_slab_with_zero_c_vector():
    from ase import Atoms

    ref = mos2((True, True, False))
    cell = ref.lattice.matrix.copy()
    cell[2] = 0.0
    atoms = Atoms(
        numbers=ref.atomic_numbers, positions=ref.cart_coords, cell=cell, pbc=(True, True, False)
    )
    ours = structure_graph(atoms, cutoff=8.0, max_neighbors=None)
    theirs = structure_graph(ref, cutoff=8.0, max_neighbors=None)
    torch.testing.assert_close(ours.edge_distance, theirs.edge_distance)
    assert torch.equal(ours.edge_index, theirs.edge_index)


def test_unwrapped_coordinates_keep_pymatgen_offsets():
    rng = np.random.default_rng(3)
    structure = random_structure(rng, 3)
    unwrapped = structure.frac_coords + np.array([[2, -1, 0], [0, 0, 0], [-3, 1, 1]])
    shifted = Structure(structure.lattice, structure.species, unwrapped, to_unit_cell=False)
    assert_matches_pymatgen(shifted, 5.5)


def test_molecule_without_periodicity():
    rng = np.random.default_rng(1)
    pos = rng.uniform(0, 4, (6, 3))
    nl = neighbor_list(None, pos, 3.0, pbc=False, cartesian=True)
    d = np.linalg.norm(pos[:, None] - pos[None], axis=-1)
    expected = {(a, b) for a in range(6) for b in range(6) if a != b and d[a, b] <= 3.0}
    assert {(int(a), int(b)) for a, b in zip(nl.i, nl.j, strict=True)} == expected
    assert not nl.offsets.any()
    np.testing.assert_allclose(nl.distances, d[nl.i, nl.j], atol=1e-12)


@pytest.mark.parametrize("periodic", [False, True])
@pytest.mark.parametrize("max_neighbors", [None, 3])
def test_groups_list_each_structure_alone(periodic, max_neighbors):
    """One call with group labels (unsorted, of different sizes) gives each structure's
    own list, as separate calls do, and no pair across groups."""
    rng = np.random.default_rng(11)
    sizes, labels = [5, 1, 7, 4], [3, 0, 9, 2]
    lattice = np.diag([4.0, 4.5, 5.0]) if periodic else None
    parts = [rng.uniform(0, 4, (n, 3)) for n in sizes]
    groups = np.repeat(labels, sizes)
    args = (lattice, np.concatenate(parts), 3.5, max_neighbors, periodic)
    nl = neighbor_list(*args, cartesian=True, groups=groups)
    assert (np.diff(nl.i) >= 0).all() and (groups[nl.i] == groups[nl.j]).all()
    start, expected = 0, {}
    for pos in parts:
        alone = neighbor_list(lattice, pos, 3.5, max_neighbors, periodic, cartesian=True)
        expected |= _pairs(alone.i + start, alone.j + start, alone.offsets, alone.distances)
        start += len(pos)
    ours = _pairs(*nl)
    assert ours.keys() == expected.keys() and len(ours) == len(nl.i) > 0
    assert max(abs(ours[k] - expected[k]) for k in ours) < 1e-12
    with pytest.raises(EncodingError, match="group labels"):
        neighbor_list(*args, cartesian=True, groups=groups[:-1])


def test_max_neighbors_keeps_nearest_and_sorts():
    rng = np.random.default_rng(5)
    structure = random_structure(rng, 4)
    full = neighbor_list(structure.lattice.matrix, structure.frac_coords, 7.0)
    cut = neighbor_list(structure.lattice.matrix, structure.frac_coords, 7.0, max_neighbors=5)
    assert (np.diff(full.i) >= 0).all() and (np.diff(cut.i) >= 0).all()
    for atom in range(4):
        ref = np.sort(full.distances[full.i == atom])[:5]
        np.testing.assert_allclose(cut.distances[cut.i == atom], ref)
    again = neighbor_list(structure.lattice.matrix, structure.frac_coords, 7.0, max_neighbors=5)
    for a, b in zip(cut, again, strict=True):
        np.testing.assert_array_equal(a, b)


def test_structure_graph_fields_and_geometry():
    structure = mos2()
    data = structure_graph(structure, cutoff=6.0, max_neighbors=12, n_gaussians=31)
    assert data.num_nodes == 3 and data.x.shape == (3, 103)
    assert data.edge_attr.shape == (data.edge_index.shape[1], 31)
    assert data.cell.shape == (1, 3, 3) and data.pbc.shape == (1, 3)
    assert torch.bincount(data.edge_index[1], minlength=3).max() <= 12
    src, dst = data.edge_index
    vec = data.pos[src] - data.pos[dst] + data.edge_offset.float() @ data.cell[0]
    torch.testing.assert_close(vec.norm(dim=1), data.edge_distance, atol=1e-4, rtol=0)
    cg = structure_graph(structure, atom_features="cgcnn-like")
    assert cg.x.shape == (3, 84) and torch.all(cg.x.sum(dim=1) == 3 + 5)


def test_graph_batch_runs_through_cgconv():
    from torch_geometric.nn import CGConv, global_mean_pool

    molecule = Molecule(["O", "H", "H"], [[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]])
    batch = graph_batch([mos2(), molecule, mos2((True, True, False))], cutoff=5.0)
    assert batch.num_graphs == 3 and batch.cell.shape == (3, 3, 3)
    assert (
        not batch.cell[1].any()
        and batch.edge_offset[batch.batch[batch.edge_index[1]] == 1].abs().sum() == 0
    )
    conv = CGConv(batch.x.shape[1], dim=batch.edge_attr.shape[1])
    out = global_mean_pool(conv(batch.x, batch.edge_index, batch.edge_attr), batch.batch)
    assert out.shape == (3, 103) and torch.isfinite(out).all()


def test_bad_inputs_raise():
    with pytest.raises(EncodingError, match="atom_features"):
        structure_graph(mos2(), atom_features="bogus")  # type: ignore[arg-type]
    with pytest.raises(EncodingError, match="lattice"):
        neighbor_list(None, np.zeros((2, 3)), 3.0)
    with pytest.raises(EncodingError, match="degenerate"):
        neighbor_list(np.zeros((3, 3)), np.zeros((2, 3)), 3.0)
