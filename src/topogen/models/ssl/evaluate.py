"""What the generator makes of corrupted held-out crystals, measured (Liu et al.'s metrics).

For a mask type ("species": every atom of one species; "fraction" f: a fraction f of the
atoms) and a noise ratio, every held-out crystal is corrupted (seed (seed, k)), the generator
fills in the masked species (argmax) and moves every atom by its predicted displacement,
and the result, in the crystal's own cell, is measured:

- ``structural_validity``: no two atoms closer than 0.5 A (periodic images included);
- ``compositional_validity``: SMACT charge neutrality + electronegativity (a callable the
  caller passes: :func:`topogen.screen.validity.composition_problem` in the CLI);
- ``species_recovery``: masked atoms given their original species;
- ``compositional_similarity``: cosine of the element-count vectors of result and original;
- ``structural_similarity``: 1 - rms(result - original) / rms(input - original), positions
  mean-free per crystal: 1 is a perfect denoising, 0 no better than the corrupted input, < 0
  worse. Ours: the paper's exact normalisation is not reproduced here;
- ``novelty``: structurally valid results that match no training crystal (pymatgen
  StructureMatcher, default tolerances, among training crystals of the same reduced formula).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from topogen.models.ssl.corruption import center, corrupt
from topogen.models.ssl.crystals import Crystal, collate, structure_of
from topogen.models.ssl.model import Generator
from topogen.structure.sanity import MIN_DISTANCE, structure_problem

MASKS = {"species": ("species", 0.0), "15%": ("fraction", 0.15), "30%": ("fraction", 0.30)}
NOISES = (0.1, 0.2, 0.4)


@torch.no_grad()
def reconstruct(
    model: Generator,
    items: Sequence[Crystal],
    mode: str,
    fraction: float,
    noise: float,
    seed: int,
) -> list[tuple[Crystal, np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """Per crystal: (crystal, masked, species, positions, corrupted positions)."""
    model.eval()
    out = []
    for k, c in enumerate(items):
        batch = collate([c]).to("cpu", torch.float32)
        corr = corrupt(batch, np.random.default_rng([seed, k]), noise_ratio=noise,
                       mask_fraction=fraction, mode=mode)  # fmt: skip
        logits, disp = model(corr.inputs, batch, corr.noisy)
        species = torch.where(corr.masked, logits.argmax(-1), batch.species)
        pos = corr.noisy + center(disp, batch)
        out.append((c, corr.masked.numpy(), species.numpy(), pos.double().numpy(),
                    corr.noisy.double().numpy()))  # fmt: skip
    return out


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    va, vb = np.bincount(a, minlength=118), np.bincount(b, minlength=118)
    return float(va @ vb / (np.linalg.norm(va) * np.linalg.norm(vb)))


def _rms_centred(x: np.ndarray) -> float:
    x = x - x.mean(axis=0)
    return float(np.sqrt((x * x).sum(axis=1).mean()))


class Training:
    """The training crystals by reduced formula, for novelty."""

    def __init__(self, structures: Sequence[Any]) -> None:
        from pymatgen.analysis.structure_matcher import StructureMatcher

        self.matcher = StructureMatcher()
        self.by_formula: dict[str, list[Any]] = {}
        for s in structures:
            self.by_formula.setdefault(s.composition.reduced_formula, []).append(s)

    def is_novel(self, structure: Any) -> bool:
        same = self.by_formula.get(structure.composition.reduced_formula, [])
        return not any(self.matcher.fit(structure, t) for t in same)


def generation_metrics(
    model: Generator,
    items: Sequence[Crystal],
    training: Training,
    mode: str,
    fraction: float,
    noise: float,
    *,
    seed: int = 0,
    composition_ok: Callable[[Any], bool] | None = None,
) -> dict[str, Any]:
    """The metrics of the module docstring for one mask type and noise ratio."""
    rows = []
    for c, masked, species, pos, noisy in reconstruct(model, items, mode, fraction, noise, seed):
        clean = c.positions.numpy()
        s = structure_of(c, species, pos)
        valid = structure_problem(s, MIN_DISTANCE) is None
        rows.append({
            "structural_validity": valid,
            "compositional_validity": composition_ok(s.composition) if composition_ok else None,
            "species_recovery": float(np.mean(species[masked] == c.species.numpy()[masked])),
            "compositional_similarity": _cosine(species, c.species.numpy()),
            "structural_similarity": 1.0 - _rms_centred(pos - clean) / _rms_centred(noisy - clean),
            "novel": training.is_novel(s) if valid else None,
        })  # fmt: skip
    result: dict[str, Any] = {"n": len(rows)}
    for key in rows[0] if rows else []:
        values = [r[key] for r in rows if r[key] is not None]
        name = "novelty" if key == "novel" else key
        result[name] = float(np.mean(values)) if values else None
    return result


def metrics_table(
    models: dict[str, Generator],
    items: Sequence[Crystal],
    training: Training,
    *,
    seed: int = 0,
    noises: Sequence[float] = NOISES,
    composition_ok: Callable[[Any], bool] | None = None,
    log: Any = print,
) -> list[dict[str, Any]]:
    """One row per model x mask type x noise ratio (the same corruptions for every model)."""
    rows = []
    for name, model in models.items():
        for mask, (mode, fraction) in MASKS.items():
            for noise in noises:
                m = generation_metrics(model, items, training, mode, fraction, noise, seed=seed,
                                       composition_ok=composition_ok)  # fmt: skip
                rows.append({"model": name, "mask": mask, "noise": noise, **m})
                log(f"ssl metrics: {name} mask {mask} noise {noise}: " + ", ".join(
                    f"{k} {v:.3f}" for k, v in m.items() if isinstance(v, float)))  # fmt: skip
    return rows


PLOTTED = ("compositional_validity", "species_recovery", "structural_similarity", "novelty")


def plot_metrics(rows: Sequence[dict[str, Any]], path: Any, title: str) -> None:
    """The metrics against the noise ratio, one panel per metric and mask type, one line per
    model (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    masks = list(dict.fromkeys(r["mask"] for r in rows))
    fig, axes = plt.subplots(
        len(PLOTTED), len(masks), figsize=(3.6 * len(masks), 2.4 * len(PLOTTED)), squeeze=False
    )
    for a, key in enumerate(PLOTTED):
        for b, mask in enumerate(masks):
            ax = axes[a][b]
            for model in dict.fromkeys(r["model"] for r in rows):
                sel = [r for r in rows if r["model"] == model and r["mask"] == mask]
                ax.plot([r["noise"] for r in sel], [r[key] for r in sel], "o-", label=model)
            ax.set_title(f"mask: {mask}", fontsize=9)
            ax.set_xlabel("noise ratio", fontsize=8)
            ax.set_ylabel(key.replace("_", " "), fontsize=8)
    axes[0][0].legend(fontsize=7)
    fig.suptitle(f"self-supervised generator: {title}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
