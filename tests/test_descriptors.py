"""Power-spectrum descriptors (topogen.encode.descriptors): invariances and gradients."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from pymatgen.core import Lattice, Molecule, Structure

from topogen.encode import EncodingError
from topogen.encode.descriptors import PowerSpectrum, real_spherical_harmonics

F64 = torch.float64
RADIAL = ["gaussian", "centred", "bessel"]


def random_rotation(seed: int, proper: bool = True) -> torch.Tensor:
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    q *= np.sign(np.linalg.det(q)) * (1 if proper else -1)
    return torch.as_tensor(q)


def crystal(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(pos, numbers, cell) of a small random periodic cell with two species."""
    rng = np.random.default_rng(seed)
    cell = np.diag(rng.uniform(3.0, 4.0, 3)) + rng.uniform(-0.8, 0.8, (3, 3))
    frac = rng.random((4, 3))
    return (torch.as_tensor(frac @ cell), torch.tensor([14, 8, 8, 14]), torch.as_tensor(cell))


def close(a: torch.Tensor, b: torch.Tensor) -> None:
    torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-6)


def test_real_spherical_harmonics_are_orthonormal():
    nodes, weights = np.polynomial.legendre.leggauss(16)
    phi = np.arange(32) * 2 * math.pi / 32
    z, p = np.meshgrid(nodes, phi, indexing="ij")
    s = np.sqrt(1 - z**2)
    unit = torch.as_tensor(np.stack([s * np.cos(p), s * np.sin(p), z], -1).reshape(-1, 3))
    w = torch.as_tensor(np.repeat(weights, 32) * 2 * math.pi / 32)
    y = real_spherical_harmonics(unit, 6)
    gram = (y * w[:, None]).T @ y
    torch.testing.assert_close(gram, torch.eye(49, dtype=F64), atol=1e-12, rtol=0)


@pytest.mark.parametrize("radial", RADIAL)
@pytest.mark.parametrize("proper", [True, False], ids=["rotation", "improper"])
def test_rotation_and_translation_invariance(radial, proper):
    pos, numbers, cell = crystal(1)
    ps = PowerSpectrum([8, 14], r_cut=4.5, n_max=4, l_max=4, radial=radial)
    ref = ps(pos, numbers, cell)
    rot = random_rotation(2, proper)
    close(ps(pos @ rot.T, numbers, cell @ rot.T), ref)
    close(ps(pos + torch.tensor([0.3, -1.7, 2.2]), numbers, cell), ref)


@pytest.mark.parametrize("radial", RADIAL)
def test_permutation_of_like_atoms_and_periodic_image(radial):
    pos, numbers, cell = crystal(2)
    ps = PowerSpectrum([8, 14], r_cut=4.5, n_max=4, l_max=3, radial=radial)
    ref = ps(pos, numbers, cell)
    perm = torch.tensor([3, 2, 1, 0])  # swaps the two Si and the two O atoms
    close(ps(pos[perm], numbers[perm], cell), ref[perm])
    wrapped = pos.clone()
    wrapped[1] += cell[0] - 2 * cell[2]
    wrapped[3] -= cell[1]
    close(ps(wrapped, numbers, cell), ref)


def test_molecule_invariances():
    rng = np.random.default_rng(4)
    pos = torch.as_tensor(rng.uniform(0, 3, (5, 3)))
    numbers = torch.tensor([6, 1, 1, 8, 1])
    ps = PowerSpectrum([1, 6, 8], r_cut=4.0, n_max=3, l_max=4, radial="bessel")
    ref = ps(pos, numbers, pbc=False)
    rot = random_rotation(5)
    close(ps(pos @ rot.T + 1.0, numbers, pbc=False), ref)
    perm = torch.tensor([0, 4, 2, 3, 1])
    close(ps(pos[perm], numbers[perm], pbc=False), ref[perm])


def test_batch_equals_separate_structures():
    ps = PowerSpectrum([8, 14], r_cut=4.0, n_max=3, l_max=3)
    (p1, z1, c1), (p2, z2, c2) = crystal(5), crystal(6)
    batch = torch.tensor([0] * 4 + [1] * 4)
    out = ps(torch.cat([p1, p2]), torch.cat([z1, z2]), torch.stack([c1, c2]), batch)
    close(out[:4], ps(p1, z1, c1))
    close(out[4:], ps(p2, z2, c2))


