"""Topological invariants of tight-binding models, each cross-checked against z2pack."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from topogen.errors import TopogenError
from topogen.topology import (
    TBModel,
    Z2Result,
    bhz,
    chern_number,
    haldane,
    hamiltonian,
    is_time_reversal_symmetric,
    kane_mele,
    kramers_splitting,
    read_hr,
    spin_chern_number,
    wannier_centres,
    write_hr,
    z2_invariant,
)
from topogen.topology import batched as tb

# Small z2pack settings: enough for these gapped models, fast.
Z2PACK = {"num_lines": 11, "iterator": range(8, 27, 2), "load": False}


@pytest.fixture(scope="module")
def z2pack():
    module = pytest.importorskip("z2pack")
    logging.getLogger("z2pack").setLevel(logging.WARNING)
    return module


def _z2pack_system(z2pack, h, nocc: int):
    return z2pack.hm.System(lambda k: h(np.asarray(k, dtype=float)[None])[0], dim=3, bands=nocc)


def _z2pack_chern(z2pack, h, nocc: int) -> int:
    result = z2pack.surface.run(
        system=_z2pack_system(z2pack, h, nocc), surface=lambda s, t: [s, t, 0], **Z2PACK
    )
    return round(z2pack.invariant.chern(result))


def _z2pack_z2(z2pack, h, nocc: int) -> tuple[int, int]:
    """z2pack's Z2 with loops along k2 (pumping k1) and along k1 (pumping k2)."""
    system = _z2pack_system(z2pack, h, nocc)
    surfaces = [lambda s, t: [t, s / 2, 0], lambda s, t: [s / 2, t, 0]]
    return tuple(
        z2pack.invariant.z2(z2pack.surface.run(system=system, surface=surface, **Z2PACK))
        for surface in surfaces
    )


def _h(model: TBModel):
    return lambda k: hamiltonian(model, k)


def _kubo_chern(model: TBModel, nocc: int, n: int = 60) -> float:
    """(1/2pi) int Omega, Omega_n = -2 Im sum_m <n|d1 H|m><m|d2 H|n> / (E_n - E_m)^2."""
    k1, k2 = np.meshgrid(*[(np.arange(n) + 0.5) / n] * 2, indexing="ij")
    k = np.stack([k1, k2, 0 * k1], -1).reshape(-1, 3)
    phases = np.exp(2j * np.pi * k @ model.r_vectors.T)
    dh = [
        np.einsum("kr,rmn->kmn", phases * 2j * np.pi * model.r_vectors[:, a], model.hoppings)
        for a in (0, 1)
    ]
    energies, vectors = np.linalg.eigh(hamiltonian(model, k))
    d1, d2 = (vectors.conj().swapaxes(-1, -2) @ d @ vectors for d in dh)
    occ, emp = slice(0, nocc), slice(nocc, None)
    denominator = (energies[:, occ, None] - energies[:, None, emp]) ** 2
    omega = -2 * np.imag(d1[:, occ, emp] * d2[:, emp, occ].swapaxes(-1, -2)) / denominator
    return float(omega.sum() / n**2 / (2 * np.pi))


# --- Haldane: the sign convention ----------------------------------------------------------


@pytest.mark.parametrize(
    ("phi", "m", "expected"),
    [
        (np.pi / 2, 0.0, -1),
        (-np.pi / 2, 0.0, 1),
        (1.0, 0.2, -1),
        (-2.0, -0.2, 1),
        (np.pi / 2, 1.0, 0),
    ],
)
def test_haldane_chern_number_matches_kubo_and_z2pack(z2pack, phi, m, expected):
    model = haldane(t1=1.0, t2=0.1, phi=phi, m=m)
    assert chern_number(model, nocc=1) == expected
    assert _kubo_chern(model, 1) == pytest.approx(expected, abs=0.05)
    assert _z2pack_chern(z2pack, _h(model), 1) == -expected  # z2pack's WCC sign is opposite


def haldane_doubled(phi: float) -> TBModel:
    """Two spin copies of the same Haldane model: breaks time reversal."""
    h = haldane(phi=phi)
    return TBModel(h.r_vectors, np.kron(h.hoppings, np.eye(2)), source="doubled haldane")


def test_gap_closing_is_refused():
    with pytest.raises(TopogenError, match="bands 1 and 2 touch"):
        chern_number(haldane(t2=0.1, phi=np.pi / 2, m=3 * np.sqrt(3) * 0.1), nocc=1)


