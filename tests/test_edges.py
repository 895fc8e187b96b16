"""Edge spectra: surface Green's functions checked against bulk bands and finite ribbons."""

from __future__ import annotations

import numpy as np
import pytest

from topogen.errors import TopogenError
from topogen.topology import TBModel, haldane, hamiltonian, kane_mele
from topogen.topology.edges import (
    edge_hamiltonians,
    edge_spectrum,
    layer_size,
    plot_edge_spectrum,
    ribbon_bands,
)


def _bulk_gap(model: TBModel, nocc: int, n: int = 90) -> tuple[float, float]:
    """(top of band nocc, bottom of band nocc + 1) over an n x n grid of the 2D zone."""
    k = np.stack(np.meshgrid(*[np.arange(n) / n] * 2, indexing="ij"), -1).reshape(-1, 2)
    bands = np.linalg.eigvalsh(hamiltonian(model, k))
    return float(bands[:, nocc - 1].max()), float(bands[:, nocc].min())


def _peaks(dos: np.ndarray, threshold: float) -> np.ndarray:
    """Mask of local maxima above ``threshold`` along a 1D periodic axis."""
    return (dos > threshold) & (dos >= np.roll(dos, 1)) & (dos > np.roll(dos, -1))


def _long_range_model() -> TBModel:
    """Haldane plus hoppings at R = +-(1, 2) and +-(2, 1): two-cell principal layers."""
    base = haldane(t2=0.1, m=0.05)
    a = np.array([[0.05, 0.02j], [0.03, -0.04]])
    b = np.array([[0.0, 0.04], [-0.01j, 0.02]])
    r = np.vstack([base.r_vectors, [[1, 2, 0], [-1, -2, 0], [2, 1, 0], [-2, -1, 0]]])
    t = np.concatenate([base.hoppings, [a, a.conj().T, b, b.conj().T]])
    return TBModel(r, t, source="long-range test model")


@pytest.mark.parametrize("edge", ["a1", "a2"])
def test_layers_reproduce_bulk_and_wide_ribbon(edge):
    """Two-cell principal layers: the bulk layer DOS equals the k_perp-integrated bulk DOS,
    and the surface DOS equals the local DOS at the edge of a wide ribbon (same broadening)."""
    model = _long_range_model()
    cells = layer_size(model, edge)
    assert cells == 2
    assert layer_size(haldane(), edge) == 1
    k = np.array([0.13, 0.41])
    energies = np.linspace(-3.5, 3.5, 29)
    eta = 0.2  # a wide ribbon with this broadening looks semi-infinite from its edge
    h00, h01 = edge_hamiltonians(model, edge, k)
    assert h00.shape == h01.shape == (2, 4, 4)
    assert np.allclose(h00, h00.conj().swapaxes(-1, -2))

    par, perp = (0, 1) if edge == "a1" else (1, 0)
    k_perp = (np.arange(2000) + 0.5) / 2000
    grid = np.zeros((len(k), len(k_perp), 2))
    grid[..., par], grid[..., perp] = k[:, None], k_perp
    bands = np.linalg.eigvalsh(hamiltonian(model, grid))
    lorentz = eta / np.pi / ((energies - bands[..., None]) ** 2 + eta**2)
    bulk = lorentz.sum(axis=2).mean(axis=1)

    width = 36
    ribbon = ribbon_bands(model, width, edge, k)
    lorentz = eta / np.pi / ((energies - ribbon.energies[..., None]) ** 2 + eta**2)
    for side in ("lower", "upper"):
        spectrum = edge_spectrum(model, edge, k, energies, eta=eta, side=side)
        assert spectrum.surface_dos.shape == spectrum.bulk_dos.shape == (2, 29)
        assert spectrum.layer_cells == 2
        np.testing.assert_allclose(spectrum.bulk_dos, bulk, atol=1e-6)
        weight = ribbon.edge_weight(side, cells)[..., None]
        local = (weight * lorentz).sum(axis=1) / cells
        np.testing.assert_allclose(spectrum.surface_dos, local, atol=1e-5)


@pytest.mark.parametrize(("lambda_v", "topological"), [(0.1, True), (0.4, False)])
def test_kane_mele_edge_states_cross_the_gap_only_in_qsh_phase(lambda_v, topological):
    model = kane_mele(lambda_so=0.06, lambda_v=lambda_v)
    bottom, top = _bulk_gap(model, nocc=2)
    assert top - bottom > 0.1
    centre, half = (top + bottom) / 2, (top - bottom) / 2
    energies = np.linspace(centre - 0.8 * half, centre + 0.8 * half, 17)
    k = np.linspace(0, 1, 240, endpoint=False)
    spectrum = edge_spectrum(model, "a1", k, energies, eta=0.003)
    ratio = (spectrum.surface_dos / spectrum.bulk_dos).max(axis=0)  # best k at each energy
    if topological:
        assert (ratio > 300).all(), ratio.min()
        assert (spectrum.surface_dos.max(axis=0) > 10).all()
    else:
        assert (ratio < 20).all(), ratio.max()
        assert spectrum.surface_dos.max() < 1


