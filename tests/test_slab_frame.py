"""The one canonical 2D frame (structure.slabs.canonical_slab): tilted, skewed and supercell
slabs are repaired (or refused with a reason) before relaxation, and their relaxed structures
go on through phonons and into the DFT input; the phonon criterion near Gamma; the Stage III
oracle rejects relaxations that hit the step limit."""

from __future__ import annotations

import math

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure

from topogen.calc import phonons as PH
from topogen.calc.calculators import PhononCalc, PhononSettings, RelaxCalc
from topogen.calc.chain import Chain
from topogen.calc.relax import RelaxSettings, load_model
from topogen.data import prototypes as P
from topogen.screen.novelty import slab_matcher
from topogen.structure.slabs import (
    SlabFrameError,
    canonical_slab,
    layer_thickness,
    orient,
    vacuum_along_c,
)

A_MOS2 = 3.19  # A


def mos2_cell(alpha: float = 90.0, beta: float = 90.0, gamma: float = 120.0, c: float = 21.0):
    """2H-MoS2 (the same layer: Cartesian geometry kept) in a cell a = b of the given angles,
    as ``Lattice.from_parameters`` builds it (c along z, so a, b and the layer are tilted
    out of the xy plane when alpha, beta != 90)."""
    s = P.mx2_2h("Mo", "S")
    frac = s.frac_coords[:, :2].copy()
    if gamma == 60.0:  # the same hexagonal lattice with b' = a + b: x' = x - y, y' = y
        frac[:, 0] -= frac[:, 1]
    m = Lattice.from_parameters(A_MOS2, A_MOS2, c, alpha, beta, gamma).matrix
    normal = np.cross(m[0], m[1])
    normal /= np.linalg.norm(normal)
    z = s.cart_coords[:, 2] - s.cart_coords[:, 2].mean()
    cart = frac @ m[:2] + np.outer(z, normal) + 0.5 * m[2]
    return Structure(Lattice(m), s.species, cart, coords_are_cartesian=True)


def reference():
    return mos2_cell()


def _angles_to_layer(structure) -> tuple[float, float]:
    """cos of the angles between c and a, b."""
    a, b, c = structure.lattice.matrix
    return tuple(abs(c @ v) / (np.linalg.norm(c) * np.linalg.norm(v)) for v in (a, b))


TILTED = {
    "slight tilt": dict(alpha=89.9, beta=90.1),
    "strong tilt": dict(alpha=70.0, beta=100.0, c=25.0),
    "skewed in-plane": dict(gamma=60.0, alpha=89.0, beta=91.0),
}


@pytest.mark.parametrize("name", list(TILTED))
def test_canonical_slab_repairs_tilted_and_skewed_cells(name):
    from topogen.dft.qe.crystal import Crystal, EspressoError

    s = mos2_cell(**TILTED[name])
    assert max(_angles_to_layer(s)) > 1e-3  # as decoded: c not perpendicular to the layer
    with pytest.raises(EspressoError, match="perpendicular"):
        Crystal.from_any(s).as_2d()
    c = canonical_slab(s)
    m = c.lattice.matrix
    assert np.abs(m[0, 1:]).max() < 1e-12 and abs(m[1, 2]) < 1e-12 and m[1, 1] > 0
    assert np.abs(m[2, :2]).max() < 1e-12 and m[2, 2] > 0
    assert vacuum_along_c(c) == pytest.approx(vacuum_along_c(s), abs=1e-9)  # vacuum kept
    assert layer_thickness(c) == pytest.approx(layer_thickness(reference()), abs=1e-6)
    assert c.lattice.abc[:2] == pytest.approx(s.lattice.abc[:2])
    z = c.frac_coords[:, 2]
    assert (z.max() + z.min()) / 2 == pytest.approx(0.5)  # layer centred
    assert slab_matcher().fit(canonical_slab(reference(), 20.0), canonical_slab(c, 20.0))
    assert Crystal.from_any(c).as_2d().cell[2] == pytest.approx([0, 0, m[2, 2]])
    assert canonical_slab(c).lattice.matrix == pytest.approx(m)  # idempotent


