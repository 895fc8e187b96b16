"""Calculators over pymatgen/ASE (CHGNet relaxation, phonons): used by data and screen.

Depends on topogen.io only, so that both the data stage (the relaxed offline library) and
the screening funnel can use one implementation.
"""
