"""The steps of the DFT chain as the workflow runs them, one command each.

Every step reads one candidate, builds its :class:`~topogen.dft.validate.Chain` (the same
settings for every step of a candidate), does its work (:data:`STEPS`) and returns a record;
a failure names the candidate and the step. Also: the job-level helpers (pw.x's
``max_seconds`` from a time limit, the MPI launcher from a command line), the candidate
files of a structure table, and the edge-state spectrum of a Wannier model.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shlex
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from topogen.errors import TopogenError

if TYPE_CHECKING:
    from topogen.dft.qe.crystal import Crystal
    from topogen.dft.qe.launcher import Launcher
    from topogen.dft.validate import Chain
    from topogen.io.tables import Record
    from topogen.topology.edges import EdgeSpectrum

    Work = Callable[[Chain, Record, Crystal], dict[str, Any]]

Output = Callable[[Path], Path]  # registers an output file (a provenance run's ``output``)


def max_seconds(minutes: float) -> float:
    """pw.x's max_seconds for a job of ``minutes``: 5% (2 to 15 minutes) left to write the
    restart files and exit cleanly."""
    total = minutes * 60.0
    return round(total - min(max(120.0, 0.05 * total), 900.0), 1)


def launcher(tasks: int, pools: int, mpi: str, omp_threads: int) -> Launcher:
    """The launcher of ``tasks`` MPI tasks; ``mpi`` is a launcher name or a command line
    with options (``'srun --mpi=pmix'``)."""
    from topogen.dft.qe.launcher import Launcher

    words = shlex.split(mpi) or ["auto"]
    return Launcher(
        nprocs=tasks, npool=pools, threads=omp_threads, mpi=words[0], mpi_args=tuple(words[1:])
    )


def relaxed(crystal: Crystal) -> Crystal:
    """The crystal the relax step hands on, already in the 2D frame (``as_2d`` keeps it)."""
    from topogen.dft.qe.crystal import Crystal

    return Crystal.from_any(crystal).as_2d()


def run_step(
    step: str, record: Record, chain: Callable[[list[str]], Chain], work: Work
) -> dict[str, Any]:
    """``work(chain(elements), record, crystal)`` -> ``{"id", "step", **data}``.

    A failure of the candidate's own (:class:`~topogen.dft.qe.CandidateError`: pw.x did not
    converge after every handler, no Wannier model, no 2D cell) is recorded in the
    candidate's folder (:mod:`topogen.dft.verdict`) and returned as ``status='failed'``; a
    later step finding it hands it on (``invariants``: a ``failed`` verdict) instead of
    running. Any other failure is re-raised naming the candidate and the step.
    """
    from topogen.dft.qe import CandidateError
    from topogen.dft.qe.crystal import Crystal
    from topogen.dft.verdict import read_failure, record_failure

    try:
        c = chain(_elements(record.structure))
        settings = c.settings.as_dict()
        failure = read_failure(c.workdir, settings)
        if failure is None:
            try:  # a cell that no pw.x run can use (NaN, zero volume) fails the candidate
                data = work(c, record, Crystal.from_any(record.structure))
            except CandidateError as exc:
                if not exc.permanent:
                    raise
                failure = record_failure(c.workdir, step, exc, settings)
        if failure is not None:
            data = _failed(step, failure, c, record)
    except TopogenError as exc:
        raise TopogenError(f"candidate {record.id}: dft {step}: {exc}") from exc
    return {"id": record.id, "step": step, **data}


def _elements(structure: Any) -> list[str]:
    """The element symbols of a pymatgen structure, in order of first appearance."""
    return list(dict.fromkeys(el.symbol for site in structure for el in site.species))


def _failed(step: str, failure: dict[str, Any], chain: Chain, record: Record) -> dict[str, Any]:
    """The record of ``step`` for a candidate that failed at ``failure['step']``."""
    from topogen.dft.verdict import failed_verdict

    fields = failed_verdict(failure["step"], failure["reason"], failure.get("output"))
    if step != "invariants":
        return {k: fields[k] for k in ("status", "failed_step", "reason", "failed_output")}
    verdict = _new_verdict(chain, record)
    verdict.update(formula=record.formula, **fields)
    return verdict


def _new_verdict(chain: Chain, record: Record) -> dict[str, Any]:
    """A verdict that names the candidate, its source (generator) and its properties."""
    return chain.new_verdict(record.id) | {"source": record.source, "properties": record.properties}


# --- the work of each step ---------------------------------------------------------------------


def _relax(chain: Chain, record: Record, crystal: Crystal) -> dict[str, Any]:
    """Relax (or not, as the settings say) and put the result into ``record``."""
    from pymatgen.core import Lattice, Structure

    from topogen.dft.validate import relax_record

    structure, result = chain.relax(chain.crystal(crystal))
    info = relax_record(result, structure) if result else {"relaxed": False}
    record.structure = Structure(
        Lattice(structure.cell), list(structure.symbols), structure.positions,
        coords_are_cartesian=True,
    )  # fmt: skip
    record.properties["dft_relax"] = {
        k: info.get(k) for k in ("energy_eV", "total_force_eV_per_A", "pressure_kbar")
    } | {"relaxed": result is not None, "calculation": chain.settings.relax}
    return info


def _scf(chain: Chain, record: Record, crystal: Crystal) -> dict[str, Any]:
    return chain.scf(relaxed(crystal)).as_dict()


def _nscf(chain: Chain, record: Record, crystal: Crystal) -> dict[str, Any]:
    scf = chain.scf(relaxed(crystal), run=False)
    return chain.nscf(scf).as_dict()


def _wannierize(chain: Chain, record: Record, crystal: Crystal) -> dict[str, Any]:
    scf = chain.scf(relaxed(crystal), run=False)
    chain.nscf(scf, run=False)  # the dft_nscf step's job, not this one's
    return chain.wannier(scf).as_dict()


def _invariants(chain: Chain, record: Record, crystal: Crystal) -> dict[str, Any]:
    crystal = relaxed(crystal)
    verdict = _new_verdict(chain, record)
    verdict.update(chain.describe(crystal))
    scf = chain.scf(crystal, run=False)
    verdict.update(chain.conclude(scf, chain.wannier(scf, run=False)))
    return verdict


STEPS: dict[str, Work] = {
    "relax": _relax,
    "scf": _scf,
    "nscf": _nscf,
    "wannierize": _wannierize,
    "invariants": _invariants,
}


# --- candidates and edge states ----------------------------------------------------------------


def write_candidates(
    records: Iterable[Record], outdir: str | os.PathLike[str], output: Output = Path
) -> int:
    """One candidate file per record in ``outdir`` (unique names) and ``index.csv``
    (candidate, id, source, formula); returns the number written."""
    from topogen.dft.candidates import unique_names, write_candidate
    from topogen.io.atomic import write_text

    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    records = list(records)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["candidate", "id", "source", "formula"])
    for name, record in zip(unique_names(r.id for r in records), records, strict=True):
        write_candidate(record, output(outdir / f"{name}.json"))
        writer.writerow([name, record.id, record.source, record.formula])
    write_text(output(outdir / "index.csv"), buf.getvalue())
    return len(records)


def no_edge_states(w: dict[str, Any], plot: Path, data: Path, why: str, reason: str) -> None:
    """For a candidate without an edge spectrum: a plot saying why, and an npz with the
    reason (and the failed step, if any)."""
    import numpy as np

    from topogen.dft.cards import note_figure
    from topogen.io.atomic import atomic_path

    note_figure(plot, why + "\n" + reason[:200])
    with atomic_path(data) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(fh, failed_step=str(w.get("failed_step")), reason=reason)


def metallic(w: dict[str, Any]) -> list[str]:
    """Why a wannierize record is not an insulator (the verdict's criterion); empty if it is."""
    from topogen.dft.verdict import gap_problems

    return gap_problems(
        {
            "dft_gap_indirect_eV": (w.get("dft_band_edges") or {}).get("gap_indirect"),
            "wannier_gap_indirect_eV": (w.get("wannier_gaps") or {}).get("gap_indirect"),
        }
    )


def wannier_model(path: str | os.PathLike[str]) -> tuple[dict[str, Any], Path]:
    """The record of the wannierize step and its ``_hr.dat`` model (relative to the folder
    the step ran in, which must be the current one); a failed step's record and its path."""
    w = json.loads(Path(path).read_text(encoding="utf-8"))
    if w.get("status") == "failed":
        return w, Path(path)
    hr = Path(w["hr"])
    if not hr.exists():
        raise TopogenError(f"{path}: its model {hr} does not exist (run from there)")
    return w, hr


def edge_states(
    w: dict[str, Any],
    hr: Path,
    plot: Path,
    data: Path,
    *,
    edge: str,
    side: str,
    nk: int,
    ne: int,
    window: tuple[float, float],
    eta: float,
) -> EdgeSpectrum:
    """The surface spectral density of the model along the edge momentum: ``nk`` momenta in
    [-1/2, 1/2] x ``ne`` energies in ``window`` around mid-gap -> a PNG and an npz."""
    from topogen.topology.edges import write_edge_spectrum
    from topogen.topology.hr import read_hr

    edges = w["dft_band_edges"]
    zero = w["reference_eV"]  # the VBM of an insulator, the Fermi level of a metal
    mid = (edges["vbm"] + edges["cbm"]) / 2 if edges.get("cbm") is not None else zero
    title = f"{w.get('id', hr.parent.parent.name)}: {side} edge along {edge}"
    return write_edge_spectrum(
        read_hr(hr), plot, data, mid=mid, reference=zero, edge=edge, side=side, nk=nk, ne=ne,
        window=window, eta=eta, title=title, vbm_eV=edges["vbm"], cbm_eV=edges.get("cbm"),
    )  # fmt: skip
