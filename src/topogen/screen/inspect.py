"""One candidate's CHGNet relaxation and phonons, in full, for its card and the report.

The funnel keeps only verdicts and a few numbers per structure; for a candidate that reaches
DFT the user wants to look: the relaxation from the generated structure (energy and largest
force per FIRE step) and the phonon dispersion along the 2D high-symmetry path with the
DOS. Both are recomputed here with the funnel's own calculators and settings
(:class:`~topogen.calc.calculators.RelaxCalc`, :func:`~topogen.calc.phonons.phonons`), so
the verdicts match the funnel's.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import numpy as np

from topogen.screen.funnel import FunnelOptions

__all__ = ["inspect_structure"]


def inspect_structure(
    structure: Any,
    options: FunnelOptions | None = None,
    *,
    model: Any = None,
    threads: int | None = None,
) -> dict[str, Any]:
    """Relax ``structure`` (pymatgen) as the funnel does, then its phonons with the
    dispersion; a JSON-ready record (arrays as lists)."""
    from topogen.calc.calculators import RelaxCalc
    from topogen.calc.phonons import phonons

    opts = options or FunnelOptions()
    relax = RelaxCalc(opts.relax_settings(), model=model, threads=threads)
    r = relax.relax_many([structure])[0]
    out: dict[str, Any] = {
        "relax": {
            "converged": r.converged,
            "steps": r.steps,
            "energy_per_atom": r.energy_per_atom,
            "fmax": r.fmax,
            "error": r.error or relax.refused.get(0),
            "energy_per_step": [e for e, _ in r.history],
            "fmax_per_step": [f for _, f in r.history],
            "fmax_limit": opts.fmax,
        },
        "phonons": None,
    }
    if r.error or 0 in relax.refused:
        return out
    try:
        p = phonons(
            r.structure, model=relax.model, dispersion=True, **asdict(opts.phonon_settings())
        )
    except Exception as exc:  # the candidate's figure says why
        out["phonons"] = {"error": f"{type(exc).__name__}: {exc}"[:300]}
        return out
    path = p.band_path
    out["phonons"] = {
        "error": None,
        "stable": p.stable,
        "reason": p.reason(),
        "supercell": list(p.supercell),
        "min_frequency": p.min_frequency,
        "tol": opts.tol,
        "distance": path.distance.tolist() if path else [],
        "ticks": list(path.ticks) if path else [],
        "labels": list(path.labels) if path else [],
        "frequencies": np.asarray(p.band_frequencies).tolist(),
        "dos_frequencies": np.asarray(p.dos_frequencies).tolist(),
        "dos": np.asarray(p.dos).tolist(),
    }
    return out
