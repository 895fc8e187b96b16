"""Wannier90 outputs: band energies (``.eig``) and spreads, centres and errors (``.wout``)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from topogen.dft.wannier import WannierError

__all__ = ["WoutResult", "parse_wout", "read_eig"]


def read_eig(path: str | os.PathLike[str]) -> np.ndarray:
    """A ``.eig`` file as ``(nk, num_bands)`` eV."""
    path = Path(path)
    try:
        data = np.loadtxt(path, ndmin=2)
    except (OSError, ValueError) as exc:
        raise WannierError(f"{path}: cannot read .eig file: {exc}") from None
    nb, nk = int(data[:, 0].max()), int(data[:, 1].max())
    if len(data) != nb * nk:
        raise WannierError(f"{path}: {len(data)} lines, expected {nb} x {nk}")
    eig = np.zeros((nk, nb))
    eig[data[:, 1].astype(int) - 1, data[:, 0].astype(int) - 1] = data[:, 2]
    return eig


@dataclass
class WoutResult:
    centres: np.ndarray | None  # (num_wann, 3) A cartesian
    spreads: np.ndarray | None  # (num_wann,) A^2
    omega_i: float | None
    omega_d: float | None
    omega_od: float | None
    omega_total: float | None
    disentanglement_converged: bool | None
    wannierisation_converged: bool | None
    wall_time: float | None
    errors: list[str]

    def as_dict(self) -> dict[str, Any]:
        return {
            "centres_A": None if self.centres is None else self.centres.tolist(),
            "spreads_A2": None if self.spreads is None else self.spreads.tolist(),
            "omega_i_A2": self.omega_i,
            "omega_d_A2": self.omega_d,
            "omega_od_A2": self.omega_od,
            "omega_total_A2": self.omega_total,
            "disentanglement_converged": self.disentanglement_converged,
            "wannierisation_converged": self.wannierisation_converged,
            "wall_time_s": self.wall_time,
            "errors": self.errors,
        }


_F = r"[-+]?\d+\.\d+(?:[eE][-+]?\d+)?"


def parse_wout(source: str | os.PathLike[str], text: str | None = None) -> WoutResult:
    """Final centres and spreads, the Omega terms and the error messages of a ``.wout``."""
    if text is None:
        try:
            text = Path(source).read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            raise WannierError(f"{source}: cannot read .wout: {exc}") from None
    centres = spreads = None
    i = text.rfind("Final State")
    if i >= 0:
        rows = re.findall(
            rf"WF centre and spread\s+\d+\s+\(\s*({_F}),\s*({_F}),\s*({_F})\s*\)\s+({_F})", text[i:]
        )
        if rows:
            arr = np.array(rows, dtype=float)
            centres, spreads = arr[:, :3], arr[:, 3]

    def last(pattern: str) -> float | None:
        found = re.findall(pattern, text[i:] if i >= 0 else text)
        return float(found[-1]) if found else None

    errors = [" ".join(m.split()) for m in re.findall(r"Error[:!]?\s*(.*)", text) if m.strip()]
    if "Exiting" in text and not errors:
        errors.append("wannier90 exited early")
    dis = None
    if "DISENTANGLE" in text:
        dis = "Disentanglement convergence criteria satisfied" in text
    wan = None
    if "WANNIERISE" in text or "Wannierisation" in text:
        wan = bool(re.search(r"Wannierisation convergence criteria satisfied", text)) or None
    wall = re.findall(rf"Total Execution Time\s+({_F})", text)
    return WoutResult(
        centres,
        spreads,
        last(rf"Omega I\s+=\s+({_F})"),
        last(rf"Omega D\s+=\s+({_F})"),
        last(rf"Omega OD\s+=\s+({_F})"),
        last(rf"Omega Total\s+=\s+({_F})"),
        dis,
        wan,
        float(wall[-1]) if wall else None,
        errors,
    )