# --- Kane-Mele: Z2 in both directions ------------------------------------------------------


@pytest.mark.parametrize(
    ("lambda_v", "lambda_r", "expected"),
    [(0.1, 0.0, 1), (0.1, 0.05, 1), (0.4, 0.05, 0), (0.5, 0.0, 0)],
)
def test_kane_mele_z2_matches_z2pack(z2pack, lambda_v, lambda_r, expected):
    model = kane_mele(t=1.0, lambda_so=0.06, lambda_v=lambda_v, lambda_r=lambda_r)
    assert is_time_reversal_symmetric(model)
    result = z2_invariant(model, nocc=2)
    assert result.by_direction == (expected, expected)
    assert result.z2 == expected
    assert _z2pack_z2(z2pack, _h(model), 2) == (expected, expected)
    coarse = z2_invariant(model, nocc=2, n_loop=3)  # lines are added where WCCs move far
    assert coarse.z2 == expected and coarse.n_lines[0] > 3
    # the orbital positions shift the WCCs but not their winding
    assert z2_invariant(_h(model), nocc=2).z2 == expected
    if lambda_r == 0:  # S_z conserved: C_s = Z2 mod 2; spin up is Haldane's phi = pi/2
        assert spin_chern_number(model, nocc=2) == -expected


def test_wannier_centres_are_kramers_pairs_at_trim():
    model = kane_mele(lambda_v=0.1, lambda_r=0.05)
    for direction in (0, 1):
        pump, wcc = wannier_centres(model, nocc=2, n_loop=11, direction=direction)
        assert pump[0] == 0 and pump[-1] == 0.5
        for line in (wcc[0], wcc[-1]):
            gap = abs(line[1] - line[0])
            assert min(gap, 1 - gap) < 1e-6


def test_z2_result_refuses_disagreeing_directions_and_unconverged_runs():
    with pytest.raises(TopogenError, match="differs between loop directions"):
        _ = Z2Result(by_direction=(1, 0), converged=(True, True), n_lines=(21, 21), min_gap=0.5).z2
    with pytest.raises(TopogenError, match="did not converge"):
        _ = Z2Result(by_direction=(1, 1), converged=(True, False), n_lines=(9, 400), min_gap=0.1).z2


# --- BHZ: spin Chern ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("b", "m", "delta", "expected"),
    [(1.0, 1.0, 0.0, 1), (-1.0, -1.0, 0.0, -1), (1.0, 6.0, 0.0, -1), (1.0, -1.0, 0.0, 0),
     (1.0, 1.0, 0.3, 1), (-1.0, -1.0, 0.3, -1), (1.0, -1.0, 0.3, 0)],
)  # fmt: skip
def test_bhz_spin_chern_matches_z2pack(z2pack, b, m, delta, expected):
    model = bhz(a=1.0, b=b, m=m, delta=delta)
    assert is_time_reversal_symmetric(model)
    assert spin_chern_number(model, nocc=2) == expected
    assert z2_invariant(model, nocc=2).z2 == abs(expected) % 2
    if delta == 0:  # S_z conserved: C_s is the Chern number of the spin-up block (E up, H up)
        up = lambda k: hamiltonian(model, k)[..., 0::2, 0::2]  # noqa: E731
        assert chern_number(up, nocc=1) == expected
        assert _z2pack_chern(z2pack, up, 1) == -expected
    else:
        assert _z2pack_z2(z2pack, _h(model), 2) == (abs(expected) % 2,) * 2


def test_spin_order_blocks_gives_the_same_spin_chern():
    model = bhz(delta=0.3)
    perm = np.r_[0:4:2, 1:4:2]  # interleaved -> (E up, H up, E down, H down)
    blocks = TBModel(model.r_vectors, model.hoppings[:, perm][:, :, perm])
    assert is_time_reversal_symmetric(blocks, order="blocks")
    assert not is_time_reversal_symmetric(blocks)  # wrong ordering: not a TR pair basis
    assert spin_chern_number(blocks, nocc=2, order="blocks") == 1
    assert spin_chern_number(blocks, nocc=2, spin_op=np.diag([1, 1, -1, -1])) == 1


# --- time reversal --------------------------------------------------------------------------


