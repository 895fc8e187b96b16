"""Energy windows (band edges, the frozen window) and the Wannier90 ``.win`` input."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from topogen.dft.qe.crystal import Crystal, full_kgrid
from topogen.dft.wannier.projections import (
    ProjectionChoice,
)

__all__ = ["band_edges", "frozen_window", "win_text"]


def band_edges(eigenvalues: np.ndarray, n_occ: int) -> dict[str, float | None]:
    """VBM, CBM, direct and indirect gaps (eV) for ``n_occ`` occupied bands."""
    eig = np.asarray(eigenvalues)
    if not 0 < n_occ < eig.shape[1]:
        return {"vbm": None, "cbm": None, "gap_direct": None, "gap_indirect": None}
    vbm, cbm = float(eig[:, n_occ - 1].max()), float(eig[:, n_occ].min())
    return {
        "vbm": vbm,
        "cbm": cbm,
        "gap_direct": float((eig[:, n_occ] - eig[:, n_occ - 1]).min()),
        "gap_indirect": cbm - vbm,
    }


def frozen_window(
    eigenvalues: np.ndarray,
    n_excluded: int,
    num_wann: int,
    reference: float,
    margin: float = 1.0,
    safety: float = 0.01,
) -> tuple[float, list[str]]:
    """``dis_froz_max`` (eV): ``reference + margin``, lowered below the (num_wann+1)-th kept
    band; returns it and the problems found (a window that does not reach the reference)."""
    kept = np.asarray(eigenvalues)[:, n_excluded:]
    froz = reference + margin
    problems = []
    if kept.shape[1] > num_wann:
        limit = float(kept[:, num_wann].min()) - safety
        froz = min(froz, limit)
    if froz < reference:
        problems.append(
            f"frozen window max {froz:.3f} eV is below the reference level {reference:.3f} eV: "
            f"more than {num_wann} bands there at some k"
        )
    return froz, problems


# ---------------------------------------------------------------- files


def win_text(
    crystal: Crystal,
    choice: ProjectionChoice,
    num_bands: int,
    nbnd: int,
    kgrid: Sequence[int],
    froz_max: float | None,
    num_iter: int = 200,
    dis_num_iter: int = 500,
    scdm: bool = False,
    extra: Mapping[str, Any] | None = None,
) -> str:
    """The ``.win`` file: windows, projections (or ``auto_projections`` for SCDM), k mesh."""

    def fmt(v: Any) -> str:
        if isinstance(v, bool):
            return ".true." if v else ".false."
        return str(v)

    keys: dict[str, Any] = {
        "num_wann": choice.num_wann,
        "num_bands": num_bands,
        "spinors": choice.spinors,
        "num_iter": num_iter,
        "write_hr": True,
        "iprint": 1,
    }
    excluded = list(range(1, choice.n_excluded + 1)) + list(
        range(choice.n_excluded + num_bands + 1, nbnd + 1)
    )
    if excluded:
        keys["exclude_bands"] = _ranges(excluded)
    if num_bands > choice.num_wann:
        keys["dis_num_iter"] = dis_num_iter
        if froz_max is not None:
            keys["dis_froz_max"] = f"{froz_max:.6f}"
    if scdm:
        keys["auto_projections"] = True
    keys.update(extra or {})
    lines = [f"{k} = {fmt(v)}" for k, v in keys.items()]
    lines += ["", "begin unit_cell_cart", "ang"]
    lines += ["  " + " ".join(f"{x:16.10f}" for x in row) for row in crystal.cell]
    lines += ["end unit_cell_cart", "", "begin atoms_cart", "ang"]
    lines += [
        f"  {s} " + " ".join(f"{x:16.10f}" for x in p)
        for s, p in zip(crystal.symbols, crystal.positions, strict=True)
    ]
    lines += ["end atoms_cart", ""]
    if not scdm:
        lines += ["begin projections", *choice.projections, "end projections", ""]
    lines += ["mp_grid = " + " ".join(str(int(n)) for n in kgrid), "", "begin kpoints"]
    lines += [f"  {a:14.10f} {b:14.10f} {c:14.10f}" for a, b, c in full_kgrid(kgrid)]
    lines += ["end kpoints"]
    return "\n".join(lines) + "\n"


def _ranges(values: list[int]) -> str:
    out, start, prev = [], values[0], values[0]
    for v in [*values[1:], None]:
        if v is not None and v == prev + 1:
            prev = v
            continue
        out.append(f"{start}-{prev}" if prev > start else str(start))
        if v is not None:
            start = prev = v
    return ", ".join(out)
