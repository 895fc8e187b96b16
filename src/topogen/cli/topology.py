"""``topogen topology ...``: invariants and edge spectra of a tight-binding model given as a
Wannier90 ``_hr.dat`` file, for people who have one (no DFT, no workflow)."""

from __future__ import annotations

import argparse
from typing import Any

from topogen.cli.parser import Subparsers, command, group, later
from topogen.cli.stage import log, stage
from topogen.errors import TopogenError


def _model(args: argparse.Namespace) -> Any:
    """The ``_hr.dat`` model, with orbital positions from ``--centres`` (which needs the
    lattice of ``--lattice`` or ``--win``)."""
    from topogen.topology.cell_files import read_centres, read_lattice
    from topogen.topology.hr import read_hr

    model = read_hr(args.model)
    if args.centres is None:
        return model
    cell_file = args.lattice or args.win
    if cell_file is None:
        raise TopogenError(
            f"{args.centres}: Wannier centres are Cartesian: give the lattice (--lattice or --win)"
        )
    positions = read_centres(args.centres, read_lattice(cell_file), model.num_wann)
    return read_hr(args.model, positions)


def _show(value: Any, error: str | None) -> str:
    return f"undefined ({error})" if value is None else str(value)


def summary_lines(result: dict[str, Any]) -> list[str]:
    """The invariants of :func:`topogen.topology.analysis.analyse` as lines for a terminal."""
    r = result
    gap = (
        f"direct {r['gap_direct']:.4g} eV, indirect {r['gap_indirect']:.4g} eV"
        if r["gap_direct"] is not None
        else "n/a"
    )
    lines = [
        f"model: {r['model']} ({r['num_wann']} orbitals, {r['n_occupied']} occupied)",
        f"gap: {gap}",
        f"Chern number: {_show(r['chern'], r.get('chern_error'))}",
        "time reversal: "
        + ("yes" if r["time_reversal"] else f"broken ({r['time_reversal_broken_by']})"),
    ]
    z2 = _show(r["z2"], r.get("z2_error"))
    if r.get("z2_by_direction") is not None:
        z2 += f" (loops along b1, b2: {r['z2_by_direction']}; converged {r['z2_converged']})"
    lines.append(f"Z2: {z2}")
    spin = _show(r["spin_chern"], r.get("spin_chern_error"))
    if r["spin_chern"] is not None:
        checked = "checked" if r["spin_order_checked"] else "NOT checked: time reversal is broken"
        spin += (
            f" (spin axis {r['spin_phi_deg']:g} deg from x towards z, spin gap "
            f"{r['spin_gap']:.3g}; spin order {r['spin_order']}, {checked})"
        )
    lines.append(f"spin Chern number: {spin}")
    if r["hops_out_of_plane"]:
        lines.append("note: the model hops along a3 (R3 != 0); everything is at k3 = 0")
    return lines


def _invariants(args: argparse.Namespace) -> int:
    """``topogen topology invariants``: print (and write) the model's invariants."""
    import json

    from topogen.topology.analysis import GAP_TOL, analyse, plot_wannier_flow

    model = _model(args)
    inputs = [p for p in (args.model, args.lattice, args.win, args.centres) if p]
    result = analyse(
        model,
        args.occupied,
        spin_order=args.spin_order,
        n_k=args.nk,
        n_loop=args.nloop,
        n_chern=args.nchern,
        trs_tol=args.trs_tol,
    )
    if args.plot and (result["gap_direct"] is None or result["gap_direct"] < GAP_TOL):
        raise TopogenError(
            f"{args.model}: no Wannier-centre flow (--plot): the occupied bands touch the empty "
            f"ones (direct gap {result['gap_direct']} eV)"
        )
    if args.json or args.plot:
        with stage(args, inputs=inputs) as run:
            if args.plot:
                plot_wannier_flow(model, args.occupied, run.output(args.plot), n_k=args.nk)
            if args.json:
                run.write_json(args.json, result)
    print("\n".join(summary_lines(result)))
    if args.print_json:
        print(json.dumps(result, indent=2))
    return 0


def _edges(args: argparse.Namespace) -> int:
    """``topogen topology edges``: the surface spectral density of a semi-infinite ribbon."""
    from topogen.topology.edges import write_edge_spectrum
    from topogen.topology.gaps import model_gap

    model = _model(args)
    g = model_gap(model, args.occupied, 48)
    if g["vbm"] is None:
        raise TopogenError(
            f"{args.model}: --occupied must be between 1 and {model.num_wann - 1}, not "
            f"{args.occupied}"
        )
    metal = g["gap_indirect"] <= 0
    zero = g["vbm"]
    mid = zero if metal else (g["vbm"] + g["cbm"]) / 2
    inputs = [p for p in (args.model, args.lattice, args.win, args.centres) if p]
    with stage(args, inputs=inputs) as run:
        spectrum = write_edge_spectrum(
            model, run.output(args.plot), run.output(args.data), mid=mid, reference=zero,
            edge=args.edge, side=args.side, nk=args.nk, ne=args.ne, window=tuple(args.window),
            eta=args.eta, title=f"{args.model}: {args.side} edge along {args.edge}",
            vbm_eV=g["vbm"], cbm_eV=g["cbm"],
        )  # fmt: skip
    log(
        f"topology edges: {args.nk} k x {args.ne} E, {spectrum.layer_cells} cells per principal "
        f"layer, energies from the VBM ({zero:.4g} eV){' (no gap)' if metal else ''} -> "
        f"{args.plot}, {args.data}"
    )
    return 0


