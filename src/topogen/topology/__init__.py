"""Tight-binding models and their topological invariants (Chern, Z2, spin Chern).

numpy API re-exported here; the torch twins live in :mod:`topogen.topology.batched`.
"""

from topogen.topology.analysis import analyse
from topogen.topology.gaps import model_gap
from topogen.topology.hr import TBModel, as_hamiltonian, hamiltonian, read_hr, write_hr
from topogen.topology.invariants import (
    SpinChern,
    Z2Result,
    chern_number,
    spin_axis_operator,
    spin_chern,
    spin_chern_number,
    wannier_centres,
    z2_invariant,
)
from topogen.topology.models import bhz, haldane, kane_mele
from topogen.topology.spinors import (
    is_time_reversal_symmetric,
    kramers_splitting,
    spin_operator,
    time_reversal_matrix,
)

__all__ = [
    "SpinChern",
    "TBModel",
    "Z2Result",
    "analyse",
    "as_hamiltonian",
    "bhz",
    "chern_number",
    "haldane",
    "hamiltonian",
    "is_time_reversal_symmetric",
    "kane_mele",
    "kramers_splitting",
    "model_gap",
    "read_hr",
    "spin_axis_operator",
    "spin_chern",
    "spin_chern_number",
    "spin_operator",
    "time_reversal_matrix",
    "wannier_centres",
    "write_hr",
    "z2_invariant",
]
