"""Quantum ESPRESSO ``pw.x`` for 2D crystals.

* :mod:`~topogen.dft.qe.crystal`: :class:`Crystal` (from ASE ``Atoms``, a pymatgen
  ``Structure`` or its dict) in the frame ``assume_isolated='2D'`` needs; k grids;
* :mod:`~topogen.dft.qe.namelists`: Fortran namelists, read and written;
* :mod:`~topogen.dft.qe.pwinput`: :func:`pw_input` -> :class:`PwInput` (namelists + cards);
* :mod:`~topogen.dft.qe.launcher`: :class:`Launcher` (``srun``/``mpirun``/none, pools) and
  :func:`run_program`;
* :mod:`~topogen.dft.qe.output`: :func:`parse_pw_output` -> :class:`PwOutput`;
* :mod:`~topogen.dft.qe.handlers`: :func:`run_pw` with restarts, one folder per attempt.

:class:`EspressoError` is defined here, for all of them, and :class:`CandidateError`: a
failure that is a property of the candidate, not of the set-up.
"""

from __future__ import annotations

from pathlib import Path

from topogen.errors import TopogenError

__all__ = ["CandidateError", "EspressoError"]


class EspressoError(TopogenError):
    """pw.x cannot be set up or run, or its output cannot be read."""


class CandidateError(EspressoError):
    """A failure that is a property of the candidate (pw.x did not converge after every
    handler, Wannierisation impossible, no valid 2D cell): the workflow records it as a
    ``failed`` verdict and goes on. ``output``: the file to read; ``permanent=False`` (a run
    stopped at its time limit) means running again may succeed."""

    def __init__(
        self, message: str, output: str | Path | None = None, permanent: bool = True
    ) -> None:
        super().__init__(message)
        self.output = None if output is None else str(output)
        self.permanent = permanent
