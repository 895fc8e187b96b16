"""Edge spectra of 2D tight-binding models: surface Green's functions and finite ribbons.

Geometry. ``edge="a1"`` makes the edge run along the lattice vector a1: the crystal stays
periodic along a1 (edge momentum ``k_par`` = k1, fractional, i.e. in units of 2 pi / |a1|) and
is cut along a2, the semi-infinite direction. ``edge="a2"`` swaps the roles. Hoppings with
R3 != 0 are summed at k3 = 0 (a 2D model has none).

Principal layers. With L = max |R_perp| over the hoppings, L unit cells stacked along the
semi-infinite direction form a principal layer; hoppings then connect only neighbouring
layers. Layer n holds cells nL .. nL + L - 1, and

    H00[i, j] = sum_{R_perp = j - i} exp(2 pi i k_par R_par) t(R),
    H01[i, j] = the same sum over R_perp = L + j - i            (i, j = 0 .. L - 1 cells),

``H01`` coupling layer n to layer n + 1. ``side="lower"`` is the edge of the crystal filling
layers 0, 1, 2, ... (the edge at the smallest perpendicular coordinate); ``side="upper"`` is
that of the crystal filling ..., -2, -1, 0.

Surface Green's function. The Lopez Sancho, Lopez Sancho & Rubio decimation (J. Phys. F 15,
851 (1985)) doubles the number of decimated layers each step, so it needs ~log2(decay length
in layers) steps; the decay length grows as the broadening ``eta`` shrinks. Spectral densities
are -Im Tr G / pi over the first principal layer, divided by L: states per eV per unit cell.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal

import numpy as np

from topogen.errors import TopogenError
from topogen.io.atomic import atomic_path
from topogen.topology.hr import TBModel

__all__ = [
    "EdgeSpectrum",
    "RibbonBands",
    "edge_hamiltonians",
    "edge_spectrum",
    "layer_size",
    "plot_edge_spectrum",
    "ribbon_bands",
    "write_edge_spectrum",
]

Edge = Literal["a1", "a2"]
Side = Literal["lower", "upper"]
_AXES = {"a1": (0, 1), "a2": (1, 0)}  # edge -> (parallel axis, semi-infinite axis) of R
_MEMORY_BYTES = 256 * 2**20  # working-set budget per chunk of k points in the decimation


@dataclass(frozen=True)
class EdgeSpectrum:
    """Spectral densities on a (k_par, E) grid, in states per eV per unit cell.

    ``k``: ``(nk,)`` edge momenta (fractional, units of 2 pi / |a_edge|); ``energies``:
    ``(nE,)`` in eV (absolute, as in the model); ``surface_dos``/``bulk_dos``: ``(nk, nE)``,
    the outermost principal layer of the semi-infinite crystal and a layer deep in its bulk.
    """

    k: np.ndarray
    energies: np.ndarray
    surface_dos: np.ndarray
    bulk_dos: np.ndarray
    edge: Edge = "a1"
    side: Side = "lower"
    eta: float = 0.0
    layer_cells: int = 1


@dataclass(frozen=True)
class RibbonBands:
    """Bands of a finite ribbon: ``energies (nk, width * nw)`` ascending at each k, and
    ``cell_weight (nk, width * nw, width)``, each eigenstate's probability per ribbon cell
    (cell 0 is at the lower edge, cell ``width - 1`` at the upper one)."""

    k: np.ndarray
    energies: np.ndarray
    cell_weight: np.ndarray
    edge: Edge = "a1"

    def edge_weight(self, side: Side, cells: int) -> np.ndarray:
        """``(nk, nbands)``: probability of each state in the ``cells`` cells nearest ``side``."""
        _check_side(side)
        part = self.cell_weight[..., :cells] if side == "lower" else self.cell_weight[..., -cells:]
        return part.sum(axis=-1)


def _check_edge(edge: str) -> tuple[int, int]:
    if edge not in _AXES:
        raise TopogenError(f"unknown edge {edge!r}; use 'a1' or 'a2' (the edge runs along it)")
    return _AXES[edge]


def _check_side(side: str) -> None:
    if side not in ("lower", "upper"):
        raise TopogenError(f"unknown side {side!r}; use 'lower' or 'upper'")


def _as_1d(values: np.ndarray | list[float], what: str) -> np.ndarray:
    arr = np.asarray(values, dtype=float)
    if arr.ndim != 1 or arr.size == 0 or not np.isfinite(arr).all():
        raise TopogenError(
            f"{what} must be a non-empty 1D array of finite numbers, got {arr.shape}"
        )
    return arr


def layer_size(model: TBModel, edge: Edge) -> int:
    """Unit cells per principal layer: max |R_perp| over the nonzero hoppings (at least 1)."""
    _, perp = _check_edge(edge)
    nonzero = np.abs(model.hoppings).reshape(len(model.r_vectors), -1).max(axis=1) > 0
    return max(1, int(np.abs(model.r_vectors[nonzero, perp]).max(initial=0)))


def _perp_blocks(model: TBModel, edge: Edge, k: np.ndarray) -> dict[int, np.ndarray]:
    """T_d(k_par) = sum_{R_perp = d} exp(2 pi i k_par R_par) t(R), ``(nk, nw, nw)`` per d."""
    par, perp = _check_edge(edge)
    r = model.r_vectors
    phases = np.exp(2j * np.pi * np.outer(k, r[:, par]))
    blocks = {
        int(d): np.einsum(
            "kr,rmn->kmn", phases[:, r[:, perp] == d], model.hoppings[r[:, perp] == d]
        )
        for d in np.unique(r[:, perp])
    }
    for d, block in blocks.items():
        partner = blocks.get(-d)
        error = (
            np.abs(block).max()
            if partner is None
            else np.abs(block - partner.conj().swapaxes(-1, -2)).max()
        )
        if error > 1e-4:
            raise TopogenError(
                f"{model.source}: hoppings at R_perp = {d} and {-d} are not hermitian partners "
                f"(max deviation {error:.3g}); hoppings must satisfy t(-R) = t(R)^+"
            )
    return blocks


def _assemble(blocks: dict[int, np.ndarray], cells: int, offset: int) -> np.ndarray:
    """Block matrix ``[i, j] = T_{offset + j - i}`` over ``cells`` cells, ``(nk, cells nw, ...)``.

    ``offset = 0`` gives H00 (or a ribbon ``cells`` wide), ``offset = cells`` gives H01.
    """
    nk, nw, _ = next(iter(blocks.values())).shape
    out = np.zeros((nk, cells * nw, cells * nw), dtype=np.complex128)
    for i in range(cells):
        for j in range(cells):
            block = blocks.get(offset + j - i)
            if block is not None:
                out[:, i * nw : (i + 1) * nw, j * nw : (j + 1) * nw] = block
    return out


def edge_hamiltonians(
    model: TBModel, edge: Edge, k: np.ndarray | list[float]
) -> tuple[np.ndarray, np.ndarray]:
    """Principal-layer ``H00(k_par)`` and ``H01(k_par)``, each ``(nk, L nw, L nw)``."""
    k = _as_1d(k, "k")
    cells = layer_size(model, edge)
    blocks = _perp_blocks(model, edge, k)
    return _assemble(blocks, cells, 0), _assemble(blocks, cells, cells)


def _decimate(
    h00: np.ndarray, h01: np.ndarray, omega: np.ndarray, tol: float, max_iter: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict | None]:
    """Lopez Sancho decimation for ``N`` independent items (``h00``, ``h01``: (N, n, n)).

    Returns the converged effective Hamiltonians of the lower surface, the upper surface and
    the bulk layer, and ``None`` or a description of the items that did not converge.
    """
    n_items, n = h00.shape[0], h00.shape[-1]
    eps_lower, eps_upper, eps_bulk = (np.empty_like(h00) for _ in range(3))
    e_lo, e_up, e = h00.copy(), h00.copy(), h00.copy()
    alpha, beta = h01.copy(), h01.conj().swapaxes(-1, -2).copy()
    w = omega[:, None, None] * np.eye(n)
    active = np.arange(n_items)
    for step in range(max_iter + 1):
        coupling = np.maximum(np.abs(alpha).max(axis=(1, 2)), np.abs(beta).max(axis=(1, 2)))
        coupling = np.where(np.isfinite(coupling), coupling, np.inf)
        done = coupling < tol
        if done.any():
            eps_lower[active[done]], eps_upper[active[done]] = e_lo[done], e_up[done]
            eps_bulk[active[done]] = e[done]
            keep = ~done
            active, e_lo, e_up, e = active[keep], e_lo[keep], e_up[keep], e[keep]
            alpha, beta, w = alpha[keep], beta[keep], w[keep]
            coupling = coupling[keep]
        if active.size == 0:
            return eps_lower, eps_upper, eps_bulk, None
        if step == max_iter:
            worst = int(coupling.argmax())
            return (
                eps_lower,
                eps_upper,
                eps_bulk,
                {
                    "count": active.size,
                    "coupling": float(coupling[worst]),
                    "item": int(active[worst]),
                },
            )
        try:
            g = np.linalg.inv(w - e)
        except np.linalg.LinAlgError:
            g = np.linalg.pinv(w - e)  # a singular item stays unconverged and is reported
        ag, bg = alpha @ g, beta @ g
        agb, bga = ag @ beta, bg @ alpha
        e_lo = e_lo + agb
        e_up = e_up + bga
        e = e + agb + bga
        alpha, beta = ag @ alpha, bg @ beta
    raise AssertionError("unreachable")  # pragma: no cover


def edge_spectrum(
    model: TBModel,
    edge: Edge,
    k: np.ndarray | list[float],
    energies: np.ndarray | list[float],
    eta: float = 0.01,
    side: Side = "lower",
    tol: float = 1e-9,
    max_iter: int = 60,
) -> EdgeSpectrum:
    """Surface and bulk spectral densities of the semi-infinite crystal cut along ``edge``.

    ``k``: edge momenta (fractional); ``energies``: eV; ``eta``: broadening (eV, > 0), the
    Lorentzian half width of every state. Raises :class:`TopogenError` if the decimation has
    not converged (inter-layer coupling below ``tol`` eV) after ``max_iter`` steps, naming
    where; a larger ``eta`` or ``max_iter`` helps.
    """
    _check_side(side)
    k = _as_1d(k, "k")
    energies = _as_1d(energies, "energies")
    if not eta > 0:
        raise TopogenError(f"eta must be positive (the decimation needs E + i eta), got {eta}")
    if max_iter < 1:
        raise TopogenError(f"max_iter must be at least 1, got {max_iter}")
    h00, h01 = edge_hamiltonians(model, edge, k)
    cells, n, ne = layer_size(model, edge), h00.shape[-1], len(energies)
    omega = energies + 1j * eta
    surface = np.empty((len(k), ne))
    bulk = np.empty((len(k), ne))
    chunk = max(1, _MEMORY_BYTES // (ne * n * n * 16 * 16))
    for start in range(0, len(k), chunk):
        sl = slice(start, start + chunk)
        nk = len(k[sl])
        items = nk * ne
        a00 = np.broadcast_to(h00[sl, None], (nk, ne, n, n)).reshape(items, n, n)
        a01 = np.broadcast_to(h01[sl, None], (nk, ne, n, n)).reshape(items, n, n)
        w = np.broadcast_to(omega, (nk, ne)).reshape(items)
        eps_lower, eps_upper, eps_bulk, failed = _decimate(a00, a01, w, tol, max_iter)
        if failed is not None:
            ik, ie = divmod(failed["item"], ne)
            raise TopogenError(
                f"{model.source}: surface Green's function not converged after {max_iter} "
                f"decimation steps at {failed['count']} of {items} (k, E) points (largest "
                f"remaining inter-layer coupling {failed['coupling']:.3g} eV > tol {tol:g}, at "
                f"k_par = {k[start + ik]:.4g}, E = {energies[ie]:.4g} eV); increase eta "
                f"(now {eta:g} eV) or max_iter"
            )
        eye = np.eye(n)
        eps_surface = eps_lower if side == "lower" else eps_upper
        for out, eps in ((surface, eps_surface), (bulk, eps_bulk)):
            g = np.linalg.inv(w[:, None, None] * eye - eps)
            dos = -np.trace(g, axis1=-2, axis2=-1).imag / (np.pi * cells)
            out[sl] = dos.reshape(nk, ne)
    return EdgeSpectrum(
        k=k,
        energies=energies,
        surface_dos=surface,
        bulk_dos=bulk,
        edge=edge,
        side=side,
        eta=float(eta),
        layer_cells=cells,
    )


def ribbon_bands(
    model: TBModel, width: int, edge: Edge, k: np.ndarray | list[float] | None = None
) -> RibbonBands:
    """Diagonalise a ribbon ``width`` cells wide, periodic along ``edge`` (default k: 0..1, 201)."""
    if int(width) < 1:
        raise TopogenError(f"ribbon width must be at least 1 cell, got {width}")
    k = np.linspace(0.0, 1.0, 201) if k is None else _as_1d(k, "k")
    h = _assemble(_perp_blocks(model, edge, k), int(width), 0)
    energies, vectors = np.linalg.eigh(h)
    prob = np.abs(vectors) ** 2  # (nk, basis, band)
    weight = prob.reshape(len(k), int(width), model.num_wann, -1).sum(axis=2)
    return RibbonBands(k=k, energies=energies, cell_weight=weight.swapaxes(1, 2), edge=edge)


def plot_edge_spectrum(
    spectrum: EdgeSpectrum,
    path: str | os.PathLike[str],
    title: str | None = None,
    fermi_level: float = 0.0,
    dynamic_range: float = 1e5,
) -> None:
    """Write a PNG of the surface DOS (log colour scale) vs edge momentum and E - E_F.

    ``dynamic_range``: the colour scale spans ``max / dynamic_range .. max``.
    """
    from matplotlib.colors import LogNorm
    from matplotlib.figure import Figure

    dos = spectrum.surface_dos
    top = float(dos.max())
    if not np.isfinite(top) or top <= 0:
        raise TopogenError(f"cannot plot {path}: the surface DOS has no positive finite values")
    norm = LogNorm(vmin=top / dynamic_range, vmax=top)
    fig = Figure(figsize=(6.0, 4.5), layout="constrained")
    ax = fig.add_subplot()
    mesh = ax.pcolormesh(
        spectrum.k,
        spectrum.energies - fermi_level,
        np.clip(dos.T, top / dynamic_range, None),
        norm=norm,
        cmap="inferno",
        shading="nearest",
        rasterized=True,
    )
    fig.colorbar(mesh, ax=ax, label="surface DOS (states / eV / cell)")
    ax.axhline(0.0, color="white", lw=0.6, ls="--", alpha=0.6)
    vec = spectrum.edge.replace("a", "a_")
    ax.set_xlabel(rf"$k_\parallel$ ($2\pi/|{vec}|$)")
    ax.set_ylabel(r"$E - E_F$ (eV)")
    ax.set_title(
        title
        if title is not None
        else f"{spectrum.side} edge along {spectrum.edge} (eta = {spectrum.eta:g} eV)"
    )
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")


def write_edge_spectrum(
    model: TBModel,
    plot: str | os.PathLike[str],
    data: str | os.PathLike[str],
    *,
    mid: float,
    reference: float,
    edge: Edge = "a1",
    side: Side = "lower",
    nk: int = 121,
    ne: int = 161,
    window: tuple[float, float] = (-1.0, 1.0),
    eta: float = 0.01,
    title: str | None = None,
    **extra: float | None,
) -> EdgeSpectrum:
    """The :func:`edge_spectrum` of ``nk`` edge momenta in [-1/2, 1/2] x ``ne`` energies in
    ``window`` (eV) around ``mid`` (mid-gap), plotted with energies from ``reference`` (the
    VBM, or the Fermi level of a metal) to ``plot`` (PNG), and written with its settings and
    ``extra`` values to ``data`` (npz); both atomically."""
    from topogen.io.atomic import atomic_path

    k = np.linspace(-0.5, 0.5, nk)
    energies = mid + np.linspace(window[0], window[1], ne)
    spectrum = edge_spectrum(model, edge, k, energies, eta=eta, side=side)
    plot_edge_spectrum(spectrum, plot, title=title, fermi_level=reference)
    with atomic_path(data) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(
            fh, k=spectrum.k, energies=spectrum.energies, surface_dos=spectrum.surface_dos,
            bulk_dos=spectrum.bulk_dos, edge=edge, side=side, eta=eta, reference_eV=reference,
            **extra,
        )  # fmt: skip
    return spectrum