def test_haldane_has_one_chiral_mode_per_edge():
    k = np.linspace(0, 1, 300, endpoint=False)
    energies = np.linspace(-0.35, 0.35, 8)
    eta = 0.003
    slopes = {}
    for phi in (np.pi / 2, -np.pi / 2):
        model = haldane(t2=0.1, phi=phi)
        bottom, top = _bulk_gap(model, nocc=1)
        assert bottom < energies[0] and energies[-1] < top
        for side in ("lower", "upper"):
            dos = edge_spectrum(model, "a1", k, energies, eta=eta, side=side).surface_dos
            where = []
            for column in dos.T:
                peaks = np.flatnonzero(_peaks(column, 0.1 / (np.pi * eta)))
                assert len(peaks) == 1, f"phi={phi:.2f} {side}: modes at k = {k[peaks]}"
                where.append(k[peaks[0]])
            steps = np.diff(where)
            assert (np.abs(steps) < 0.1).all()  # one continuous branch across the gap
            assert len(set(np.sign(steps))) == 1  # monotonic: chiral, not a pair
            slopes[phi, side] = np.sign(steps[0])
    for phi in (np.pi / 2, -np.pi / 2):
        assert slopes[phi, "lower"] == -slopes[phi, "upper"]  # opposite edges, opposite ways
        assert slopes[phi, "lower"] == -slopes[-phi, "lower"]  # time reversal flips them


@pytest.mark.parametrize(
    ("model", "edge", "window"),
    [
        (kane_mele(lambda_so=0.06, lambda_v=0.1), "a1", 0.15),
        (haldane(t2=0.1), "a2", 0.4),
    ],
    ids=["kane-mele", "haldane"],
)
def test_in_gap_surface_states_match_ribbon_edge_bands(model, edge, window):
    k = np.linspace(0.38, 0.62, 7)
    energies = np.linspace(-window, window, 481)
    eta = 1e-3
    ribbon = ribbon_bands(model, 16, edge, k)
    matched = 0
    for side in ("lower", "upper"):
        dos = edge_spectrum(model, edge, k, energies, eta=eta, side=side).surface_dos
        weight = ribbon.edge_weight(side, 6)
        for i in range(len(k)):
            peaks = _peaks(dos[i], 0.1 / (np.pi * eta))
            peaks[[0, -1]] = False
            found = energies[peaks]
            bands = ribbon.energies[i]
            edge_bands = np.unique(
                np.round(bands[(weight[i] > 0.5) & (np.abs(bands) < window)], 6)
            )  # Kramers pairs on one edge are degenerate
            assert len(found) == len(edge_bands), (side, k[i], found, edge_bands)
            np.testing.assert_allclose(found, edge_bands, atol=3e-3)
            matched += len(found)
    assert matched >= 2 * len(k)


def test_plot_edge_spectrum_writes_png(tmp_path):
    model = kane_mele(lambda_so=0.06, lambda_v=0.1)
    spectrum = edge_spectrum(
        model, "a1", np.linspace(0, 1, 120), np.linspace(-1.0, 1.0, 100), eta=0.01
    )
    target = tmp_path / "figures" / "edge.png"
    plot_edge_spectrum(spectrum, target, title="Kane-Mele zigzag edge", fermi_level=0.0)
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in target.parent.iterdir()] == ["edge.png"]  # no temp files left


def test_errors_are_clear():
    model = haldane()
    k, energies = [0.1, 0.2], [0.0, 0.5]
    with pytest.raises(TopogenError, match="unknown edge"):
        edge_spectrum(model, "a3", k, energies)
    with pytest.raises(TopogenError, match="unknown side"):
        edge_spectrum(model, "a1", k, energies, side="left")
    with pytest.raises(TopogenError, match="eta must be positive"):
        edge_spectrum(model, "a1", k, energies, eta=0.0)
    with pytest.raises(TopogenError, match=r"not converged after 2 decimation steps.*increase eta"):
        edge_spectrum(model, "a1", k, energies, eta=1e-4, max_iter=2)
    with pytest.raises(TopogenError, match="width"):
        ribbon_bands(model, 0, "a1")
    broken = TBModel(model.r_vectors, model.hoppings * (1 + 0.5j))
    with pytest.raises(TopogenError, match="hermitian"):
        edge_spectrum(broken, "a1", k, energies)
