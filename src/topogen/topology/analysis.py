"""Every invariant of one tight-binding model, with the checks that make each one meaningful
(what ``topogen topology invariants`` prints).

For a model and a filling (``nocc`` occupied bands) :func:`analyse` gives:

* the direct and indirect gaps of the filling (:func:`~topogen.topology.gaps.model_gap`);
  where the occupied bands touch the empty ones no invariant is defined, and each is ``None``
  with that reason;
* the Chern number (:func:`~topogen.topology.invariants.chern_number`);
* time reversal, tested on the spectrum (basis independent): E(k) = E(-k) off the high-
  symmetry points (:func:`~topogen.topology.gaps.trs_asymmetry`) and the Kramers pairs at the
  TRIM (:func:`~topogen.topology.spinors.kramers_splitting`). Without it Z2 is undefined and is
  reported ``None`` with the measured breaking, not computed;
* Z2 in both loop directions (:func:`~topogen.topology.invariants.z2_invariant`), which must
  agree;
* the spin Chern number with the spin axis used (:func:`~topogen.topology.invariants.spin_chern`).
  It needs the spin operator in the model's basis, so the spinor order of the orbitals
  (``interleaved``: Wannier90's spinor projections, up and down of each orbital in turn;
  ``blocks``: every up orbital first) is checked on the hoppings, where time reversal maps
  t(R) to U t(R)* U^+ with U = i s_y in that order (:func:`order_mismatch`; a fit within
  :data:`ORDER_TOL`: DFT Wannier models miss by about 1 meV, a wrong order by eV). ``auto``
  takes the order that fits; an explicit order that does not fit while the other does is an
  error naming the fix (it would give a wrong spin Chern number without any sign of it);
  where neither fits, the orbitals are not spin pairs and the spin Chern number is ``None``
  with the reason.
  A model that breaks time reversal cannot be checked this way: the spin Chern number (still
  defined) is computed only in an order the user names (``spin_order_checked`` false).
"""

from __future__ import annotations

import os
from typing import Any, Literal

import numpy as np

from topogen.errors import TopogenError
from topogen.topology.gaps import model_gap, trs_asymmetry
from topogen.topology.hr import TBModel
from topogen.topology.invariants import SPIN_PHIS, chern_number, spin_chern, z2_invariant
from topogen.topology.spinors import SpinOrder, kramers_splitting, time_reversal_matrix

__all__ = ["ORDERS", "analyse", "choose_spin_order", "order_mismatch", "plot_wannier_flow"]

ORDERS: tuple[SpinOrder, ...] = ("interleaved", "blocks")
SpinChoice = Literal["auto", "interleaved", "blocks"]
TRS_TOL = 1e-3  # eV: time reversal holds on the spectrum (the DFT chain's kramers_tol)
ORDER_TOL = 0.02  # eV: the spin order fits the hoppings (Wannier models: ~1e-3; wrong: ~eV)
GAP_TOL = 1e-6  # eV: the filling is gapped


def order_mismatch(model: TBModel, order: SpinOrder) -> float:
    """max |U t(R)* U^+ - t(R)| (eV) over the hoppings, U = i s_y in ``order``: 0 for a
    time-reversal-symmetric model whose orbitals are spin pairs in that order; ``inf`` for an
    odd number of orbitals (no spinor basis)."""
    if model.num_wann % 2:
        return float("inf")
    u = time_reversal_matrix(model.num_wann, order)
    return float(np.abs(u @ model.hoppings.conj() @ u.conj().T - model.hoppings).max())


