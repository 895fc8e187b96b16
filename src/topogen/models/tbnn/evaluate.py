"""How good and how fast the trained network is (the paper's Sec. IV): rms band deviation /
vmax on a validation set (its own, finer k grid), the fraction of symmetry labels predicted
right per band and high-symmetry point, and the time per band structure against the
plane-wave solver and the finite-difference Lanczos baseline."""

from __future__ import annotations

import itertools
import time
from typing import Any

import numpy as np
import torch

from topogen.models.tbnn.data import Dataset, exact_energies
from topogen.models.tbnn.exact import fd_bands
from topogen.models.tbnn.network import TBNN
from topogen.models.tbnn.symmetry import group_labels, wedge_grid
from topogen.topology.batched import chern_number, k_grid

__all__ = ["chern_scores", "evaluate", "predicted_labels", "speed"]

LABEL_TOL = 1e-6  # units of vmax: the model's bands closer than this form a group


@torch.no_grad()
def predicted_labels(model: TBNN, params: torch.Tensor) -> dict[str, np.ndarray]:
    """Symmetry labels ``(n, n_bands)`` of the model's lowest bands at every high-symmetry
    point of its lattice."""
    lattice = model.tb.lattice
    out = {}
    for name, (k, power) in lattice.points.items():
        h = model.tb.hamiltonian(params, np.array([k]))[:, 0].cpu().numpy()
        rep = model.tb.rep(power)
        values, vectors = np.linalg.eigh(h)
        n = model.hparams.n_bands
        labels = []
        for e, v in zip(values, vectors, strict=True):
            top = n
            while top < len(e) and e[top] - e[top - 1] < LABEL_TOL:
                top += 1
            lab = group_labels(e[:top], v[:, :top], rep, lattice.point_order(name), LABEL_TOL)
            labels.append(lab[:n])
        out[name] = np.array(labels)
    return out


@torch.no_grad()
def evaluate(model: TBNN, data: Dataset, batch: int = 256) -> dict[str, Any]:
    """Metrics of ``model`` on ``data`` (band energies on the data's k grid)."""
    model.eval()
    vmax = float(data.settings.vmax)
    images = torch.as_tensor(data["images"], dtype=torch.float32)
    bands, params = [], []
    for i in range(0, len(images), batch):
        p = model(images[i : i + batch])
        params.append(p)
        bands.append(model.bands(p, data["kpoints"]).cpu().numpy() * vmax)
    pred, p_all = np.concatenate(bands), torch.cat(params)
    err = (pred - data["energies"]) / vmax
    labels = predicted_labels(model, p_all)
    right = {name: labels[name] == data[f"labels_{name}"] for name in labels}
    every = np.concatenate([r.ravel() for r in right.values()])
    per_sample = np.sqrt((err**2).mean(axis=(1, 2)))
    chern = chern_accuracy(model, p_all, data["chern"]) if "chern" in data else None
    return {
        "n_potentials": len(images),
        "n_kpoints": len(data["kpoints"]),
        "rms_over_vmax": float(np.sqrt((err**2).mean())),
        "rms_per_band_over_vmax": np.sqrt((err**2).mean(axis=(0, 1))).round(5).tolist(),
        "median_rms_per_potential_over_vmax": float(np.median(per_sample)),
        "label_accuracy": float(every.mean()),
        "label_accuracy_per_point": {n: float(r.mean()) for n, r in right.items()},
        "label_accuracy_per_band": {n: r.mean(axis=0).round(4).tolist() for n, r in right.items()},
        **({"chern": chern} if chern else {}),
    }


def chern_scores(
    predicted: np.ndarray, exact: np.ndarray, open_gap: np.ndarray
) -> dict[str, float]:
    """Fractions of cells whose predicted Chern number is right, and right modulo 4 (what
    the C4 and C2 labels at Gamma, M, X fix: i^C is the product of the rotation eigenvalues
    of the bands), a prediction with a closed gap (``open_gap`` False) counting wrong in
    both; ``off_by_4k``: right modulo 4 but wrong, the models that have the symmetry content
    but wind differently."""
    predicted, exact = np.asarray(predicted), np.asarray(exact)
    gap = np.asarray(open_gap, dtype=bool)
    right = (predicted == exact) & gap
    mod4 = (np.mod(predicted - exact, 4) == 0) & gap
    return {
        "accuracy": float(right.mean()),
        "accuracy_mod4": float(mod4.mean()),
        "off_by_4k": float((mod4 & ~right).mean()),
    }


@torch.no_grad()
def chern_accuracy(
    model: TBNN, params: torch.Tensor, exact: np.ndarray, grid: int = 48, gap: float = 1e-3
) -> dict[str, Any]:
    """Chern numbers of the lowest b bands of the predicted TB models (FHS on a ``grid``^2
    mesh: 48, because the trained models' hoppings reach 2.3 a and a 24^2 mesh miscounted 4%
    of them against 96^2, 48^2 none; undefined where band b + 1 comes closer than ``gap``,
    units of vmax) against the exact ones ``(n, n_bands)`` (NaN: undefined), per b: how many
    exact ones are defined, :func:`chern_scores` (an undefined prediction is wrong), and the
    share of the most common exact value (what always guessing it would score)."""
    hk = model.tb.hamiltonian(params, k_grid(grid)[..., :2].reshape(-1, 2))
    hk = hk.reshape(len(params), grid, grid, *hk.shape[-2:])
    values = torch.linalg.eigvalsh(hk)
    out = {}
    for b in range(1, exact.shape[1] + 1):
        defined = np.isfinite(exact[:, b - 1])
        if not defined.any():
            continue
        pred = chern_number(hk[defined], b).round().cpu().numpy()
        open_gap = (values[defined][..., b] - values[defined][..., b - 1]).amin(dim=(-2, -1))
        truth = exact[defined, b - 1].astype(int)
        out[f"lowest_{b}"] = {
            "defined": int(defined.sum()),
            **chern_scores(pred, truth, open_gap.cpu().numpy() > gap),
            "majority_share": float(np.bincount(truth - truth.min()).max() / len(truth)),
            "exact_values": {int(v): int((truth == v).sum()) for v in np.unique(truth)},
        }
    return out