def test_trs_breaking_model_is_detected():
    km = kane_mele(lambda_v=0.1, lambda_r=0.05)
    zeeman = km.hoppings.copy()
    zeeman[np.flatnonzero((km.r_vectors == 0).all(axis=1))[0]] += 0.05 * np.kron(
        np.eye(2), np.diag([1, -1])
    )
    broken = TBModel(km.r_vectors, zeeman, source="kane-mele + zeeman")
    assert is_time_reversal_symmetric(km) and is_time_reversal_symmetric(_h(km))
    assert not is_time_reversal_symmetric(broken)
    assert not is_time_reversal_symmetric(_h(broken))
    assert kramers_splitting(km) < 1e-12
    assert kramers_splitting(broken) == pytest.approx(0.1, rel=0.2)
    with pytest.raises(TopogenError, match="breaks time reversal"):
        z2_invariant(broken, nocc=2)
    assert not is_time_reversal_symmetric(haldane_doubled(np.pi / 2))


# --- _hr.dat ---------------------------------------------------------------------------------


def _split_model(model: TBModel) -> TBModel:
    """Spread t(+-a1) over two Wigner-Seitz-degenerate entries R and R +- c (degeneracy 2):
    the same H(k) in the plane k3 = 0. The on-site block gets degeneracy 3."""
    r, hop, deg = [], [], []
    for vec, block in zip(model.r_vectors, model.hoppings, strict=True):
        if abs(vec[0]) == 1 and vec[1] == 0:
            sign = int(vec[0])
            r += [vec, vec + np.array([0, 0, sign])]
            hop += [block / 2, block / 2]
            deg += [2, 2]
        else:
            r.append(vec)
            hop.append(block)
            deg.append(3 if not vec.any() else 1)
    return TBModel(np.array(r), np.array(hop), degeneracies=np.array(deg))


def test_hr_round_trip_with_degeneracies_keeps_z2(tmp_path):
    original = kane_mele(lambda_v=0.1, lambda_r=0.05)
    path = tmp_path / "km_hr.dat"
    write_hr(_split_model(original), path)
    lines = path.read_text().splitlines()
    assert int(lines[1]) == 4 and int(lines[2]) == len(original.r_vectors) + 2
    assert {2, 3} <= {int(x) for x in lines[3].split()}

    model = read_hr(path, positions=original.positions)
    assert model.source == str(path)
    k = np.random.default_rng(0).random((20, 3)) * [1, 1, 0]
    np.testing.assert_allclose(hamiltonian(model, k), hamiltonian(original, k), atol=1e-9)
    assert z2_invariant(model, nocc=2).z2 == 1

    again = tmp_path / "again_hr.dat"
    write_hr(model, again)
    assert again.read_text() == path.read_text()


def _hr_lines(tmp_path) -> list[str]:
    path = tmp_path / "ok_hr.dat"
    write_hr(haldane(), path)
    return path.read_text().splitlines()  # 2 orbitals, 7 R vectors: lines 5..32 are hoppings


def _set_field(lines: list[str], i: int, j: int, value: str) -> None:
    fields = lines[i].split()
    fields[j] = value
    lines[i] = " ".join(fields)


@pytest.mark.parametrize(
    ("edit", "line", "reason"),
    [
        (lambda ls: ls.__setitem__(1, "two"), 2, "num_wann must be an integer"),
        (lambda ls: ls.__setitem__(3, "1 1 1"), 4, "expected 7 degeneracies"),
        (lambda ls: ls.__setitem__(3, "1 1 1 0 1 1 1"), 4, "degeneracies must be >= 1"),
        (lambda ls: ls.__setitem__(9, ls[9].rsplit(maxsplit=1)[0]), 10, "expected 7 fields"),
        (lambda ls: ls.__setitem__(11, ls[11][:-4] + "abc"), 12, "hopping must be a finite"),
        (lambda ls: _set_field(ls, 6, 3, "1.5"), 7, "must be an integer, got '1.5'"),
        (lambda ls: _set_field(ls, 12, 4, "9"), 13, "orbital index out of range"),
        (lambda ls: ls.__setitem__(5, ls[4]), 6, "duplicate"),
        (lambda ls: ls.__delitem__(slice(20, None)), 21, "file ends early"),
        (lambda ls: ls.append("garbage"), 33, "unexpected content"),
    ],
)  # fmt: skip
def test_malformed_hr_names_file_and_line(tmp_path, edit, line, reason):
    lines = _hr_lines(tmp_path)
    edit(lines)
    path = tmp_path / "bad_hr.dat"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(TopogenError, match=rf"bad_hr\.dat: line {line}: .*{reason}"):
        read_hr(path)


