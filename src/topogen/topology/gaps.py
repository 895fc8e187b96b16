"""Gaps and the time-reversal test of any tight-binding model, from its bands on k grids."""

from __future__ import annotations

import numpy as np

from topogen.topology.hr import TBModel, hamiltonian

__all__ = ["model_gap", "trs_asymmetry"]


def model_gap(model: TBModel, nocc: int, n: int = 24) -> dict[str, float | None]:
    """Direct and indirect gaps (eV) of the model's lowest ``nocc`` bands on an n x n grid,
    and the band edges: ``vbm`` (top of band ``nocc``) and ``cbm`` (bottom of the next)."""
    if not 0 < nocc < model.num_wann:
        return {"gap_direct": None, "gap_indirect": None, "vbm": None, "cbm": None}
    g = np.stack(np.meshgrid(np.arange(n) / n, np.arange(n) / n, indexing="ij"), -1).reshape(-1, 2)
    k = np.column_stack([g, np.zeros(len(g))])
    e = np.linalg.eigvalsh(hamiltonian(model, k))
    vbm, cbm = float(e[:, nocc - 1].max()), float(e[:, nocc].min())
    return {
        "gap_direct": float((e[:, nocc] - e[:, nocc - 1]).min()),
        "gap_indirect": cbm - vbm,
        "vbm": vbm,
        "cbm": cbm,
    }


def trs_asymmetry(model: TBModel, n: int = 8, seed: int = 0) -> float:
    """max |E_n(k) - E_n(-k)| (eV) at ``n`` random in-plane k: zero under time reversal.

    Basis independent and, unlike the Kramers splitting at the TRIM (which sit on even
    Wannier meshes, where the model reproduces DFT by construction), tested off the mesh.
    """
    k = np.random.default_rng(seed).uniform(0, 1, (n, 3))
    k[:, 2] = 0.0
    plus = np.linalg.eigvalsh(hamiltonian(model, k))
    minus = np.linalg.eigvalsh(hamiltonian(model, -k))
    return float(np.abs(plus - minus).max())
