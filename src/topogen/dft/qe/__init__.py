"""Quantum ESPRESSO ``pw.x`` for 2D crystals.

* :mod:`~topogen.dft.qe.crystal`: :class:`Crystal` (from ASE ``Atoms``, a pymatgen
  ``Structure`` or its dict) in the frame ``assume_isolated='2D'`` needs; k grids;
* :mod:`~topogen.dft.qe.namelists`: Fortran namelists, read and written;
* :mod:`~topogen.dft.qe.pwinput`: :func:`pw_input` -> :class:`PwInput` (namelists + cards);
* :mod:`~topogen.dft.qe.launcher`: :class:`Launcher` (``srun``/``mpirun``/none, pools) and
  :func:`run_program`;
* :mod:`~topogen.dft.qe.output`: :func:`parse_pw_output` -> :class:`PwOutput`;
* :mod:`~topogen.dft.qe.handlers`: :func:`run_pw` with restarts, one folder per attempt.

:class:`EspressoError` is defined here, for all of them.
"""

from topogen.errors import TopogenError

__all__ = ["EspressoError"]


class EspressoError(TopogenError):
    """pw.x cannot be set up or run, or its output cannot be read."""
