"""Structure geometry and checks: slabs (one canonical 2D frame), sanity checks.

Depends on topogen.io only; used by calc, data, encode, screen and dft.
"""
