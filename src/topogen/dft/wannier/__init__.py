"""Wannier functions from pw.x: nscf, ``pw2wannier90.x``, ``wannier90.x``, and the checks.

Nothing is hand-picked by default:

* **projections** are atomic orbitals chosen from the valence shells listed in the
  pseudopotentials' headers (``PP_CHI``): each element's open shells (Bi 6p, Mo 4d and 5s,
  S 3p) are projected on, its full shells (Bi 5d and 6s, S 3s) are excluded from the
  Wannierisation with ``exclude_bands``, *provided* the DFT bands show them as an isolated
  group below the rest (a gap at every k). Where they are not isolated (Si 3s mixes with
  3p) the highest excluded shell is projected on too, and the test repeats. With spin-orbit
  the projections are spinors (two Wannier functions per orbital, up/down interleaved);
* ``num_wann``, ``num_bands`` and ``exclude_bands`` follow from that choice and the nscf
  ``nbnd`` (all valence states of the pseudopotentials plus ``extra_bands``);
* the **frozen window** reaches ``froz_margin`` eV above the valence band maximum (or the
  Fermi level of a metal), lowered where needed so that no k point holds more than
  ``num_wann`` bands inside it.

SCDM projections (``scdm=True``; erfc with mu at the top of the frozen window) are available
but not the default: with QE 6.7 and spinors they have broken the time-reversal symmetry of
the model (Kramers pairs split by 1-140 meV, different Z2 along the two loop directions)
where atomic projections gave exact pairs. Here, on the Bi bilayer, they gave Z2 = 1 both
ways but Wannier bands 0.11 eV off DFT (0.07 eV with projections) and mixed spins.

Before an invariant is trusted, :func:`wannierize` reports: the largest deviation of the
Wannier-interpolated bands (from the ``_hr.dat`` model itself) from DFT bands near the Fermi
level, at the SCF k points (off the Wannier mesh when the grids differ) and on the mesh; the
Kramers splitting of the model at the TRIM; and the spreads from the ``.wout``.

Modules: :mod:`~topogen.dft.wannier.projections` (the automatic choice),
:mod:`~topogen.dft.wannier.win` (windows and the ``.win`` file),
:mod:`~topogen.dft.wannier.output` (``.eig``, ``.wout``), :mod:`~topogen.dft.wannier.checks`
(model vs DFT bands) and :mod:`~topogen.dft.wannier.run` (:func:`wannierize`). The model's
gaps and time-reversal test live in :mod:`topogen.topology.gaps`.
"""

from topogen.dft.qe import CandidateError

__all__ = ["SEEDNAME", "WannierError"]

SEEDNAME = "wannier90"


class WannierError(CandidateError):
    """Wannier90 or pw2wannier90 failed, or the Wannierisation cannot be set up."""