def _model_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", metavar="MODEL_hr.dat", help="Wannier90 tight-binding model")
    p.add_argument(
        "--occupied", type=int, required=True, metavar="N", help="occupied bands (the filling)"
    )
    cell = p.add_mutually_exclusive_group()
    cell.add_argument("--lattice", metavar="FILE", help="3 rows of lattice vectors (Angstrom)")
    cell.add_argument("--win", metavar="FILE", help="the model's .win (its unit_cell_cart)")
    p.add_argument(
        "--centres",
        metavar="XYZ",
        help="Wannier centres (seedname_centres.xyz) as the orbital positions of the Wilson "
        "loops (needs --lattice or --win); default: every orbital at the origin",
    )


def edge_options(p: argparse.ArgumentParser) -> None:
    """The edge-spectrum options shared with ``topogen dft edge-states``."""
    p.add_argument("--edge", choices=["a1", "a2"], default="a1", help="the edge runs along it")
    p.add_argument("--side", choices=["lower", "upper"], default="lower", help="which edge")
    p.add_argument("--nk", type=int, default=121, help="edge momenta in [-1/2, 1/2]")
    p.add_argument("--ne", type=int, default=161, help="energies")
    p.add_argument(
        "--window",
        nargs=2,
        type=float,
        default=[-1.0, 1.0],
        metavar=("LO", "HI"),
        help="eV around mid-gap",
    )
    p.add_argument("--eta", type=float, default=0.01, help="eV, broadening")


def _analysis_options(p: argparse.ArgumentParser) -> None:
    """The resolutions and tolerance of :func:`topogen.topology.analysis.analyse`, with its
    defaults (the one place they live)."""
    import inspect

    from topogen.topology.analysis import analyse

    default = {k: v.default for k, v in inspect.signature(analyse).parameters.items()}
    p.add_argument("--nk", type=int, default=default["n_k"], help="k points per Wilson loop")
    p.add_argument(
        "--nloop", type=int, default=default["n_loop"], help="loops from 0 to 1/2 (Z2), refined"
    )
    p.add_argument(
        "--nchern", type=int, default=default["n_chern"], help="k grid side of the Chern numbers"
    )
    p.add_argument(
        "--trs-tol",
        type=float,
        default=default["trs_tol"],
        metavar="EV",
        help="time reversal holds when Kramers splittings and E(k) - E(-k) stay below this",
    )


def register(stages: Subparsers) -> None:
    """Add ``topogen topology invariants`` and ``topogen topology edges``."""
    cmds = group(
        stages, "topology", "invariants and edge spectra of a _hr.dat model", "command", "COMMAND"
    )
    p = command(
        cmds,
        "invariants",
        _invariants,
        "Chern, Z2 and spin Chern numbers and the gaps of a _hr.dat model",
        "Prints the gap of the filling, the Chern number, Z2 from Wilson loops in both\n"
        "directions (only where time reversal holds: it is checked on the spectrum), and the\n"
        "spin Chern number with the spin axis of the largest spin gap. The spin operator\n"
        "needs the spinor order of the orbitals: 'auto' finds it on the hoppings; a wrong\n"
        "explicit order is an error naming the right one. See topogen.topology.analysis.",
    )
    _model_arguments(p)
    p.add_argument(
        "--spin-order",
        choices=["auto", "interleaved", "blocks"],
        default="auto",
        help="spinor order: interleaved (up, down of each orbital: Wannier90 spinor "
        "projections) or blocks (every up orbital first)",
    )
    p.add_argument("--json", metavar="JSON", help="write the result here")
    p.add_argument("--plot", metavar="PNG", help="Wannier-centre flow of both loop directions")
    p.add_argument("--print-json", action="store_true", help="also print the JSON")
    later(p, _analysis_options)

    p = command(
        cmds,
        "edges",
        _edges,
        "surface spectral density of a _hr.dat model along an edge",
        "Semi-infinite ribbon (iterative surface Green's function): a PNG of the surface DOS\n"
        "vs edge momentum and energy (zero at the model's VBM), and the data (npz).",
    )
    _model_arguments(p)
    p.add_argument("--plot", required=True, metavar="PNG", help="the spectral density plot")
    p.add_argument("--data", required=True, metavar="NPZ", help="k, energies, surface/bulk DOS")
    edge_options(p)
