"""Inverse design through the network (the paper's Sec. VI): the geometry enters a
differentiable potential image, the trained network turns it into a symmetric TB model,
and gradients of a band objective flow back to the geometry.

Geometry: six circular holes (V = 0 in a V = vmax background) at distance R from the
rotation centre, on the lattice directions, with soft edges (a logistic step of
``softness`` a), so that the image is smooth in R. Two tasks:

- the p/d band inversion: the gap E(E1) - E(E2) at Gamma (the lowest bands of the C6
  labels 1 and 2) changes sign as the holes move out; its zero is found by gradient
  descent on (E(E1) - E(E2))^2 in R and compared with the exact one (plane waves on the
  same soft images, a scan + linear interpolation). The paper finds the crossing at R = a/3;
  our holes (radius 0.12 a) cross between 0.30 and 0.35 a.
- target fit: the bands of one geometry (R, hole) are the target; (R, hole) are recovered
  by gradient descent on the band error from another start.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from topogen.models.tbnn.exact import PlaneWaves
from topogen.models.tbnn.network import TBNN, sector_targets
from topogen.models.tbnn.settings import DataSettings
from topogen.models.tbnn.symmetry import Lattice

__all__ = ["DesignSettings", "find_inversion", "fit_target", "hole_image", "inversion_gap"]


@dataclass
class DesignSettings:
    """``hole``: hole radius (a); ``softness``: edge width (a); ``start``: initial R;
    ``steps``/``lr``: Adam on the geometry; ``scan``: radii of the exact scan; ``ecut``:
    the exact solver's cut-off (that of the network's training data)."""

    hole: float = 0.12
    softness: float = 0.01
    start: float = 0.2
    steps: int = 150
    lr: float = 0.01
    scan: int = 17
    ecut: float = DataSettings.ecut


def hole_image(
    lattice: Lattice, size: int, radius: torch.Tensor, hole: torch.Tensor | float, softness: float
) -> torch.Tensor:
    """Potential image (size, size) in units of vmax, differentiable in ``radius`` and
    ``hole``."""
    f = torch.arange(size, dtype=torch.float64) / size
    f1, f2 = torch.meshgrid(f, f, indexing="ij")
    frac = torch.stack([f1, f2], dim=-1).reshape(-1, 2)
    cell = torch.as_tensor(lattice.cell)
    inv = torch.linalg.inv(cell)
    inside = torch.zeros(size * size, dtype=torch.float64)
    radius = torch.as_tensor(radius, dtype=torch.float64)
    hole = torch.as_tensor(hole, dtype=torch.float64)
    for j in range(lattice.order):
        angle = 2 * math.pi * j / lattice.order
        centre = radius * torch.tensor([math.cos(angle), math.sin(angle)], dtype=torch.float64)
        d = frac - centre @ inv
        d = d - torch.round(d)  # nearest periodic image
        dist = torch.linalg.norm(d @ cell, dim=-1)
        inside = torch.maximum(inside, torch.sigmoid((hole - dist) / softness))
    return (1.0 - inside).reshape(size, size)


def _gap(model: TBNN, image: torch.Tensor) -> torch.Tensor:
    params = model(image.unsqueeze(0).float()).double()
    blocks = model.tb.sector_energies(params, "G")
    return (blocks[1][0, 0] - blocks[2][0, 0]) * model.hparams.vmax


def inversion_gap(model: TBNN, radii: np.ndarray, settings: DesignSettings) -> dict[str, Any]:
    """E(E1) - E(E2) at Gamma (E0) against R: the network's and the exact one."""
    lattice, size = model.tb.lattice, model.hparams.size
    pw = PlaneWaves(lattice, settings.ecut)
    net, exact = [], []
    for r in radii:
        image = hole_image(lattice, size, torch.tensor(r), settings.hole, settings.softness)
        with torch.no_grad():
            net.append(float(_gap(model, image)))
        bands = pw.bands(image.numpy() * model.hparams.vmax, np.zeros((1, 2)), 12)
        e, lab = bands.points["G"], bands.labels["G"]
        exact.append(float(e[lab == 1][0] - e[lab == 2][0]) if {1, 2} <= set(lab) else math.nan)
    return {"radius": list(map(float, radii)), "network": net, "exact": exact}


