"""Checks of a Wannier model against DFT: band deviations, on and off the Wannier mesh."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from topogen.topology.hr import TBModel, hamiltonian

__all__ = ["band_deviation", "on_mesh"]


def band_deviation(
    model: TBModel,
    kpoints: np.ndarray,
    dft: np.ndarray,
    first_band: int,
    lo: float,
    hi: float,
) -> dict[str, Any]:
    """Largest |E_wannier - E_dft| over DFT bands ``first_band..`` with lo <= E_dft <= hi.

    ``kpoints`` are reduced; band j of the model is matched with DFT band ``first_band + j``.
    """
    k = np.asarray(kpoints, dtype=float).reshape(-1, 3)
    ew = np.linalg.eigvalsh(hamiltonian(model, k))
    n = min(model.num_wann, dft.shape[1] - first_band)
    ed = np.asarray(dft)[:, first_band : first_band + n]
    mask = (ed >= lo) & (ed <= hi)
    if not mask.any():
        return {"max_eV": None, "mean_eV": None, "n_compared": 0, "window_eV": [lo, hi]}
    diff = np.abs(ew[:, :n] - ed)[mask]
    worst = np.unravel_index(np.where(mask, np.abs(ew[:, :n] - ed), -1).argmax(), mask.shape)
    return {
        "max_eV": float(diff.max()),
        "mean_eV": float(diff.mean()),
        "n_compared": int(mask.sum()),
        "window_eV": [lo, hi],
        "worst_k": k[worst[0]].round(6).tolist(),
        "worst_band": int(first_band + worst[1] + 1),
    }


def on_mesh(k: np.ndarray, grid: Sequence[int]) -> np.ndarray:
    """True for the k points (reduced) that lie on the unshifted ``grid``."""
    scaled = np.asarray(k) * np.asarray(grid, dtype=float)
    return (np.abs(scaled - np.round(scaled)) < 1e-4).all(axis=1)
