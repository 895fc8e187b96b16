"""One card per candidate that reached DFT (``results/candidates/<id>/card.md`` and a
structure picture): what a scientist wants on one page before believing a verdict.

A card holds the structure (top and side views, formula, space group), where it came from
(generator, checkpoint and its sha256, sample seed), every funnel verdict with its reason, the
DFT verdict with its reason and problems, the gaps of the DFT bands and of the Wannier model,
Z2 in both loop directions and the spin Chern number with its axis, the edge spectrum, and
the provenance chain of the verdict back to the raw inputs (``topogen provenance``).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from topogen.dft.summary import verdict_row
from topogen.errors import TopogenError
from topogen.io.atomic import atomic_path, write_text

__all__ = [
    "note_figure",
    "plot_bands",
    "plot_flow",
    "plot_spin",
    "plot_structure",
    "verdict_model",
    "write_card",
    "write_index",
]


def plot_structure(structure: Any, path: str | os.PathLike[str], title: str) -> None:
    """Top view (along c) and side view (along a) of the cell repeated 3 x 3 in plane."""
    from ase.visualize.plot import plot_atoms
    from matplotlib.figure import Figure
    from pymatgen.io.ase import AseAtomsAdaptor

    from topogen.errors import TopogenError
    from topogen.structure.slabs import canonical_slab

    with contextlib.suppress(TopogenError):  # the layer centred, so the side view shows it
        structure = canonical_slab(structure)
    atoms = AseAtomsAdaptor.get_atoms(structure).repeat((3, 3, 1))
    fig = Figure(figsize=(8.0, 4.0), layout="constrained")
    for k, (rotation, label) in enumerate((("0x,0y,0z", "top"), ("-90x,0y,0z", "side"))):
        ax = fig.add_subplot(1, 2, k + 1)
        plot_atoms(atoms, ax, rotation=rotation, radii=0.4)
        ax.set_axis_off()
        ax.set_title(f"{label} view (3 x 3 cells)", fontsize=9)
    from ase.data import atomic_numbers
    from ase.data.colors import jmol_colors
    from matplotlib.patches import Patch

    elements = sorted({site.specie.symbol for site in structure})
    handles = [Patch(color=jmol_colors[atomic_numbers[e]], label=e) for e in elements]
    fig.legend(handles=handles, loc="lower center", ncols=len(handles), fontsize=8)
    fig.suptitle(title)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")


def plot_flow(verdict: dict[str, Any], path: str | os.PathLike[str], row: dict[str, Any]) -> None:
    """The Wannier-centre flow of the candidate's Wannier model (the occupied bands of its
    invariants), or a figure saying why there is none."""
    from topogen.topology.analysis import plot_wannier_flow

    found = verdict_model(verdict)
    if found is None:
        _no_model(path, row)
        return
    model, nocc = found
    title = f"{row['candidate']}: {nocc} occupied bands, Z2 {_fmt(row['z2'])}"
    plot_wannier_flow(model, nocc, path, title=title)


def note_figure(path: str | os.PathLike[str], text: str) -> None:
    """A small PNG holding only ``text``: the figure of a candidate that has none, and why."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.0, 1.5))
    fig.text(0.02, 0.5, text[:300], va="center", wrap=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=80, format="png")


def _no_model(path: str | os.PathLike[str], row: dict[str, Any], why: str = "") -> None:
    """A figure saying why the candidate has no Wannier model (or ``why`` there is no
    figure)."""
    note_figure(
        path, why or f"{row['candidate']}: no Wannier model ({row['verdict']}: {row['reason']})"
    )


def verdict_model(verdict: dict[str, Any]) -> tuple[Any, int] | None:
    """The candidate's Wannier model (with Wannier90's WS-distance correction when it wrote
    one) and its occupied bands, or None."""
    from topogen.topology.hr import apply_ws_distance, read_hr

    hr = (verdict.get("paths") or {}).get("hr")
    nocc = (verdict.get("invariants") or {}).get("n_occupied")
    if not (hr and nocc and Path(hr).exists()):
        return None
    model = read_hr(hr)
    wsvec = Path(hr).with_name(Path(hr).name.replace("_hr.dat", "_wsvec.dat"))
    if wsvec.exists():
        model = apply_ws_distance(model, wsvec)
    return model, int(nocc)


def plot_spin(verdict: dict[str, Any], path: str | os.PathLike[str], row: dict[str, Any]) -> None:
    """The spin-resolved Wannier-centre flow along the spin axis of the candidate's spin
    Chern number, or a figure saying why there is none."""
    from topogen.topology.analysis import plot_spin_flow

    found = verdict_model(verdict)
    phi = row.get("spin_phi_deg")
    if found is None or phi is None or phi != phi:
        _no_model(path, row)
        return
    model, nocc = found
    title = f"{row['candidate']}: spin Chern {_fmt(row['spin_chern'])}"
    try:
        plot_spin_flow(model, nocc, path, phi=float(np.radians(phi)), title=title)
    except TopogenError as exc:  # P S P without a fixed split, bands touching: say so
        _no_model(path, row, f"{row['candidate']} ({row['verdict']}): no spin-resolved flow: {exc}")