@pytest.mark.parametrize("radial", RADIAL)
def test_gradcheck_positions_and_cell(radial):
    pos, numbers, cell = crystal(3)
    pos, numbers = pos[:2].clone().requires_grad_(True), numbers[:2]
    cell = cell.clone().requires_grad_(True)
    ps = PowerSpectrum([8, 14], r_cut=3.5, n_max=2, l_max=2, radial=radial)
    assert torch.autograd.gradcheck(lambda p, c: ps(p, numbers, c), (pos, cell))


def test_gradient_reaches_positions_and_cell_through_a_batch():
    pos, numbers, cell = crystal(0)
    pos.requires_grad_(True)
    cells = torch.stack([cell, cell * 1.1]).requires_grad_(True)
    ps = PowerSpectrum([8, 14], r_cut=4.0, n_max=3, l_max=2)
    out = ps(
        torch.cat([pos, pos * 1.1]),
        torch.cat([numbers, numbers]),
        cells,
        torch.tensor([0] * 4 + [1] * 4),
    )
    out.square().sum().backward()
    assert pos.grad.abs().sum() > 0 and (cells.grad.abs().sum(dim=(1, 2)) > 0).all()


def test_different_structures_differ_and_cutoff_is_smooth():
    ps = PowerSpectrum([8, 14], r_cut=4.0, n_max=4, l_max=3)
    pos, numbers, cell = crystal(7)
    ref = ps(pos, numbers, cell)
    other = ps(*crystal(8))
    assert (ref - other).abs().max() > 1e-2
    strained = ps(pos * 1.02, numbers, cell * 1.02)
    assert (ref - strained).abs().max() > 1e-4
    # a dimer at the cutoff: the descriptor goes continuously to zero
    ps1 = PowerSpectrum([14], r_cut=4.0, n_max=3, l_max=2)
    dimer = [
        ps1(torch.tensor([[0.0, 0, 0], [d, 0, 0]], dtype=F64), [14, 14], pbc=False).abs().max()
        for d in (3.999, 4.0, 4.5)
    ]
    assert dimer[0] < 1e-8 and dimer[1] == 0 and dimer[2] == 0


def test_encode_structures_and_errors():
    slab = Structure(
        Lattice(Lattice.hexagonal(3.19, 20.0).matrix, pbc=(True, True, False)),
        ["Mo", "S", "S"],
        [[0, 0, 0.5], [1 / 3, 2 / 3, 0.422], [1 / 3, 2 / 3, 0.578]],
    )
    water = Molecule(["O", "H", "H"], [[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]])
    ps = PowerSpectrum([1, 8, 16, 42], r_cut=5.0, n_max=3, l_max=3, normalize=True)
    desc, batch = ps.encode([slab, water])
    assert desc.shape == (6, ps.dim) and batch.tolist() == [0, 0, 0, 1, 1, 1]
    torch.testing.assert_close(desc.norm(dim=1), torch.ones(6, dtype=F64))
    close(desc[1], desc[2])  # the two S of MoS2 are equivalent
    with pytest.raises(EncodingError, match="not in species"):
        ps(torch.zeros(1, 3, dtype=F64), [6], pbc=False)
    with pytest.raises(EncodingError, match="radial"):
        PowerSpectrum([6], radial="chebyshev")  # type: ignore[arg-type]


def test_centred_gaussians_peak_on_the_atom_and_vanish_at_the_cutoff():
    """The LoGAN authors' basis: a neighbour on top of the centre gives the largest value of
    every function (the shells peak at bond lengths), and none reaches past r_cut."""
    centred = PowerSpectrum([8], r_cut=4.0, n_max=4, radial="centred")
    shells = PowerSpectrum([8], r_cut=4.0, n_max=4, radial="gaussian")
    r = torch.linspace(0.0, 4.0, 81, dtype=F64)
    f = centred.radial_basis(r)
    assert bool((f[:-1] - f[1:] > 0).all())  # strictly decreasing in r, every function
    close(f[-1], torch.zeros(4, dtype=F64))
    close(f[0], 1 - torch.exp(-((4.0 / torch.linspace(1.0, 4.0, 4, dtype=F64)) ** 2)))
    g = shells.radial_basis(r)
    assert int(g[:, 0].argmax()) == 16  # the first shell peaks at 0.8 A, not on the atom
