"""The CHGNet figure of a candidate: relaxation per FIRE step, phonon dispersion and DOS
(the record of :func:`topogen.screen.inspect.inspect_structure`)."""

from __future__ import annotations

import os
from typing import Any

from topogen.io.atomic import atomic_path

LABELS = {"G": "Γ"}


def plot_relax_phonons(data: dict[str, Any], path: str | os.PathLike[str], title: str) -> None:
    """Three panels: energy per atom and largest force against the FIRE step; the phonon
    bands along the path (imaginary modes as negative frequencies; dotted: the funnel's
    tolerance); the DOS. A panel without data says why."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(13.0, 4.0), layout="constrained")
    ax_r, ax_b, ax_d = fig.subplots(1, 3, gridspec_kw={"width_ratios": [1.1, 1.6, 0.6]})
    relax = data["relax"]
    energies = relax["energy_per_step"]
    if energies:
        steps = range(len(energies))
        ax_r.plot(steps, energies, ".-", color="C0")
        ax_r.set(xlabel="FIRE step", ylabel="energy (eV/atom)")
        ax_f = ax_r.twinx()
        ax_f.semilogy(steps, relax["fmax_per_step"], ".-", color="C3", ms=3)
        ax_f.axhline(relax["fmax_limit"], ls=":", color="C3", lw=1)
        ax_f.set_ylabel("largest force (eV/Å)", color="C3")
    state = "converged" if relax["converged"] else f"not converged ({relax['error'] or 'steps'})"
    ax_r.set_title(f"CHGNet relaxation: {state}, {relax['steps']} steps", fontsize=9)
    ph = data.get("phonons")
    if not ph or ph.get("error") or not ph["frequencies"]:
        why = (ph or {}).get("error") or "no phonons: the relaxation failed"
        for ax in (ax_b, ax_d):
            ax.text(0.5, 0.5, why[:120], ha="center", va="center", wrap=True, fontsize=8)
            ax.set_axis_off()
    else:
        ax_b.plot(ph["distance"], ph["frequencies"], color="C0", lw=1)
        for x in ph["ticks"]:
            ax_b.axvline(x, color="0.7", lw=0.6)
        ax_b.axhline(0.0, color="k", lw=0.6)
        ax_b.axhline(-ph["tol"], color="C3", ls=":", lw=1)
        ax_b.set_xticks(ph["ticks"], [LABELS.get(s, s) for s in ph["labels"]])
        ax_b.set(xlim=(ph["ticks"][0], ph["ticks"][-1]), ylabel="frequency (THz)")
        verdict = "stable" if ph["stable"] else "unstable"
        sc = "x".join(map(str, ph["supercell"]))
        ax_b.set_title(f"phonons ({sc} supercell): {verdict}", fontsize=9)
        if ph["dos"]:
            ax_d.plot(ph["dos"], ph["dos_frequencies"], color="C0")
            ax_d.set(xlabel="DOS (states/THz)", ylim=ax_b.get_ylim())
            ax_d.set_yticklabels([])
        else:
            ax_d.set_axis_off()
    fig.suptitle(title)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
