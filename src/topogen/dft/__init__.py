"""Quantum ESPRESSO + Wannier90: pseudopotentials, pw.x inputs and runs, Wannierisation,
and the validation chain that ends in Z2 / spin-Chern verdicts."""
