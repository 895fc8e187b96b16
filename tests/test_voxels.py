"""Crystal images (topogen.encode.voxels) and their autoencoders (topogen.models.autoencoder)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from pymatgen.analysis.structure_matcher import StructureMatcher
from pymatgen.core import Lattice, Structure

from topogen.encode import EncodingError
from topogen.encode.voxels import (
    PAPER_LIKE,
    SMALL,
    VOXEL_ELEMENTS,
    VoxelSpec,
    devoxelize,
    lattice_grid,
    lattice_parameters,
    site_grid,
    site_positions,
    voxelize,
)
from topogen.models.autoencoder.crystal import (
    ELEMENT_ROW,
    PRESENCE,
    CrystalAutoencoder,
    row_rms,
)
from topogen.models.autoencoder.train import FINAL, LAST, load_autoencoder, train_autoencoder


def _slab(a: float, species, frac_xy, z, vacuum: float = 18.0) -> Structure:
    z = np.asarray(z, dtype=float)
    c = float(z.max() - z.min()) + vacuum
    fz = (z - z.min() + vacuum / 2) / c
    coords = [[x, y, w] for (x, y), w in zip(frac_xy, fz, strict=True)]
    return Structure(Lattice.hexagonal(a, c), species, coords)


def mos2() -> Structure:  # 2H (1H monolayer), non-orthogonal in-plane cell
    return _slab(
        3.19, ["Mo", "S", "S"], [[1 / 3, 2 / 3], [2 / 3, 1 / 3], [2 / 3, 1 / 3]], [0, 1.56, -1.56]
    )


def bismuthene() -> Structure:  # buckled honeycomb
    return _slab(4.34, ["Bi", "Bi"], [[1 / 3, 2 / 3], [2 / 3, 1 / 3]], [0.86, -0.86])


def copper() -> Structure:  # one atom, rhombohedral primitive fcc cell (angles 60 degrees)
    return Structure(Lattice.from_parameters(2.55, 2.55, 2.55, 60, 60, 60), ["Cu"], [[0, 0, 0]])


def zno() -> Structure:  # wurtzite: hexagonal 3D
    lat = Lattice.hexagonal(3.25, 5.21)
    frac = [[1 / 3, 2 / 3, 0], [2 / 3, 1 / 3, 0.5], [1 / 3, 2 / 3, 0.382], [2 / 3, 1 / 3, 0.882]]
    return Structure(lat, ["Zn", "Zn", "O", "O"], frac)


def triclinic() -> Structure:
    lat = Lattice.from_parameters(4.1, 5.3, 6.2, 81.0, 97.0, 104.0)
    frac = [[0.1, 0.2, 0.3], [0.6, 0.15, 0.8], [0.35, 0.7, 0.55]]
    return Structure(lat, ["Si", "O", "O"], frac)


STRUCTURES = {
    "MoS2": mos2,
    "Bi2": bismuthene,
    "Cu": copper,
    "ZnO": zno,
    "triclinic": triclinic,
}


@pytest.mark.parametrize("spec", [SMALL, PAPER_LIKE], ids=["small", "paper-like"])
@pytest.mark.parametrize("name", sorted(STRUCTURES))
def test_voxels_round_trip_without_autoencoders(name, spec):
    s = STRUCTURES[name]()
    vox = voxelize(s, spec)
    assert vox.lattice.shape == (2, *(spec.lattice_size,) * 3)
    assert vox.elements.shape == (len(s.composition), *(spec.grid,) * 3)
    assert list(vox.numbers) == sorted(el.Z for el in s.composition)
    back = devoxelize(vox)
    assert back.composition == s.composition
    assert StructureMatcher().fit(s, back)
    # sub-voxel refinement: positions and lattice come back far below one voxel
    np.testing.assert_allclose(back.lattice.parameters, s.lattice.parameters, rtol=1e-4)
    like = StructureMatcher(primitive_cell=False).get_s2_like_s1(s, back)
    d = like.frac_coords - s.frac_coords
    d -= np.rint(d)
    assert np.abs(d).max() * spec.grid < 0.02


def test_2d_cells_keep_c_as_the_vacuum_axis():
    s = mos2()
    back = devoxelize(voxelize(s))
    assert back.lattice.c == pytest.approx(s.lattice.c, rel=1e-4)
    np.testing.assert_allclose(back.lattice.matrix[2, :2], 0, atol=1e-6)  # c along z
    np.testing.assert_allclose(back.lattice.matrix[:2, 2], 0, atol=1e-6)  # a, b in plane
    thickness = np.ptp(back.cart_coords[:, 2])
    assert thickness == pytest.approx(3.12, abs=0.01)


def test_periodic_smearing_wraps_around_the_cell():
    grid = site_grid([[0.99, 0.5, 0.5]], 16, 0.75)
    assert grid[0, 8, 8] > 0.9  # fractional 0.0 is 0.16 voxel from the atom
    assert grid[0, 8, 8] == pytest.approx(np.exp(-(0.16**2) / (2 * 0.75**2)), rel=1e-5)
    np.testing.assert_allclose(grid, site_grid([[-0.01, 0.5, 0.5]], 16, 0.75), atol=1e-6)
    # an atom at 0.0 is symmetric about voxel 0: the voxels at 15 and 1 get the same density
    at_zero = site_grid([[0.0, 0.0, 0.0]], 16, 0.75)
    assert at_zero[15, 0, 0] == pytest.approx(at_zero[1, 0, 0])
    assert at_zero[0, 0, 0] == pytest.approx(1.0, abs=1e-6)
    (pos,) = site_positions(grid, SMALL)
    assert pos[0] == pytest.approx(0.99, abs=1e-4)


def test_two_close_sites_of_one_element_are_found_across_the_boundary():
    frac = [[0.02, 0.0, 0.0], [0.86, 0.0, 0.0]]  # 2.56 voxels apart through the boundary
    pos = site_positions(site_grid(frac, 16, 0.75), SMALL)
    np.testing.assert_allclose(sorted(pos[:, 0]), [0.02, 0.86], atol=0.003)


@pytest.mark.parametrize(
    "params",
    [
        (3.19, 3.19, 21.1, 90, 90, 120),
        (2.55, 2.55, 2.55, 60, 60, 60),
        (4.1, 5.3, 6.2, 81, 97, 104),
        (1.6, 15.5, 47.0, 50, 130, 100),
    ],
)
@pytest.mark.parametrize("spec", [SMALL, PAPER_LIKE], ids=["small", "paper-like"])
def test_lattice_grid_round_trips_the_parameters(params, spec):
    back = lattice_parameters(lattice_grid(Lattice.from_parameters(*params), spec), spec)
    np.testing.assert_allclose(back[:3], params[:3], rtol=1e-3)
    np.testing.assert_allclose(back[3:], params[3:], atol=0.02)


def test_lattice_outside_the_box_is_an_encoding_error():
    with pytest.raises(EncodingError, match=r"lattice c = 60\.000 A outside"):
        lattice_grid(Lattice.hexagonal(3.0, 60.0))
    with pytest.raises(EncodingError, match="angles"):
        lattice_grid(Lattice.from_parameters(3, 3, 3, 20, 90, 90))


@pytest.mark.parametrize(("symbol", "z"), [("Ar", 18), ("Xe", 54), ("Rn", 86), ("U", 92)])
def test_unsupported_elements_are_named(symbol, z):
    s = Structure(Lattice.cubic(4.0), ["Na", symbol], [[0, 0, 0], [0.5, 0.5, 0.5]])
    with pytest.raises(EncodingError, match=rf"{symbol} \(Z={z}\)"):
        voxelize(s)
    assert len(VOXEL_ELEMENTS) == 79 and z not in VOXEL_ELEMENTS


def test_nothing_above_the_threshold_is_an_encoding_error():
    vox = voxelize(mos2())
    with pytest.raises(EncodingError, match="no sites"):
        devoxelize(vox, threshold=2.0)


TINY = VoxelSpec(grid=8, sigma=0.6)


def test_tiny_autoencoder_trains_resumes_and_round_trips(tmp_path, monkeypatch):
    torch.set_num_threads(2)
    structures = [mos2(), bismuthene(), copper(), zno()]
    kw = dict(spec=TINY, latent_dim=8, width=4, max_width=8, batch_size=2, val_fraction=0.0)
    steps = []
    original = CrystalAutoencoder.training_step

    def counting(self, batch, batch_idx):
        steps.append(batch_idx)
        return original(self, batch, batch_idx)

    monkeypatch.setattr(CrystalAutoencoder, "training_step", counting)
    train_autoencoder(structures, tmp_path, epochs=1, **kw)
    assert len(steps) == 2  # 4 crystals, 2 per batch
    first = torch.load(tmp_path / LAST, weights_only=True)
    assert first["global_step"] == 2
    assert not list(tmp_path.glob(".*.tmp-*"))  # atomic writes leave no temporaries

    model = train_autoencoder(structures, tmp_path, epochs=2, **kw)  # resumes: one more epoch
    assert len(steps) == 4
    assert torch.load(tmp_path / LAST, weights_only=True)["global_step"] == 4

    loaded = load_autoencoder(tmp_path / FINAL)
    for name, value in model.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[name]), name
    image = loaded.encode(mos2())
    assert image.shape == loaded.image_shape == (80, 8)  # lattice row + 79 element rows
    assert np.isfinite(image).all() and np.abs(image).max() <= 1
    present = {ELEMENT_ROW[16], ELEMENT_ROW[42]}
    assert all(image[r].any() == (r in present) for r in range(1, 80))  # absent rows: zeros
    images = loaded.encode_many(structures)
    assert images.shape == (4, 80, 8)
    # 4 steps leave the latent batch norm's running variance far from the latents' (rows
    # of RMS ~0.01): here any nonzero row is present (the images stage measures the margin)
    assert (row_rms(images) < PRESENCE).any()
    (vox,) = loaded.decode_voxels(images[0], presence=0.0)
    assert vox.lattice.shape == (2, 8, 8, 8) and vox.elements.shape == (2, 8, 8, 8)
    assert list(vox.numbers) == [16, 42] and np.isfinite(vox.elements).all()
    assert all(math.isfinite(v) for v in lattice_parameters(vox.lattice, TINY))
    # barely trained: whatever peaks there are, in the true cell (the decoded angles of an
    # untrained lattice autoencoder need not make a valid cell: decode_many gives None then)
    rough = devoxelize(
        lattice=mos2().lattice.parameters,
        numbers=vox.numbers,
        elements=vox.elements,
        spec=TINY,
        threshold=0.0,
    )
    assert {el.symbol for el in rough.composition} == {"Mo", "S"}
    decoded = loaded.decode_many(images)
    assert len(decoded) == 4 and all(d is None or isinstance(d, Structure) for d in decoded)


def test_real_crystals_round_trip_through_the_images_with_their_composition(tmp_path):
    """Autoencoders fitted to four crystals (150 steps): every real element row lies well
    above the presence threshold and each crystal decodes with its own composition."""
    structures = [bismuthene(), zno(), triclinic(), copper()]  # 8^3 merges MoS2's S pair
    model = train_autoencoder(
        structures, tmp_path, spec=TINY, latent_dim=16, width=4, max_width=16, lr=5e-3,
        batch_size=4, val_fraction=0.0, epochs=150,
    )  # fmt: skip
    images = model.encode_many(structures)
    rms = row_rms(images)
    assert (rms[rms > 0] > 2 * PRESENCE).all() and (rms > 0).sum() == 1 + 2 + 2 + 1
    decoded = model.decode_many(images)
    assert [d.composition for d in decoded] == [s.composition for s in structures]


def _tiny_model() -> CrystalAutoencoder:
    return CrystalAutoencoder(TINY.as_dict(), latent_dim=8, width=4, max_width=8).eval()


def _image_with(model: CrystalAutoencoder, rows: dict[int, float], noise: float = 0.0):
    """An image with the given element rows (Z -> RMS) on a random lattice row, and the
    other element rows filled with noise of RMS ``noise``."""
    rng = np.random.default_rng(0)
    image = np.zeros(model.image_shape, dtype=np.float32)
    image[0] = rng.uniform(-1, 1, image.shape[1])
    image[1:] = rng.choice([-1.0, 1.0], image[1:].shape) * noise
    for z, rms in rows.items():
        image[ELEMENT_ROW[z]] = rng.choice([-1.0, 1.0], image.shape[1]) * rms
    return image


@pytest.mark.parametrize("z", [1, 3, 9, 16, 34, 42, 53, 83, 84])
@pytest.mark.parametrize("rms", [1.01 * PRESENCE, 0.5, 1.0])
def test_an_element_row_above_the_presence_threshold_decodes_to_its_element_only(z, rms):
    model = _tiny_model()
    image = _image_with(model, {z: rms}, noise=0.9 * PRESENCE)  # empty rows: sub-threshold noise
    (vox,) = model.decode_voxels(image)
    assert list(vox.numbers) == [z] and vox.elements.shape == (1, 8, 8, 8)
    (below,) = model.decode_voxels(_image_with(model, {z: 0.99 * PRESENCE}))
    assert not len(below.numbers)


def test_every_element_has_its_own_row_and_rows_never_merge():
    model = _tiny_model()
    (vox,) = model.decode_voxels(_image_with(model, dict.fromkeys(VOXEL_ELEMENTS, 0.6)))
    assert list(vox.numbers) == list(VOXEL_ELEMENTS)
    assert len(vox.elements) == 79 and len(set(ELEMENT_ROW.values())) == 79
    for pair in [(16, 34), (42, 43), (1, 3), (83, 84)]:  # neighbours in Z or in a group
        (vox,) = model.decode_voxels(_image_with(model, dict.fromkeys(pair, 0.5)))
        assert list(vox.numbers) == list(pair)


def test_an_all_empty_image_decodes_to_nothing_with_a_reason():
    model = _tiny_model()
    image = _image_with(model, {})
    (vox,) = model.decode_voxels(image)
    assert not len(vox.numbers) and vox.elements.shape == (0, 8, 8, 8)
    with pytest.raises(EncodingError, match="no element present"):
        model.decode(image)
    assert model.decode_many(np.stack([image, image])) == [None, None]


def test_crystals_with_many_elements_fit_and_bad_checkpoints_are_encoding_errors(tmp_path):
    model = _tiny_model()
    five = Structure(
        Lattice.cubic(6), ["Na", "Cl", "K", "Bi", "Te"], [[0, 0, 0], [0.5] * 3, [0.25] * 3,
        [0.75, 0.25, 0.5], [0.25, 0.75, 0.0]]
    )  # fmt: skip
    image = model.encode(five)  # untrained: small latents, so any nonzero row is present
    assert (row_rms(image) > 0).sum() == 5
    (vox,) = model.decode_voxels(image, presence=0.0)
    assert list(vox.numbers) == [11, 17, 19, 52, 83]
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(EncodingError, match=r"bad\.ckpt"):
        load_autoencoder(bad)
