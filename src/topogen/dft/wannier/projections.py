"""Projections for Wannier90 chosen from the pseudopotentials' valence shells, and the
number of Wannier functions they give."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from topogen.dft.pseudos.upf import Shell, UpfHeader
from topogen.dft.wannier import WannierError

__all__ = ["ProjectionChoice", "choose_projections", "count_projections", "valence_states"]

_ORBITALS = {
    "s": 1, "p": 3, "d": 5, "f": 7, "pz": 1, "px": 1, "py": 1, "sp": 2, "sp2": 3, "sp3": 4,
    "sp3d": 5, "sp3d2": 6, "dxy": 1, "dxz": 1, "dyz": 1, "dz2": 1, "dx2-y2": 1,
}  # fmt: skip


@dataclass(frozen=True)
class ProjectionChoice:
    projections: tuple[str, ...]  # Wannier90 lines, e.g. ("Bi:p",)
    num_wann: int
    n_excluded: int  # bands below the projected manifold, excluded from Wannierisation
    spinors: bool
    projected: dict[str, tuple[str, ...]] = field(default_factory=dict)  # element -> shells
    excluded: dict[str, tuple[str, ...]] = field(default_factory=dict)
    isolation_gap: float | None = None  # eV between band n_excluded and n_excluded + 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "projections": list(self.projections),
            "num_wann": self.num_wann,
            "n_excluded": self.n_excluded,
            "spinors": self.spinors,
            "projected_shells": {k: list(v) for k, v in self.projected.items()},
            "excluded_shells": {k: list(v) for k, v in self.excluded.items()},
            "isolation_gap_eV": self.isolation_gap,
        }


def count_projections(line: str, counts: Mapping[str, int], spinors: bool) -> int:
    """Wannier functions produced by one projection line (``Bi:p``, ``Si:sp3``, ``Mo:l=2``)."""
    if ":" not in line:
        raise WannierError(f"cannot read projection {line!r} (expected 'Site:orbitals')")
    site, orbitals = (s.strip() for s in line.split(":", 1))
    orbitals = orbitals.split(":")[0]  # drop ':z=...' etc.
    if site not in counts:
        raise WannierError(f"projection {line!r}: no atom {site!r} in the structure")
    n = 0
    for orb in orbitals.split(";"):
        orb = orb.strip().lower()
        m = re.fullmatch(r"l\s*=\s*(-?\d)(?:\s*,\s*mr\s*=\s*([\d,\s]+))?", orb)
        if m:
            lval = int(m.group(1))
            if m.group(2):
                n += len([x for x in m.group(2).split(",") if x.strip()])
            else:
                n += {-1: 2, -2: 3, -3: 4, -4: 5, -5: 6}.get(lval, 2 * lval + 1)
        elif orb in _ORBITALS:
            n += _ORBITALS[orb]
        else:
            raise WannierError(f"projection {line!r}: unknown orbital {orb!r}")
    return n * counts[site] * (2 if spinors else 1)


def _ordered_shells(header: UpfHeader) -> list[Shell]:
    """Shells by increasing pseudo-atom energy (file order where energies are missing)."""
    shells = list(header.shells)
    if all(s.energy is not None for s in shells):
        shells.sort(key=lambda s: s.energy)
    return shells


def choose_projections(
    symbols: Sequence[str],
    headers: Mapping[str, UpfHeader],
    eigenvalues: np.ndarray | None,
    spinors: bool,
    isolation_tol: float = 0.05,
) -> ProjectionChoice:
    """Projections from the pseudopotentials' valence shells (see the module docstring).

    ``eigenvalues`` (nk, nbnd) in eV decide which full shells may be excluded: the bands they
    account for must lie at least ``isolation_tol`` eV below the next band at every k. With
    ``eigenvalues=None`` the first guess (open shells only) is returned.
    """
    counts = {el: list(symbols).count(el) for el in dict.fromkeys(symbols)}
    per_band = 1 if spinors else 2
    projected: dict[str, list[Shell]] = {}
    excluded: dict[str, list[Shell]] = {}
    for el in counts:
        shells = _ordered_shells(headers[el])
        electrons = sum(s.occupation for s in shells)
        if shells and abs(electrons - headers[el].z_valence) > 1e-3:
            raise WannierError(
                f"{headers[el].path}: the PP_CHI shells hold {electrons:g} electrons but "
                f"z_valence is {headers[el].z_valence:g}; give the projections explicitly"
            )
        if not shells:
            raise WannierError(
                f"{headers[el].path}: the pseudopotential lists no valence wavefunctions "
                "(PP_CHI); give the projections explicitly"
            )
        open_ = [s for s in shells if not s.is_full]
        if not open_:  # closed-shell atom: project on its highest shell
            open_ = [shells[-1]]
        projected[el] = [s for s in shells if s in open_]
        excluded[el] = [s for s in shells if s not in open_]

    while True:
        n_excl = sum(counts[el] * s.capacity for el in counts for s in excluded[el]) // per_band
        gap = None
        if n_excl and eigenvalues is not None:
            eig = np.asarray(eigenvalues)
            if eig.shape[1] <= n_excl:
                raise WannierError(f"{eig.shape[1]} bands computed, {n_excl} to exclude")
            gap = float(eig[:, n_excl].min() - eig[:, n_excl - 1].max())
        if not n_excl or eigenvalues is None or gap >= isolation_tol:
            break
        # not isolated: project on the highest excluded shell as well
        el, shell = max(
            ((el, s) for el in counts for s in excluded[el]),
            key=lambda t: (t[1].energy if t[1].energy is not None else 0.0, t[1].l),
        )
        excluded[el].remove(shell)
        projected[el] = [s for s in _ordered_shells(headers[el]) if s in (*projected[el], shell)]

    lines, num_wann = [], 0
    for el in counts:
        letters = ";".join(dict.fromkeys(s.letter for s in projected[el]))
        lines.append(f"{el}:{letters}")
        num_wann += counts[el] * sum(2 * s.l + 1 for s in projected[el]) * (2 if spinors else 1)
    return ProjectionChoice(
        tuple(lines),
        num_wann,
        n_excl,
        spinors,
        {el: tuple(s.label for s in projected[el]) for el in counts},
        {el: tuple(s.label for s in excluded[el]) for el in counts},
        gap,
    )


def valence_states(symbols: Sequence[str], headers: Mapping[str, UpfHeader], spinors: bool) -> int:
    """Bands spanned by every valence shell of every atom (spin included)."""
    per = 2 if spinors else 1
    return sum(sum(2 * s.l + 1 for s in headers[el].shells) * per for el in symbols)
