"""What a verdict says: the insulator check, the class, and the record of a candidate that failed.

Verdicts (``verdict`` of ``verdict.json`` and of the summary):

* ``topological``: a trusted insulator with Z2 = 1 or a non-zero spin Chern number;
* ``trivial``: a trusted insulator with Z2 = 0 and C_s = 0 (or C_s undefined);
* ``metal``: no positive indirect gap at the filling, in the DFT bands or in the Wannier
  model (a metal or semimetal: no insulator verdict, whatever its Z2);
* ``untrusted``: an insulator whose model failed a check (the reason lists them);
* ``failed``: the chain could not finish (the step, the reason and the file to read).

A step that fails for a reason of the candidate's own (:class:`~topogen.dft.qe.CandidateError`)
writes ``failed.json`` in the candidate's folder; later steps of the same settings find it
and hand the failure on instead of running, so every candidate ends with a verdict.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from topogen.io.atomic import write_text

__all__ = [
    "FAILURE_FILE",
    "VERDICTS",
    "classify",
    "failed_verdict",
    "gap_problems",
    "read_failure",
    "record_failure",
]

VERDICTS = ("topological", "trivial", "metal", "untrusted", "failed")
FAILURE_FILE = "failed.json"


def gap_problems(gaps: dict[str, float | None]) -> list[str]:
    """Why the DFT bands / Wannier model are not an insulator (empty: both have a positive
    indirect gap). ``gaps``: the ``dft_gap_indirect_eV`` and ``wannier_gap_indirect_eV``."""
    out = []
    for key, what in (("dft", "the DFT bands have"), ("wannier", "the Wannier model has")):
        gap = gaps.get(f"{key}_gap_indirect_eV")
        if gap is None or gap <= 0:
            shown = "none" if gap is None else f"{gap:.3f} eV"
            out.append(f"{what} no indirect gap at the filling ({shown}): metal or semimetal")
    return out


def parity_problem(z2: int | None, spin_chern: float | None) -> list[str]:
    """Z2 must equal C_s mod 2 where both are defined."""
    if z2 is None or spin_chern is None or abs(round(spin_chern)) % 2 == z2:
        return []
    return [f"Z2 = {z2} disagrees with the spin Chern number {spin_chern:g} (mod 2)"]


def classify(
    z2: int | None, spin_chern: float | None, problems: list[str], metallic: list[str]
) -> tuple[str, str]:
    """(verdict, reason) of a finished chain; ``metallic`` from :func:`gap_problems`."""
    if metallic:
        return "metal", "; ".join(metallic)
    if problems or z2 is None:
        return "untrusted", "; ".join(problems) or "no Z2"
    cs = "undefined" if spin_chern is None else f"{spin_chern:g}"
    if z2 == 1 or (spin_chern is not None and spin_chern != 0):
        return "topological", f"Z2 = {z2}, spin Chern {cs}"
    return "trivial", f"Z2 = 0, spin Chern {cs}"


def _key(settings: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in settings.items() if k != "max_seconds"}


def record_failure(
    workdir: str | os.PathLike[str], step: str, exc: Exception, settings: dict[str, Any]
) -> dict[str, Any]:
    """Write ``failed.json`` (step, reason, output to read, the settings) and return it."""
    failure = {
        "step": step,
        "reason": str(exc),
        "output": getattr(exc, "output", None),
        "settings": _key(settings),
    }
    write_text(Path(workdir) / FAILURE_FILE, json.dumps(failure, indent=2) + "\n")
    return failure


def read_failure(
    workdir: str | os.PathLike[str], settings: dict[str, Any]
) -> dict[str, Any] | None:
    """The recorded failure of this candidate under these settings (None: none, or one
    recorded under other settings, which may not fail the same way)."""
    try:
        failure = json.loads((Path(workdir) / FAILURE_FILE).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return failure if failure.get("settings") == _key(settings) else None


def failed_verdict(step: str, reason: str, output: str | None = None) -> dict[str, Any]:
    """The result fields of a verdict whose chain stopped at ``step``."""
    return {
        "status": "failed",
        "verdict": "failed",
        "reason": reason,
        "failed_step": step,
        "failed_output": output,
        "error": reason,
        "trusted": False,
        "z2": None,
        "spin_chern": None,
        "topological": None,
    }