def _zero(x: list[float], y: list[float]) -> float | None:
    for i in range(len(x) - 1):
        if (
            np.isfinite(y[i])
            and np.isfinite(y[i + 1])
            and y[i] * y[i + 1] <= 0
            and y[i] != y[i + 1]
        ):
            return float(x[i] - y[i] * (x[i + 1] - x[i]) / (y[i + 1] - y[i]))
    return None


def find_inversion(model: TBNN, settings: DesignSettings | None = None) -> dict[str, Any]:
    """R of the p/d inversion by gradient descent through the network, next to the exact
    crossing from a scan; also the scan itself."""
    settings = settings or DesignSettings()
    model.eval()
    lattice, size = model.tb.lattice, model.hparams.size
    radius = torch.tensor(settings.start, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([radius], lr=settings.lr)
    history = []
    for _ in range(settings.steps):
        opt.zero_grad()
        gap = _gap(model, hole_image(lattice, size, radius, settings.hole, settings.softness))
        loss = (gap / model.hparams.vmax) ** 2
        loss.backward()
        opt.step()
        history.append((float(radius.detach()), float(gap.detach())))
    scan = inversion_gap(model, np.linspace(0.1, 0.5, settings.scan), settings)
    return {
        "designed_radius": float(radius),
        "designed_gap": history[-1][1],
        "exact_crossing": _zero(scan["radius"], scan["exact"]),
        "network_crossing": _zero(scan["radius"], scan["network"]),
        "history": history,
        "scan": scan,
    }


def fit_target(
    model: TBNN,
    target: tuple[float, float],
    start: tuple[float, float],
    settings: DesignSettings | None = None,
) -> dict[str, Any]:
    """Recover the geometry (R, hole) whose exact bands (plane waves, on the model's k
    grid, with their labels) are the target, by gradient descent on the network's training
    loss (band error + per-irrep-block error at the high-symmetry points: sorted bands
    alone hardly change across the p/d inversion) from ``start``."""
    settings = settings or DesignSettings()
    model.eval()
    lattice, size, vmax = model.tb.lattice, model.hparams.size, model.hparams.vmax
    image = hole_image(lattice, size, torch.tensor(target[0]), target[1], settings.softness)
    kpoints = model.kpoints.cpu().numpy()
    goal = PlaneWaves(lattice, settings.ecut).bands(
        image.numpy() * vmax, kpoints, model.hparams.n_bands
    )
    batch = {"energies": torch.as_tensor(goal.energies[None] / vmax)}
    for point in lattice.points:
        blocks = sector_targets(model.tb, point, goal.points[point][None], goal.labels[point][None])
        batch |= {f"block_{point}_{j}": torch.as_tensor(t / vmax) for j, t in blocks.items()}
    geometry = torch.tensor(start, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([geometry], lr=settings.lr)
    for _ in range(settings.steps):
        opt.zero_grad()
        img = hole_image(lattice, size, geometry[0], geometry[1], settings.softness)
        parts = model.loss({**batch, "images": img.unsqueeze(0)})
        loss = parts["band"] + parts["block"]
        loss.backward()
        opt.step()
    return {
        "target": list(target),
        "start": list(start),
        "found": geometry.detach().tolist(),
        "band_rms_over_vmax": float(parts["band"].detach().sqrt()),
        "block_rms_over_vmax": float(parts["block"].detach().sqrt()),
    }


def plot_design(result: dict[str, Any], out: str) -> None:
    """Figure: the p/d gap at Gamma against R, network and exact, with the designed R."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from topogen.io.atomic import atomic_path

    inv = result["inversion"]
    scan = inv["scan"]
    fig, ax = plt.subplots(figsize=(5.2, 3.6))
    ax.plot(scan["radius"], scan["exact"], "k-o", ms=3, label="exact (plane waves)")
    ax.plot(scan["radius"], scan["network"], "-s", color="tab:red", ms=3, label="network")
    ax.axhline(0, color="0.6", lw=0.6)
    ax.axvline(inv["designed_radius"], color="tab:blue", ls="--", lw=1,
               label=f"gradient descent: R = {inv['designed_radius']:.3f} a")  # fmt: skip
    ax.set_xlabel("hole distance R from the centre (a)")
    ax.set_ylabel(r"$E(E_1) - E(E_2)$ at $\Gamma$ (E0)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(out) as part:
        fig.savefig(part, dpi=110, format="png")
    plt.close(fig)