def test_canonical_slab_keeps_a_layer_that_wraps_and_a_left_handed_cell():
    s = mos2_cell(alpha=80.0, beta=95.0)
    wrapped = s.copy()
    wrapped.translate_sites(list(range(len(s))), [0.1, 0.2, 0.5], to_unit_cell=True)
    flipped = Lattice(s.lattice.matrix * [[1], [1], [-1]])  # c flipped: left-handed
    lefty = Structure(flipped, s.species, s.cart_coords, coords_are_cartesian=True)
    assert np.linalg.det(lefty.lattice.matrix) < 0
    ref = canonical_slab(reference(), 20.0)
    for t in (wrapped, lefty):
        c = canonical_slab(t)
        assert np.linalg.det(c.lattice.matrix) > 0
        assert layer_thickness(c) == pytest.approx(layer_thickness(reference()), abs=1e-6)
        assert slab_matcher().fit(ref, canonical_slab(c, 20.0))


def test_canonical_slab_refuses_with_a_reason():
    bulk_like = mos2_cell(c=9.0)  # 5.8 A of vacuum
    with pytest.raises(SlabFrameError, match=r"vacuum along c 5\.85 A thinner than 7 A"):
        canonical_slab(bulk_like)
    flat = Structure(Lattice.from_parameters(3, 3, 20, 90, 90, 1.0), ["C"], [[0, 0, 0.5]])
    with pytest.raises(SlabFrameError, match=r"degenerate in-plane cell \(gamma = 1\.00 deg\)"):
        canonical_slab(flat)
    # in the relaxation: refused before CHGNet, a 'fail' with the reason (model never loaded)
    res = RelaxCalc(model=None).calc_many([flat])[0]
    assert res["verdict"] == "fail" and res["reason"] == (
        "cannot put in the 2D frame: degenerate in-plane cell (gamma = 1.00 deg)"
    )


def test_orient_puts_a_along_x():
    s = mos2_cell(alpha=80.0, beta=95.0)
    o = orient(s)
    m = o.lattice.matrix
    assert np.abs(m[0, 1:]).max() < 1e-12 and abs(m[1, 2]) < 1e-12
    assert o.lattice.abc == pytest.approx(s.lattice.abc)
    assert o.lattice.angles == pytest.approx(s.lattice.angles)
    assert o.frac_coords == pytest.approx(s.frac_coords)


# --- phonons: the allowance near Gamma is for the acoustic modes only ----------------------


def dimer_phonopy(frequency: float):
    """Two C atoms 1.4 A apart in a 20 A box, a hand-set spring along the bond whose stretching
    (optical) mode has ``frequency`` THz (negative: imaginary). On a 2x2x2 mesh every q point
    is within ``gamma_radius`` of Gamma."""
    from phonopy import Phonopy
    from phonopy.physical_units import get_physical_units
    from phonopy.structure.atoms import PhonopyAtoms

    unit = PhonopyAtoms(
        symbols=["C", "C"], cell=np.eye(3) * 20.0, scaled_positions=[[0.5] * 3, [0.57, 0.5, 0.5]]
    )
    ph = Phonopy(unit, supercell_matrix=np.eye(3, dtype=int), primitive_matrix="P")
    mass = float(ph.primitive.masses[0])
    to_thz = get_physical_units().DefaultToTHz  # sqrt(eV/A^2/amu) -> THz
    k = math.copysign((frequency / to_thz) ** 2, frequency) * mass / 2  # eV/A^2
    fc = np.zeros((2, 2, 3, 3))
    fc[0, 0, 0, 0] = fc[1, 1, 0, 0] = k
    fc[0, 1, 0, 0] = fc[1, 0, 0, 0] = -k
    ph.force_constants = fc
    return ph