def plot_bands(verdict: dict[str, Any], path: str | os.PathLike[str], row: dict[str, Any]) -> None:
    """DFT against Wannier bands: the model's bands along the 2D high-symmetry path, and at
    every k point of the SCF run (off the Wannier mesh, the check of the band agreement)
    DFT and Wannier energies side by side; energies from the reference (VBM or Fermi level)."""
    from matplotlib.figure import Figure

    from topogen.brillouin import path_2d
    from topogen.dft.qe.output import parse_pw_output
    from topogen.topology.cell_files import read_lattice
    from topogen.topology.hr import hamiltonian

    found = verdict_model(verdict)
    paths, w = verdict.get("paths") or {}, verdict.get("wannier") or {}
    if found is None or not paths.get("win") or w.get("reference_eV") is None:
        _no_model(path, row)
        return
    model, _ = found
    ref, first = float(w["reference_eV"]), int(w.get("n_excluded") or 0)
    kpath = path_2d(read_lattice(paths["win"]))
    fig = Figure(figsize=(11.0, 4.5), layout="constrained")
    ax_p, ax_k = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.4, 1]}, sharey=True)
    bands = np.linalg.eigvalsh(hamiltonian(model, kpath.kpoints)) - ref
    ax_p.plot(kpath.distance, bands, color="C0", lw=1)
    for x in kpath.ticks:
        ax_p.axvline(x, color="0.7", lw=0.6)
    ax_p.set_xticks(kpath.ticks, [{"G": "Γ"}.get(s, s) for s in kpath.labels])
    ax_p.set(xlim=(kpath.ticks[0], kpath.ticks[-1]), ylabel="E - reference (eV)")
    ax_p.set_title("Wannier bands", fontsize=9)
    scf = parse_pw_output(paths["scf_output"]) if paths.get("scf_output") else None
    if scf is not None and scf.eigenvalues is not None and scf.kpoints is not None:
        k = np.asarray(scf.kpoints, dtype=float).reshape(-1, 3)
        ew = np.linalg.eigvalsh(hamiltonian(model, k)) - ref
        ed = np.asarray(scf.eigenvalues)[:, first : first + model.num_wann] - ref
        x = np.arange(len(k))
        ax_k.plot(x, ed, "o", mfc="none", color="k", ms=6)
        ax_k.plot(x, ew[:, : ed.shape[1]], "x", color="C3", ms=5)
        ax_k.legend(ax_k.lines[:: ed.shape[1]][:1] + ax_k.lines[ed.shape[1] :][:1],
                    ["DFT (SCF)", "Wannier"], fontsize=8)  # fmt: skip
        ax_k.set_xticks(x, [" ".join(f"{c:.2f}" for c in kk[:2]) for kk in k], rotation=60)
        ax_k.set_xlabel("SCF k point (reduced k1 k2)")
    dev = (w.get("band_check") or {}).get("max_eV")
    ax_k.set_title(f"at the SCF k points: max deviation {_fmt(dev, ' eV')}", fontsize=9)
    ax_p.set_ylim(-3.0, 3.0)
    fig.suptitle(f"{row['candidate']}: DFT vs Wannier bands")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")


def _space_group(structure: Any) -> str:
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    try:
        sga = SpacegroupAnalyzer(structure, symprec=0.1)
        return f"{sga.get_space_group_symbol()} (No. {sga.get_space_group_number()})"
    except Exception as exc:  # spglib gives up on some generated cells
        return f"not determined ({type(exc).__name__})"


def _fmt(value: Any, unit: str = "") -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}{unit}"
    return f"{value}{unit}"


