"""How well decoded crystals reproduce their originals (crystal-image round trips).

A decoded crystal counts as reproduced when pymatgen's StructureMatcher with its DEFAULT
tolerances (ltol 0.2, stol 0.3, angle_tol 5) matches it to the original; the site error is
the mean Cartesian distance (Angstrom, in the original cell) between matched sites.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def site_error(ref: Any, new: Any, exact: Any) -> float:
    """Mean distance (Angstrom, in ref's cell) between matched sites; NaN if unavailable."""
    try:
        like = exact.get_s2_like_s1(ref, new)
    except (ValueError, TypeError):
        like = None
    if like is None or len(like) != len(ref):
        return math.nan
    d = like.frac_coords - ref.frac_coords
    d -= np.rint(d)
    return float(np.linalg.norm(d @ ref.lattice.matrix, axis=1).mean())


def score(refs: list[Any], news: list[Any | None]) -> dict[str, Any]:
    """Reproduced fraction, site and lattice errors of ``news`` (None: undecodable)."""
    from pymatgen.analysis.structure_matcher import StructureMatcher

    default, exact = StructureMatcher(), StructureMatcher(primitive_cell=False)
    ok, errs, dlen, dang, wrong_count = [], [], [], [], 0
    for ref, new in zip(refs, news, strict=True):
        if new is None:
            ok.append(False)
            continue
        wrong_count += new.composition != ref.composition
        pr, pn = np.array(ref.lattice.parameters), np.array(new.lattice.parameters)
        dlen.append(np.abs(pn[:3] / pr[:3] - 1).mean())
        dang.append(np.abs(pn[3:] - pr[3:]).mean())
        if new.composition.reduced_composition != ref.composition.reduced_composition:
            ok.append(False)  # what StructureMatcher would say, without its primitive cells
            continue
        match = default.fit(ref, new)
        ok.append(bool(match))
        if match:
            errs.append(site_error(ref, new, exact))
    errs_f = [e for e in errs if math.isfinite(e)]
    return {
        "n": len(refs),
        "reproduced": float(np.mean(ok)) if ok else math.nan,
        "n_reproduced": int(sum(ok)),
        "n_undecodable": sum(n is None for n in news),
        "n_wrong_composition": int(wrong_count),
        "mean_site_error_A": float(np.mean(errs_f)) if errs_f else math.nan,
        "max_site_error_A": float(np.max(errs_f)) if errs_f else math.nan,
        "mean_length_error_rel": float(np.mean(dlen)) if dlen else math.nan,
        "mean_angle_error_deg": float(np.mean(dang)) if dang else math.nan,
    }