def choose_spin_order(
    model: TBModel,
    requested: SpinChoice = "auto",
    tol: float = ORDER_TOL,
    time_reversal: bool = True,
) -> tuple[SpinOrder | None, dict[str, float], str | None]:
    """(the spin order to use or None, the mismatch of each order, why None); see the module
    docstring. ``time_reversal``: whether the spectrum is time-reversal symmetric (else the
    hoppings cannot tell the order). Raises :class:`TopogenError` for an explicit order that
    the model contradicts while the other order fits."""
    if requested not in ("auto", *ORDERS):
        raise TopogenError(f"unknown spin order {requested!r}; use auto, interleaved or blocks")
    mismatch = {o: order_mismatch(model, o) for o in ORDERS}
    fits = [o for o in ORDERS if mismatch[o] <= tol]
    if requested != "auto":
        other = next(o for o in ORDERS if o != requested)
        if requested not in fits and other in fits:
            raise TopogenError(
                f"{model.source}: the orbitals are spin pairs in the '{other}' order, not "
                f"'{requested}' (time reversal off by {mismatch[requested]:.2g} eV in "
                f"'{requested}', {mismatch[other]:.2g} eV in '{other}'): use --spin-order {other}"
            )
    if not fits and model.num_wann % 2 == 0 and not time_reversal:
        if requested != "auto":
            return requested, mismatch, None  # unchecked: the caller says so
        return (
            None,
            mismatch,
            (
                "the model breaks time reversal, so its spin order cannot be checked on the "
                "hoppings: give --spin-order interleaved or blocks for the spin Chern number"
            ),
        )
    if not fits:
        why = (
            f"an odd number of orbitals ({model.num_wann}): not a spinor basis"
            if model.num_wann % 2
            else "the orbitals are not time-reversed spin pairs in either order (mismatch "
            + ", ".join(f"{o} {mismatch[o]:.2g} eV" for o in ORDERS)
            + "): no spin operator to project"
        )
        return None, mismatch, why
    if requested != "auto":
        return requested, mismatch, None
    return fits[0], mismatch, None  # both fit (e.g. one orbital pair): the same operator


def analyse(
    model: TBModel,
    nocc: int,
    *,
    spin_order: SpinChoice = "auto",
    n_k: int = 48,
    n_loop: int = 21,
    n_chern: int = 36,
    n_gap: int = 48,
    phis: tuple[float, ...] | float = SPIN_PHIS,
    trs_tol: float = TRS_TOL,
) -> dict[str, Any]:
    """The invariants and checks of the module docstring as one JSON-ready dict; an
    undefined invariant is ``None`` with ``<name>_error`` saying why."""
    if not 0 < nocc < model.num_wann:
        raise TopogenError(
            f"{model.source}: --occupied must be between 1 and {model.num_wann - 1} "
            f"(the model has {model.num_wann} bands), not {nocc}"
        )
    asym = trs_asymmetry(model)
    kramers = kramers_splitting(model) if model.num_wann % 2 == 0 else None
    trs = asym <= trs_tol and kramers is not None and kramers <= trs_tol
    if kramers is None:
        trs_why = f"an odd number of orbitals ({model.num_wann}): no Kramers pairs"
    elif kramers > trs_tol:
        trs_why = f"the bands are not Kramers pairs at the TRIM (splitting {kramers:.2g} eV)"
    else:
        trs_why = f"E(k) and E(-k) differ by up to {asym:.2g} eV"
    order, mismatch, spin_why = choose_spin_order(model, spin_order, ORDER_TOL, trs)
    out: dict[str, Any] = {
        "model": model.source,
        "num_wann": model.num_wann,
        "n_occupied": nocc,
        **model_gap(model, nocc, n_gap),
        "hops_out_of_plane": bool(np.any(model.r_vectors[:, 2] != 0)),
    }
    out.update(
        time_reversal=trs,
        time_reversal_broken_by=None if trs else trs_why,
        trs_asymmetry_eV=asym,
        kramers_splitting_eV=kramers,
        spin_order=order,
        spin_order_checked=order is not None and mismatch[order] <= ORDER_TOL,
        spin_order_mismatch_eV={o: v if np.isfinite(v) else None for o, v in mismatch.items()},
    )
    if out["gap_direct"] is None or out["gap_direct"] < GAP_TOL:
        why = f"the occupied bands touch the empty ones (direct gap {out['gap_direct']} eV)"
        for name in ("chern", "z2", "spin_chern"):
            out[name], out[f"{name}_error"] = None, why
        return out
    out["chern"] = _defined(lambda: chern_number(model, nocc, n=n_chern), out, "chern")
    if trs:
        z2 = _defined(
            lambda: z2_invariant(model, nocc, n_k=n_k, n_loop=n_loop, kramers_tol=trs_tol),
            out,
            "z2",
        )
        if z2 is not None:
            out.update(
                z2_by_direction=list(z2.by_direction),
                z2_converged=list(z2.converged),
                z2_min_wcc_gap=z2.min_gap,
            )
            out["z2"] = _defined(lambda: z2.z2, out, "z2")
    else:
        out["z2"] = None
        out["z2_error"] = f"no time reversal ({trs_why}; tolerance {trs_tol:g} eV): Z2 is undefined"
    if order is None:
        out["spin_chern"], out["spin_chern_error"] = None, spin_why
    else:
        sc = spin_chern(model, nocc, phis=phis, order=order, n=n_chern)
        out.update(sc.as_dict())
    return out