def _seconds(fn: Any, repeat: int = 1) -> float:
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - start) / repeat


@torch.no_grad()
def speed(
    model: TBNN, data: Dataset, n_kpoints: int = 79, samples: int = 2, fd_kpoints: int = 4
) -> dict[str, Any]:
    """Seconds per band structure of ``n_kpoints`` k points (the paper's 79): the network
    (a batch of every potential in ``data``, divided by their number; and one potential
    alone), the exact solver of the data (plane waves; the bhz supercell), and for step
    potentials the 100 x 100 finite-difference Lanczos solver (timed on ``fd_kpoints`` k
    points and scaled: it costs the same at every k)."""
    model.eval()
    settings = data.settings
    lattice = model.tb.lattice
    kpoints = wedge_grid(lattice, 24)[:n_kpoints]  # a wedge grid: any 79 of its points
    images = torch.as_tensor(data["images"], dtype=torch.float32)
    model.predict_energies(images[:1], kpoints)  # warm-up
    batch = _seconds(lambda: model.predict_energies(images, kpoints)) / len(images)
    single = _seconds(lambda: model.predict_energies(images[:1], kpoints), repeat=5)
    some = data["images"][:samples]
    exact = _seconds(lambda: [exact_energies(settings, im, kpoints) for im in some]) / len(some)
    out = {
        "n_kpoints": n_kpoints,
        "network_batched_s": batch,
        "network_single_s": single,
        "exact_solver_s": exact,
        "speedup_over_exact_solver": exact / batch,
        "torch_threads": torch.get_num_threads(),
    }
    if settings.kind == "step":  # the paper's baseline: finite differences + Lanczos
        image = some[0] * settings.vmax
        fd = _seconds(lambda: fd_bands(lattice, image, kpoints[:fd_kpoints], settings.n_bands))
        fd *= n_kpoints / fd_kpoints
        out |= {
            "lanczos_fd_s": fd,
            "speedup_over_lanczos": fd / batch,
            "speedup_over_lanczos_single": fd / single,
        }
    return out


def plot_examples(model: TBNN, data: Dataset, out: str, n: int = 3, points: int = 60) -> None:
    """Figure: for the first ``n`` potentials of ``data``, the potential and its bands along
    Gamma-M-K-Gamma (p6; Gamma-X-M-Gamma on p4): exact (plane waves, the data's settings) as
    lines, the network's as dots."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from topogen.io.atomic import atomic_path

    settings, lattice = data.settings, model.tb.lattice
    names = ["G", "M", "K", "G"] if lattice.name == "p6" else ["G", "X", "M", "G"]
    unit = "Vmax" if settings.kind == "step" else "t"
    corners = [np.array(lattice.points[p][0]) for p in names]
    path, ticks, dist = [], [0.0], []
    for a, b in itertools.pairwise(corners):
        length = float(np.linalg.norm(lattice.cartesian_k(b - a)))
        m = max(2, round(points * length / 20))
        for t in np.linspace(0, 1, m, endpoint=False):
            path.append(a + t * (b - a))
            dist.append(ticks[-1] + t * length)
        ticks.append(ticks[-1] + length)
    path.append(corners[-1])
    dist.append(ticks[-1])
    kpath = np.array(path)
    n = min(n, len(data["images"]))
    fig, axes = plt.subplots(2, n, figsize=(3.6 * n, 6.4), squeeze=False)
    images = torch.as_tensor(data["images"][:n], dtype=torch.float32)
    with torch.no_grad():
        predicted = model.predict_energies(images, kpath).cpu().numpy() / settings.vmax
    for i in range(n):
        exact = exact_energies(settings, data["images"][i], kpath)
        ax = axes[0, i]
        size = data["images"].shape[1]
        frac = np.indices((2 * size, 2 * size)).reshape(2, -1).T / size - 1.0  # 2 x 2 cells
        xy = frac @ lattice.cell
        value = np.tile(data["images"][i], (2, 2)).ravel()
        ax.scatter(xy[:, 0], xy[:, 1], c=value, s=2, cmap="Greys", marker="h", vmin=0, vmax=1)
        outline = np.array([[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]]) @ lattice.cell
        ax.plot(outline[:, 0], outline[:, 1], "r-", lw=0.6)
        ax.set_aspect("equal")
        ax.set_axis_off()
        what = "V = Vmax" if settings.kind == "step" else f"m = {settings.masses[1]:g}"
        ax.set_title(f"cell {i} (black: {what}; red: one cell)", fontsize=9)
        ax = axes[1, i]
        ax.plot(dist, exact / settings.vmax, color="k", lw=1)
        ax.plot(dist, predicted[i], ".", color="tab:red", ms=2.5)
        ax.set_xticks(ticks, [r"$\Gamma$" if p == "G" else p for p in names])
        ax.set_xlim(0, ticks[-1])
        for t in ticks:
            ax.axvline(t, color="0.8", lw=0.5)
        ax.set_ylabel(f"E / {unit}" if i == 0 else "")
    axes[1, 0].plot([], [], color="k", label="exact")
    axes[1, 0].plot([], [], ".", color="tab:red", label="network")
    axes[1, 0].legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    with atomic_path(out) as part:
        fig.savefig(part, dpi=110, format="png")
    plt.close(fig)
