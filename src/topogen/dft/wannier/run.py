"""The Wannierisation: nscf on the full mesh (:func:`run_nscf`) -> projections ->
``wannier90 -pp`` -> ``pw2wannier90`` -> ``wannier90`` -> checks (:func:`wannierize`)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from topogen.dft.pseudos.upf import UpfHeader, read_upf_header
from topogen.dft.qe.crystal import Crystal, full_kgrid
from topogen.dft.qe.handlers import PwResult, run_pw, seed_outdir
from topogen.dft.qe.launcher import Launcher, run_program
from topogen.dft.qe.namelists import render_namelist
from topogen.dft.wannier import SEEDNAME, WannierError
from topogen.dft.wannier.checks import band_deviation, on_mesh
from topogen.dft.wannier.output import WoutResult, parse_wout
from topogen.dft.wannier.projections import (
    ProjectionChoice,
    choose_projections,
    count_projections,
    valence_states,
)
from topogen.dft.wannier.win import band_edges, frozen_window, win_text
from topogen.io.atomic import write_text
from topogen.topology.gaps import model_gap, trs_asymmetry
from topogen.topology.hr import TBModel, apply_ws_distance, read_hr
from topogen.topology.spinors import kramers_splitting

__all__ = ["WannierResult", "run_nscf", "wannierize"]


@dataclass
class WannierResult:
    directory: Path
    nscf: PwResult
    choice: ProjectionChoice
    num_bands: int
    nbnd: int
    n_occupied: int  # occupied Wannier bands (for invariants)
    froz_max: float | None
    reference: float
    hr_path: Path
    wout_path: Path
    model: TBModel
    wout: WoutResult
    band_check: dict[str, Any]
    band_check_mesh: dict[str, Any]
    kramers: float | None
    trs_asymmetry: float
    dft_edges: dict[str, float | None]
    model_gaps: dict[str, float | None]
    problems: list[str]
    timings: dict[str, float]
    scdm: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "directory": str(self.directory),
            "nscf": self.nscf.as_dict(),
            **self.choice.as_dict(),
            "num_bands": self.num_bands,
            "nbnd": self.nbnd,
            "n_occupied": self.n_occupied,
            "dis_froz_max_eV": self.froz_max,
            "reference_eV": self.reference,
            "scdm": self.scdm,
            "hr": str(self.hr_path),
            "wout": str(self.wout_path),
            "spreads": self.wout.as_dict(),
            "band_check": self.band_check,
            "band_check_on_mesh": self.band_check_mesh,
            "kramers_splitting_eV": self.kramers,
            "trs_asymmetry_eV": self.trs_asymmetry,
            "dft_band_edges": self.dft_edges,
            "wannier_gaps": self.model_gaps,
            "problems": self.problems,
            "timings_s": self.timings,
        }


def _run_checked(cmd: list[str], cwd: Path, name: str, launcher: Launcher) -> float:
    run = run_program(
        cmd, cwd, cwd / f"{name}.out", cwd / f"{name}.err", env=launcher.environment()
    )
    werr = list(cwd.glob("*.werr"))
    if run.returncode != 0 or werr:
        detail = ""
        for f in [*werr, cwd / f"{name}.err", cwd / f"{name}.out"]:
            if f.exists() and f.read_text(errors="replace").strip():
                detail = " ".join(f.read_text(errors="replace").split()[-40:])
                break
        raise WannierError(
            f"{' '.join(cmd)} failed in {cwd} (exit {run.returncode}): {detail}",
            output=werr[0] if werr else cwd / f"{name}.out",
        )
    return run.wall_time


def _electrons(scf: PwResult) -> tuple[bool, dict[str, UpfHeader], int]:
    """Spinors?, the pseudopotential headers and the occupied bands of an SCF run."""
    spinors = bool(scf.input.namelists["system"].get("noncolin", False))
    headers = {el: read_upf_header(p) for el, p in scf.input.pseudos.items()}
    nelec = scf.output.n_electrons
    if nelec is None:
        raise WannierError(f"{scf.output_path}: number of electrons not found")
    return spinors, headers, round(nelec / (1 if spinors else 2))


def _num_wann(crystal: Crystal, projections: Sequence[str], spinors: bool) -> int:
    counts = {el: crystal.symbols.count(el) for el in crystal.elements}
    return sum(count_projections(p, counts, spinors) for p in projections)


def run_nscf(
    scf: PwResult,
    workdir: str | os.PathLike[str],
    kgrid: Sequence[int] = (4, 4, 1),
    projections: Sequence[str] | None = None,
    n_excluded: int = 0,
    extra_bands: int = 4,
    nbnd: int | None = None,
    nscf_conv_thr: float = 1e-6,
    launcher: Launcher | None = None,
    max_attempts: int = 3,
    stop_at_max_seconds: bool = False,
) -> PwResult:
    """The nscf run on the full ``kgrid`` (no symmetry) in ``workdir/nscf``, with enough bands
    for the projections (every valence state of the pseudopotentials plus ``extra_bands``).
    Resumes like :func:`~topogen.dft.qe.handlers.run_pw`: a finished run is not repeated."""
    spinors, headers, n_occ_total = _electrons(scf)
    crystal = scf.input.crystal
    if projections is None:
        first = choose_projections(crystal.symbols, headers, None, spinors)
        wanted = valence_states(crystal.symbols, headers, spinors)
        nbnd = nbnd or max(wanted, first.n_excluded + first.num_wann, n_occ_total) + extra_bands
    else:
        num_wann = _num_wann(crystal, projections, spinors)
        nbnd = nbnd or max(n_excluded + num_wann, n_occ_total) + extra_bands
    nscf_dir = Path(workdir) / "nscf"
    prefix = scf.input.namelists["control"]["prefix"]
    seed_outdir(scf.outdir, nscf_dir / "out", prefix)
    nscf_input = scf.input.updated(
        control={"calculation": "nscf", "restart_mode": "from_scratch", "tprnfor": None,
                 "tstress": None},
        system={"nbnd": int(nbnd), "nosym": True, "noinv": True},
        electrons={"conv_thr": nscf_conv_thr, "diago_full_acc": True},
    )  # fmt: skip
    nscf_input.kpoints = full_kgrid(kgrid)
    nscf = run_pw(
        nscf_input, nscf_dir, launcher or Launcher(), max_attempts=max_attempts,
        stop_at_max_seconds=stop_at_max_seconds,
    )  # fmt: skip
    eig = nscf.output.eigenvalues
    if eig is None or eig.shape[0] != int(np.prod(kgrid)):
        raise WannierError(f"{nscf.output_path}: band energies for {np.prod(kgrid)} k not found")
    return nscf


def wannierize(
    scf: PwResult,
    workdir: str | os.PathLike[str],
    kgrid: Sequence[int] = (4, 4, 1),
    projections: Sequence[str] | None = None,
    n_excluded: int = 0,
    froz_margin: float = 1.0,
    extra_bands: int = 4,
    nbnd: int | None = None,
    num_iter: int = 200,
    dis_num_iter: int = 500,
    nscf_conv_thr: float = 1e-6,
    scdm: bool = False,
    band_window: tuple[float, float] = (-2.0, 1.0),
    launcher: Launcher | None = None,
    max_attempts: int = 3,
    win_extra: Mapping[str, Any] | None = None,
    ws_distance: bool = False,
    stop_at_max_seconds: bool = False,
) -> WannierResult:
    """nscf on the full ``kgrid`` (:func:`run_nscf`) -> projections -> ``wannier90 -pp`` ->
    ``pw2wannier90`` -> ``wannier90`` -> checks, in ``workdir/nscf`` and ``workdir/wannier``.

    ``projections`` (Wannier90 lines) and ``n_excluded`` override the automatic choice.
    ``band_window`` (eV: below the VBM, above the CBM; around the Fermi level of a metal)
    bounds the DFT bands compared with the model (also cut at the frozen window).
    ``ws_distance`` applies Wannier90's minimal-image correction to the model (default: the
    plain ``_hr.dat``, as written).
    Finished steps are not rerun.
    """
    launcher = launcher or Launcher()
    workdir = Path(workdir)
    timings: dict[str, float] = {}
    crystal = scf.input.crystal
    spinors, headers, n_occ_total = _electrons(scf)
    prefix = scf.input.namelists["control"]["prefix"]

    # 1. nscf on the full mesh, no symmetry
    nscf = run_nscf(
        scf, workdir, kgrid, projections, n_excluded, extra_bands, nbnd, nscf_conv_thr,
        launcher, max_attempts, stop_at_max_seconds,
    )  # fmt: skip
    nbnd = int(nscf.input.namelists["system"]["nbnd"])
    timings["nscf"] = sum(a.wall_time or 0.0 for a in nscf.attempts)
    eig_all = nscf.output.eigenvalues

    if projections is None:
        choice = choose_projections(crystal.symbols, headers, eig_all, spinors)
    else:
        num_wann = _num_wann(crystal, projections, spinors)
        choice = ProjectionChoice(tuple(projections), num_wann, n_excluded, spinors)
    num_bands = nbnd - choice.n_excluded
    if num_bands < choice.num_wann:
        raise WannierError(f"{num_bands} bands left after exclusion < num_wann {choice.num_wann}")
    edges = band_edges(eig_all, n_occ_total)
    insulating = edges["gap_indirect"] is not None and edges["gap_indirect"] > 0
    reference = edges["vbm"] if insulating else nscf.output.reference_energy
    if reference is None:
        raise WannierError(f"{nscf.output_path}: no Fermi level or band edge to place windows")
    froz, problems = (None, [])
    if num_bands > choice.num_wann:
        froz, problems = frozen_window(
            eig_all, choice.n_excluded, choice.num_wann, reference, froz_margin
        )

    # 2. wannier90 -pp, pw2wannier90, wannier90
    wdir = workdir / "wannier"
    wdir.mkdir(parents=True, exist_ok=True)
    win = win_text(
        crystal, choice, num_bands, nbnd, kgrid, froz, num_iter, dis_num_iter, scdm, win_extra
    )
    hr = wdir / f"{SEEDNAME}_hr.dat"
    wout_path = wdir / f"{SEEDNAME}.wout"
    win_path = wdir / f"{SEEDNAME}.win"
    done = nscf.reused and hr.exists() and win_path.exists() and win_path.read_text() == win
    if not done:
        for stale in [hr, wout_path, *wdir.glob("*.werr")]:
            stale.unlink(missing_ok=True)
        write_text(win_path, win)
        timings["wannier90_pp"] = _run_checked(
            launcher.command("wannier90.x", ["-pp", SEEDNAME], parallel=False),
            wdir, "wannier90_pp", launcher,
        )  # fmt: skip
        p2w: dict[str, Any] = {
            "outdir": os.path.relpath(nscf.outdir, wdir),
            "prefix": prefix,
            "seedname": SEEDNAME,
            "write_amn": True,
            "write_mmn": True,
            "write_unk": False,
        }
        if scdm:
            sigma = max(froz_margin / 2, 0.5)
            p2w.update(
                scdm_proj=True,
                scdm_entanglement="isolated" if num_bands == choice.num_wann else "erfc",
                scdm_mu=float(froz if froz is not None else reference + froz_margin),
                scdm_sigma=float(sigma),
            )
        write_text(wdir / "pw2wan.in", render_namelist("inputpp", p2w) + "\n")
        timings["pw2wannier90"] = _run_checked(
            launcher.command("pw2wannier90.x", ["-in", "pw2wan.in"], pools=False),
            wdir, "pw2wannier90", launcher,
        )  # fmt: skip
        wout_path.unlink(missing_ok=True)
        timings["wannier90"] = _run_checked(
            launcher.command("wannier90.x", [SEEDNAME], parallel=False), wdir, "wannier90", launcher
        )
    wout = parse_wout(wout_path)
    if wout.errors:
        raise WannierError(f"{wout_path}: {wout.errors[-1]}", output=wout_path)
    if not hr.exists():
        raise WannierError(f"{wout_path}: wannier90 finished without writing {hr.name}")

    # 3. the model and the checks
    positions = None
    if wout.centres is not None and len(wout.centres) == choice.num_wann:
        positions = wout.centres @ np.linalg.inv(crystal.cell)
    model = read_hr(hr, positions=positions)
    if ws_distance:
        model = apply_ws_distance(model, wdir / f"{SEEDNAME}_wsvec.dat")
    n_occ = n_occ_total - choice.n_excluded
    lo = reference + band_window[0]
    hi = (edges["cbm"] if insulating else reference) + band_window[1]
    if froz is not None:
        hi = min(hi, froz)
    check = {"max_eV": None, "n_compared": 0, "note": "no SCF band energies with k points"}
    so = scf.output
    if (
        so.eigenvalues is not None
        and so.kpoints is not None
        and len(so.kpoints) == len(so.eigenvalues)
    ):
        off = ~on_mesh(so.kpoints, kgrid)
        check = band_deviation(model, so.kpoints, so.eigenvalues, choice.n_excluded, lo, hi)
        check["n_kpoints"] = len(so.kpoints)
        check["n_off_mesh"] = int(off.sum())
        if off.any():
            check["off_mesh"] = band_deviation(
                model, so.kpoints[off], so.eigenvalues[off], choice.n_excluded, lo, hi
            )
    mesh = band_deviation(model, full_kgrid(kgrid), eig_all, choice.n_excluded, lo, hi)
    kramers = kramers_splitting(model) if spinors else None
    result = WannierResult(
        directory=workdir,
        nscf=nscf,
        choice=choice,
        num_bands=num_bands,
        nbnd=int(nbnd),
        n_occupied=n_occ,
        froz_max=froz,
        reference=float(reference),
        hr_path=hr,
        wout_path=wout_path,
        model=model,
        wout=wout,
        band_check=check,
        band_check_mesh=mesh,
        kramers=kramers,
        trs_asymmetry=trs_asymmetry(model),
        dft_edges=edges,
        model_gaps=model_gap(model, n_occ),
        problems=problems,
        timings=timings,
        scdm=scdm,
    )
    return result