def _defined(compute: Any, out: dict[str, Any], name: str) -> Any:
    """``compute()``, or None with ``out[<name>_error]`` set to the reason it is undefined."""
    try:
        return compute()
    except TopogenError as exc:
        out[f"{name}_error"] = str(exc)
        return None


def plot_wannier_flow(
    model: TBModel,
    nocc: int,
    path: str | os.PathLike[str],
    *,
    n_k: int = 48,
    n_loop: int = 41,
    title: str | None = None,
) -> None:
    """A PNG of the hybrid Wannier charge centres of the occupied bands against the pumping
    parameter over the whole zone, for loops along b1 and along b2 (one panel each): the
    flow whose winding the Chern and Z2 numbers count."""
    from matplotlib.figure import Figure

    from topogen.io.atomic import atomic_path
    from topogen.topology.invariants import wannier_centres

    fig = Figure(figsize=(9.0, 4.0), layout="constrained")
    for direction in (0, 1):
        pump, wcc = wannier_centres(model, nocc, n_k, n_loop, direction, (0.0, 1.0))
        ax = fig.add_subplot(1, 2, direction + 1)
        ax.plot(pump, wcc, ".", ms=3, color=f"C{direction}")
        other = 2 - direction
        ax.set(
            xlim=(0, 1),
            ylim=(0, 1),
            xlabel=f"k{other} (reduced)",
            ylabel="Wannier charge centre (reduced)",
            title=f"loops along b{direction + 1}",
        )
    fig.suptitle(title or f"{model.source}: {nocc} occupied bands")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")


def plot_spin_flow(
    model: TBModel,
    nocc: int,
    path: str | os.PathLike[str],
    *,
    phi: float = np.pi / 2,
    order: SpinOrder = "interleaved",
    n_k: int = 48,
    n_loop: int = 41,
    title: str | None = None,
) -> None:
    """A PNG of the spin-Chern spectrum: the Wannier-centre flow of the + and - sectors of
    P S P (loops along b1), whose windings -C+ and -C- give C_s = (C+ - C-)/2."""
    from matplotlib.figure import Figure

    from topogen.io.atomic import atomic_path
    from topogen.topology.invariants import spin_resolved_centres

    pump, plus, minus = spin_resolved_centres(model, nocc, phi, order, n_k, n_loop)
    fig = Figure(figsize=(6.0, 4.0), layout="constrained")
    ax = fig.add_subplot()
    up = ax.plot(pump, plus, "^", ms=3, color="C3")
    down = ax.plot(pump, minus, "v", ms=3, color="C0")
    ax.legend([up[0], down[0]], ["spin +", "spin -"], fontsize=8, loc="upper right")
    ax.set(
        xlim=(0, 1),
        ylim=(0, 1),
        xlabel="k2 (reduced)",
        ylabel="Wannier charge centre (reduced)",
        title=f"spin axis {np.degrees(phi):g} deg from x towards z, {order} spinors",
    )
    fig.suptitle(title or f"{model.source}: spin-resolved flow of {nocc} occupied bands")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