def write_card(
    verdict: str | os.PathLike[str],
    candidate: Any,
    out: str | os.PathLike[str],
    picture: str | os.PathLike[str],
    edge_plot: str | os.PathLike[str] | None = None,
    steps: Sequence[str] = (),
    flow: str | os.PathLike[str] | None = None,
    bands: str | os.PathLike[str] | None = None,
    spin: str | os.PathLike[str] | None = None,
    chgnet_plot: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Write the card of one candidate (``candidate``: its record, the DFT-relaxed structure
    when there is one) to ``out`` (Markdown) and its structure picture to ``picture``;
    ``steps``: the screening funnel's steps in order (those the candidate has are shown);
    ``flow``, ``bands``, ``spin``: where to draw the Wannier-centre flow of its model, its
    bands against DFT's, and its spin-resolved flow (a note saying why when it has no
    model); ``chgnet_plot``: its CHGNet relaxation and phonons (`topogen screen inspect`),
    linked when it exists; returns the verdict row (:func:`topogen.dft.summary.verdict_row`)."""
    from topogen.io.provenance import format_tree, lineage

    out, picture, verdict = Path(out), Path(picture), Path(verdict)
    row = verdict_row(verdict)
    v = json.loads(verdict.read_text(encoding="utf-8"))
    props = {**candidate.properties, **(v.get("properties") or {})}
    s = candidate.structure
    plot_structure(s, picture, f"{row['candidate']}: {s.composition.reduced_formula}")
    rel = lambda p: os.path.relpath(Path(p), out.parent)  # noqa: E731
    inv = v.get("invariants") or {}
    lines = [
        f"# {row['candidate']}: {s.composition.reduced_formula}",
        "",
        f"![structure]({rel(picture)})",
        "",
        f"- **verdict: {row['verdict']}**" + (f" ({row['reason']})" if row["reason"] else ""),
        f"- formula {s.composition.formula} ({len(s)} atoms), space group {_space_group(s)}",
        f"- generator: {props.get('generator', row['source'])} (source `{row['source']}`)",
    ]
    if props.get("checkpoint"):
        lines.append(
            f"- checkpoint `{props['checkpoint']}` (sha256 {props.get('checkpoint_sha256', '-')})"
            f", sample seed {props.get('seed', '-')}"
        )
    lines += ["", "## Screening funnel", "", "| step | verdict | reason |", "|---|---|---|"]
    for step in steps:
        if f"screen_{step}" in props:
            reason = props.get(f"screen_{step}_reason", "")
            lines.append(f"| {step.replace('_', ' ')} | {props[f'screen_{step}']} | {reason} |")
    if "topology_score" in props:
        lines += ["", f"Topology score (CrystalBERT): {_fmt(props['topology_score'])}"]
    lines += [
        "",
        "## DFT (Quantum ESPRESSO + Wannier90)",
        "",
        "| quantity | value |",
        "|---|---|",
        f"| status | {row['status']} |",
        f"| trusted | {row['trusted']} |",
        f"| DFT gap, direct / indirect | {_fmt(row['dft_gap_direct_eV'], ' eV')} / "
        f"{_fmt(row['dft_gap_indirect_eV'], ' eV')} |",
        f"| Wannier gap, direct / indirect | {_fmt(row['wannier_gap_direct_eV'], ' eV')} / "
        f"{_fmt(row['wannier_gap_indirect_eV'], ' eV')} |",
        f"| Wannier vs DFT bands, max deviation | {_fmt(row['band_max_deviation_eV'], ' eV')} |",
        f"| Z2 (loops along b1, b2) | {_fmt(row['z2'])} ({_fmt(row['z2_k1_loops'])}, "
        f"{_fmt(row['z2_k2_loops'])}) |",
        f"| spin Chern number (axis from x towards z) | {_fmt(row['spin_chern'])} "
        f"({_fmt(row['spin_phi_deg'], ' deg')}, spin gap {_fmt(row['spin_gap'])}) |",
        f"| occupied bands | {_fmt(inv.get('n_occupied'))} |",
    ]
    if row["failed_step"]:
        lines.append(f"| failed at | {row['failed_step']}: `{row['failed_output']}` |")
    if row["problems"]:
        lines += ["", "Problems: " + row["problems"]]
    if chgnet_plot is not None and Path(chgnet_plot).exists():
        lines += ["", "## CHGNet relaxation and phonons", "", f"![chgnet]({rel(chgnet_plot)})"]
    figures = (
        (bands, plot_bands, "bands", "DFT vs Wannier bands"),
        (flow, plot_flow, "flow", "Wannier-centre flow (Wilson loops)"),
        (spin, plot_spin, "spin flow", "Spin-resolved Wannier-centre flow (spin Chern number)"),
    )
    for target, draw, alt, heading in figures:
        if target is not None:
            draw(v, target, row)
            lines += ["", f"## {heading}", "", f"![{alt}]({rel(target)})"]
    if edge_plot is not None and Path(edge_plot).exists():
        lines += ["", "## Edge spectrum", "", f"![edge spectrum]({rel(edge_plot)})"]
    lines += [
        "",
        "## Provenance (the verdict back to the raw inputs)",
        "",
        "```",
        format_tree(lineage(verdict)),
        "```",
        "",
    ]
    write_text(out, "\n".join(lines))
    return row


def write_index(
    verdicts: Sequence[str | os.PathLike[str]],
    cards: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
) -> int:
    """``out`` (Markdown): one line per candidate, in the order given (verdict, Z2, spin
    Chern, DFT gap, link to its card); returns the number of candidates."""
    if len(verdicts) != len(cards):
        raise ValueError(f"{len(verdicts)} verdicts but {len(cards)} cards")
    out = Path(out)
    lines = [
        "# Candidates that reached DFT",
        "",
        "| candidate | source | formula | verdict | Z2 | spin Chern | DFT gap (indirect) | card |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for verdict, card in zip(verdicts, cards, strict=True):
        r = verdict_row(Path(verdict))
        link = os.path.relpath(Path(card), out.parent)
        lines.append(
            f"| {r['candidate']} | {r['source']} | {r['formula']} | {r['verdict']} | "
            f"{_fmt(r['z2'])} | {_fmt(r['spin_chern'])} | {_fmt(r['dft_gap_indirect_eV'], ' eV')}"
            f" | [card]({link}) |"
        )
    write_text(out, "\n".join(lines) + "\n")
    return len(cards)
