"""Spin Chern number along a chosen axis: |C_s| = 2 with Z2 = 0 is found, the axis with the
largest spin gap is picked, and the known models keep their answers (z2pack cross-checks)."""

from __future__ import annotations

import numpy as np
import pytest
from test_topology import Z2PACK, _z2pack_chern, _z2pack_z2, z2pack  # noqa: F401

from topogen.topology import (
    bhz,
    chern_number,
    hamiltonian,
    is_time_reversal_symmetric,
    kane_mele,
    spin_axis_operator,
    spin_chern,
    spin_chern_number,
    z2_invariant,
)
from topogen.topology.analysis import plot_spin_flow
from topogen.topology.invariants import spin_resolved_centres
from topogen.topology.models import bhz_pair


def _h(model):
    return lambda k: hamiltonian(model, k)


def test_spin_axis_operator_is_the_papers_axis():
    assert np.allclose(spin_axis_operator(2, np.pi / 2), np.diag([1, -1]))
    assert np.allclose(spin_axis_operator(2, 0.0), [[0, 1], [1, 0]])
    n = spin_axis_operator(4, np.pi / 8)
    assert np.allclose(n @ n, np.eye(4))  # a unit axis: eigenvalues +-1
    assert np.isclose(n[0, 0], np.sin(np.pi / 8)) and np.isclose(n[0, 1], np.cos(np.pi / 8))


@pytest.mark.parametrize("spin_phi", [np.pi / 2, np.pi / 8, 0.0])
def test_two_coupled_bhz_copies_have_spin_chern_two_and_z2_zero(z2pack, spin_phi):  # noqa: F811
    model = bhz_pair(coupling=0.2, delta=0.1, spin_phi=spin_phi)
    assert is_time_reversal_symmetric(model)
    # S_z (of the rotated frame) is not conserved: the coupling mixes the spins
    sz = spin_axis_operator(8, spin_phi)
    h0 = model.hoppings[[tuple(r) for r in model.r_vectors].index((0, 0, 0))]
    assert np.abs(h0 @ sz - sz @ h0).max() > 0.1
    z2 = z2_invariant(model, nocc=4)
    assert z2.by_direction == (0, 0) and z2.z2 == 0
    result = spin_chern(model, nocc=4, spin_gap_tol=0.05)
    assert result.value == 2.0
    assert np.isclose(result.phi, spin_phi)  # the axis of the largest spin gap
    assert result.spin_gap == pytest.approx(0.965, abs=0.005)
    assert result.spin_gap == max(result.gaps.values()) and len(result.gaps) == 8
    if spin_phi == 0.0:  # along s_z the spin gap nearly closes: C_s there is undefined
        assert result.gaps[np.pi / 2] < 0.05
        with pytest.raises(Exception, match="P S P closes"):
            spin_chern_number(model, nocc=4, spin_gap_tol=0.05)
        assert _z2pack_z2(z2pack, _h(model), 4) == (0, 0)
    # a fixed axis is honoured
    fixed = spin_chern(model, nocc=4, phis=spin_phi)
    assert fixed.value == 2.0 and list(fixed.gaps) == [pytest.approx(spin_phi)]


def test_uncoupled_pair_spin_up_chern_is_two_as_z2pack_finds(z2pack):  # noqa: F811
    model = bhz_pair(coupling=0.0, delta=0.0)
    up = lambda k: hamiltonian(model, k)[..., 0::2, 0::2]  # noqa: E731
    assert chern_number(up, nocc=2) == 2
    assert _z2pack_chern(z2pack, up, 2) == -2  # z2pack's WCC sign is opposite
    assert spin_chern(model, nocc=4).value == 2.0


@pytest.mark.parametrize(
    ("model", "nocc", "z2", "cs"),
    [
        (kane_mele(lambda_v=0.1), 2, 1, -1.0),
        (kane_mele(lambda_v=0.5), 2, 0, 0.0),
        (bhz(m=1.0, delta=0.3), 2, 1, 1.0),
        (bhz(m=-1.0, delta=0.3), 2, 0, 0.0),
        (bhz(b=1.0, m=6.0), 2, 1, -1.0),
    ],
)
def test_known_models_keep_their_answers_with_the_axis_chooser(model, nocc, z2, cs):
    result = spin_chern(model, nocc)
    assert result.value == cs
    assert np.isclose(result.phi, np.pi / 2)  # S_z conserved (or nearly): z has the largest gap
    assert z2_invariant(model, nocc).z2 == z2 == abs(int(cs)) % 2


def _winding(wcc: np.ndarray) -> float:
    """Net winding of a set of Wannier centres over the pump (their sum is continuous)."""
    total = np.unwrap(2 * np.pi * wcc.sum(axis=1))
    return (total[-1] - total[0]) / (2 * np.pi)


@pytest.mark.parametrize(
    ("model", "cs"),
    [
        (kane_mele(lambda_v=0.1), -1.0),
        (kane_mele(lambda_so=-0.06), 1.0),
        (kane_mele(lambda_v=0.5), 0.0),
        (kane_mele(lambda_r=0.05), -1.0),  # S_z not conserved: the P S P sectors still wind
        (bhz(m=1.0, delta=0.3), 1.0),
    ],
)
def test_spin_resolved_flow_winds_as_the_spin_chern_number(model, cs, tmp_path):
    pump, plus, minus = spin_resolved_centres(model, 2)
    assert pump[0] == 0.0 and pump[-1] == 1.0 and plus.shape == minus.shape == (41, 1)
    up, down = _winding(plus), _winding(minus)
    assert np.isclose(up, round(up), atol=1e-6) and np.isclose(up, -down, atol=1e-6)
    assert np.isclose(-(up - down) / 2, cs) and spin_chern_number(model, 2) == cs
    plot_spin_flow(model, 2, tmp_path / "flow.png", title="a model")
    from PIL import Image

    assert Image.open(tmp_path / "flow.png").size == (720, 480)