def test_optical_mode_at_minus_half_thz_at_gamma_is_unstable():
    ph = dimer_phonopy(-0.5)
    stab, _, _ = PH.analyse(ph, (2, 2, 2), dos=False)
    assert not stab.stable and stab.min_frequency == pytest.approx(-0.5, abs=1e-6)
    assert stab.worst_q == (0.0, 0.0, 0.0) and stab.score < 1
    # the three translations at Gamma are the acoustic modes, not the soft stretch
    ph.run_qpoints([[0, 0, 0]])
    freqs = ph.qpoints.frequencies[0]
    acoustic = PH.acoustic_modes(ph, np.zeros((1, 3)))[0]
    assert acoustic.sum() == 3 and not acoustic[int(np.argmin(freqs))]
    # the old criterion (allowance for every mode near Gamma) would have passed it
    ph.run_mesh([2, 2, 2], is_gamma_center=True)
    m = ph.mesh
    recip = np.linalg.inv(np.array(ph.primitive.cell)).T
    every = np.ones(m.frequencies.shape, dtype=bool)
    assert PH.stability(m.frequencies, m.qpoints, m.weights, recip, acoustic=every).stable
    assert PH.analyse(dimer_phonopy(0.5), (2, 2, 2), dos=False)[0].stable


# --- CHGNet --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model():
    return load_model()


def _upf(path, element: str):
    path.write_text(
        f'<UPF version="2.0.1">\n<PP_HEADER\n element="{element}"\n pseudo_type="NC"\n'
        f' relativistic="scalar"\n has_so="F"\n functional="PBE"\n z_valence="6.0"/>\n</UPF>\n'
    )
    return path


@pytest.mark.slow
def test_tilted_skewed_and_supercell_slabs_relax_phonons_and_dft_input(model, tmp_path):
    from topogen.dft.qe.crystal import Crystal
    from topogen.dft.qe.pwinput import pw_input

    cases = {
        **{k: mos2_cell(**v) for k, v in TILTED.items()},
        "2x1 supercell": mos2_cell(alpha=89.9, beta=90.1) * (2, 1, 1),
    }
    cases = {k: P.rattle(s, 0.02, i, k) for i, (k, s) in enumerate(cases.items())}
    relax = RelaxCalc(RelaxSettings(fmax=0.05, steps=300), model=model, threads=1)
    chain = Chain(relax, PhononCalc(PhononSettings(min_repeat_2d=4), relax=relax, dos=False))
    outs = dict(zip(cases, chain.calc_many(list(cases.values())), strict=True))
    pseudos = {el: _upf(tmp_path / f"{el}.upf", el) for el in ("Mo", "S")}
    ref = canonical_slab(reference(), 20.0)
    for name, out in outs.items():
        r, ph = out["steps"]["relax"], out["steps"]["phonons"]
        assert r["verdict"] == "pass" and r["relax_converged"], (name, r["reason"])
        s = r["structure"]
        assert max(_angles_to_layer(s)) < 1e-8, name  # still perpendicular after relaxing
        assert np.abs(s.lattice.matrix[0, 1:]).max() < 1e-8, name  # a along x
        assert vacuum_along_c(s) > 15.0, name
        assert slab_matcher().fit(ref, canonical_slab(s, 20.0)), name  # still MoS2
        assert ph["verdict"] == "pass" and ph["stable"], (name, ph["reason"])
        crystal = Crystal.from_any(s).as_2d(vacuum=15.0)
        pw = pw_input(crystal, pseudos, spin_orbit=False)
        assert pw.namelists["system"]["assume_isolated"] == "2D", name
        assert np.abs(pw.crystal.cell[2, :2]).max() < 1e-8 and "CELL_PARAMETERS" in pw.render()
    assert outs["2x1 supercell"]["steps"]["phonons"]["phonon_supercell"] == "4x6x1"


def test_oracle_rejects_a_relaxation_that_hits_the_step_limit(model):
    from topogen.models.gan3.oracle import Oracle, OracleSettings

    noisy = P.rattle(reference(), 0.15, 0, "x")
    scores = Oracle(OracleSettings(relax_steps=2), chgnet=model, threads=1)([noisy])
    assert scores.reasons[0].startswith("relaxation: not converged in 2 steps (fmax ")
    assert scores.stability[0] == 0.0 and not scores.stable[0] and scores.relaxed == [None]
