"""The tight-binding network for periodic metamaterials: Peano, Sapper, Marquardt, "Rapid
exploration of topological band structures using deep learning", PRX 11, 021052 (2021).

A convolutional network maps the unit-cell potential of a C6-symmetric (p6) metamaterial
to the independent parameters of a symmetry-enhanced tight-binding model (:mod:`.tb`),
whose bands come from a differentiable, degenerate-safe ``eigh``
(:func:`topogen.topology.batched.eigh`). Modules: :mod:`.symmetry` (lattices, rotations,
labels), :mod:`.potentials`, :mod:`.exact` (plane waves; finite differences + Lanczos),
:mod:`.data`, :mod:`.network`, :mod:`.train`, :mod:`.evaluate`, :mod:`.explore` (band sets,
EBRs, fragile topology), :mod:`.design` (gradient-based design).

Departures from the paper, and why:

- the wedge grid has 91 k points (12 intervals per side of the Gamma-K-K' triangle, every
  high-symmetry point on it), not 79;
- the exact solver's plane-wave cut-off is 1200 E0 by default (600 in ``make demo``, 2400
  in ``config/paper.yaml``); step potentials converge slowly (bands move by up to 2% of
  Vmax from 1200 to 2400 E0 for the same image), so the network is trained and judged
  against one stated discretisation, the potential being the image's Fourier series cut
  to a disc inside its Nyquist box (C6-invariant, so the symmetry is exact);
- the TB model's orbitals (two s, two p, two d, one f at 1a) and hopping range (2 a;
  2.7 a in the benchmark) are ours: enough blocks for the symmetry content of the lowest
  six bands of 300 random potentials;
- the per-irrep-block loss compares, per rotation label, the exact energies with the
  lowest eigenvalues of the model's block; its weight r is 1, lowered tenfold for the last
  quarter of the epochs;
- the BHZ (p4, class D) Chern case of the paper is not built yet (the TB model and labels
  support p4 without time reversal; the data and training are missing).
"""