def test_non_hermitian_hoppings_are_refused():
    model = haldane()
    hop = model.hoppings.copy()
    hop[0, 0, 1] += 0.1
    with pytest.raises(TopogenError, match="not hermitian"):
        hamiltonian(TBModel(model.r_vectors, hop, source="broken"), np.zeros(3))


# --- torch twins -----------------------------------------------------------------------------


def test_torch_chern_and_wilson_loops_equal_numpy():
    models = [haldane(phi=p, m=m) for p, m in [(0.5, 0.0), (-1.0, 0.1), (2.0, 0.0), (1.0, 1.0)]]
    hop = torch.tensor(np.stack([m.hoppings for m in models]))
    grid = tb.bloch_hamiltonian(torch.tensor(models[0].r_vectors), hop, tb.k_grid(24))
    expected = [chern_number(m, nocc=1, n=24) for m in models]
    np.testing.assert_allclose(tb.chern_number(grid, nocc=1).numpy(), expected, atol=1e-9)

    km = kane_mele(lambda_v=0.1, lambda_r=0.05)
    pump, wcc = wannier_centres(km, nocc=2, n_k=32, n_loop=9, positions=np.zeros((4, 3)))
    k = torch.zeros(9, 32, 3, dtype=torch.float64)
    k[..., 0] = torch.arange(32) / 32
    k[..., 1] = torch.tensor(pump)[:, None]
    loops = tb.bloch_hamiltonian(torch.tensor(km.r_vectors), torch.tensor(km.hoppings), k)
    diff = np.abs(tb.wannier_centres(loops, nocc=2).numpy() - wcc)
    assert np.minimum(diff, 1 - diff).max() < 1e-9


def _hermitian(x: torch.Tensor) -> torch.Tensor:
    return x + x.mH


def test_eigh_gradient_matches_finite_differences():
    rng = np.random.default_rng(1)
    a = torch.tensor(rng.normal(size=(2, 4, 4)) + 1j * rng.normal(size=(2, 4, 4)))
    a.requires_grad_()

    def f(x):  # gauge-invariant outputs: eigenvalues and the projector on the lowest two
        values, vectors = tb.eigh(_hermitian(x))
        low = vectors[..., :2]
        return values, low @ low.mH

    assert torch.autograd.gradcheck(f, (a,))
    real = torch.tensor(rng.normal(size=(5, 5)), requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: tb.eigh(_hermitian(x))[0], (real,))


def test_eigh_gradient_is_finite_and_exact_at_a_degeneracy():
    q, _ = np.linalg.qr(np.random.default_rng(2).normal(size=(4, 4)))
    base = torch.tensor(q @ np.diag([-1.0, -1.0, 2.0, 3.0]) @ q.T)  # exactly degenerate pair
    direction = torch.tensor(np.random.default_rng(3).normal(size=(4, 4)))
    direction = direction + direction.T

    def loss(t: torch.Tensor) -> torch.Tensor:
        values, vectors = tb.eigh(base + t * direction)
        low = vectors[:, :2]  # the degenerate subspace: its projector is well defined
        return (low @ low.T * direction).sum() + values[2]

    t = torch.zeros((), dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(loss(t), t)
    assert torch.isfinite(grad)
    h = 1e-6
    numeric = (loss(torch.tensor(h)) - loss(torch.tensor(-h))) / (2 * h)
    assert grad.item() == pytest.approx(numeric.item(), rel=1e-5, abs=1e-8)

    full = base.clone().requires_grad_()
    _, vectors = tb.eigh(full)
    (vectors.abs() ** 2).sum().backward()
    assert torch.isfinite(full.grad).all()


def test_gradients_flow_from_wannier_centres_to_hoppings():
    km = kane_mele(lambda_v=0.1, lambda_r=0.05)
    hop = torch.tensor(km.hoppings, requires_grad=True)
    k = torch.zeros(16, 3, dtype=torch.float64)
    k[:, 0] = torch.arange(16) / 16
    k[:, 1] = 0.2
    wcc = tb.wannier_centres(tb.bloch_hamiltonian(torch.tensor(km.r_vectors), hop, k), nocc=2)
    torch.sin(2 * np.pi * wcc).sum().backward()
    assert torch.isfinite(torch.view_as_real(hop.grad)).all() and hop.grad.abs().sum() > 0
