"""Exploration of many potentials through the network (the paper's Sec. V): isolated band
sets, their symmetry fingerprints, and fragile topology.

Band sets: the lowest bands split where the gap to the next band stays above ``gap`` (units
of vmax) over the whole k grid (the irreducible wedge holds every band energy of p6 with
time reversal), or, as the paper's cheaper and wrong check, only at Gamma, K, M. A set is
complete when its upper gap lies within the bands learnt.

Fingerprint: how many bands of the set carry each rotation label at Gamma (C6), K (C3) and
M (C2). Elementary band representations (EBRs) of p6 with spinless time reversal are
induced from orbitals at the Wyckoff positions 1a (C6: s, f, (p), (d)), 2b (C3: s, (p)) and
3c (C2: s, p), their label counts computed here from the characters of the induced
representation (no table copied). A set whose fingerprint is not a sum of EBRs with
non-negative integer coefficients cannot come from exponentially localised symmetric
Wannier functions of those orbitals: fragile topology (the paper: about 4% of the second
band sets, 14% when connections are checked only at the high-symmetry points).
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import numpy as np
import torch

from topogen.models.tbnn.evaluate import predicted_labels
from topogen.models.tbnn.network import TBNN
from topogen.models.tbnn.symmetry import Lattice

__all__ = ["band_sets", "ebrs", "explore", "fingerprint", "is_fragile"]

# Wyckoff positions of p6 (a1, a2 at 60 degrees): sites (fractional) and the angular
# momenta of the orbitals whose (time-reversal-real) irreps induce the EBRs.
WYCKOFF = {
    "1a": ([(0.0, 0.0)], {"A": [0], "B": [3], "E1": [1, -1], "E2": [2, -2]}),
    "2b": ([(1 / 3, 1 / 3), (2 / 3, 2 / 3)], {"A": [0], "E": [1, -1]}),
    "3c": ([(0.5, 0.0), (0.0, 0.5), (0.5, 0.5)], {"A": [0], "B": [1]}),
}


def _label_slots(lattice: Lattice) -> list[tuple[str, int]]:
    return [(p, j) for p in lattice.points for j in range(lattice.point_order(p))]


def ebrs(lattice: Lattice) -> dict[str, np.ndarray]:
    """Label counts (in the order of :func:`_label_slots`) of every EBR, e.g. ``"2b:A"``.

    The character of C^(p q) on the Bloch sums of an orbit at a point k* it fixes is the sum,
    over the sites it maps to themselves up to a lattice vector T (C tau = tau + T), of
    exp(-i (C k*).T) times the orbital's character exp(i m theta); the label counts follow
    by projecting on exp(2 pi i j / order)."""
    out = {}
    for wyckoff, (sites, orbitals) in WYCKOFF.items():
        for name, ms in orbitals.items():
            counts = []
            for point, (k, p) in lattice.points.items():
                order = lattice.point_order(point)
                chars = []
                for q in range(order):
                    rot = lattice.rotation_frac(p * q)
                    krot = lattice.rotation_recip(p * q) @ np.array(k)
                    total = 0j
                    for tau in sites:
                        image = rot @ np.array(tau)
                        shift = image - np.array(tau)
                        if np.allclose(shift, np.rint(shift), atol=1e-9):
                            phase = np.exp(-2j * math.pi * krot @ np.rint(shift))
                            theta = 2 * math.pi * p * q / lattice.order
                            total += phase * sum(np.exp(1j * m * theta) for m in ms)
                    chars.append(total)
                for j in range(order):
                    n = sum(c * np.exp(-2j * math.pi * j * q / order) for q, c in enumerate(chars))
                    counts.append(round((n / order).real))
            out[f"{wyckoff}:{name}"] = np.array(counts)
    return out


def fingerprint(lattice: Lattice, labels: dict[str, np.ndarray], bands: range) -> np.ndarray:
    """Label counts of ``bands`` given each band's labels per point."""
    slots = _label_slots(lattice)
    counts = Counter((p, int(labels[p][b])) for p in lattice.points for b in bands)
    return np.array([counts[s] for s in slots])


def is_fragile(vector: np.ndarray, table: dict[str, np.ndarray]) -> bool:
    """Whether ``vector`` is not a non-negative integer sum of the EBRs in ``table``
    (depth-first, each coefficient bounded by what is left)."""
    vecs = list(table.values())

    def fits(i: int, rest: np.ndarray) -> bool:
        if not rest.any():
            return True
        if i == len(vecs):
            return False
        v = vecs[i]
        most = int(min(rest[v > 0] // v[v > 0]))
        return any(fits(i + 1, rest - c * v) for c in range(most, -1, -1))

    return not fits(0, np.asarray(vector))


def band_sets(energies: np.ndarray, gap: float, n_bands: int) -> list[range]:
    """Complete isolated sets among the lowest ``n_bands`` bands of ``energies (n_k, >=
    n_bands)``: split after band b when min_k (E_{b+1} - E_b) > gap."""
    sets, start = [], 0
    for b in range(n_bands - 1):
        if np.min(energies[:, b + 1] - energies[:, b]) > gap:
            sets.append(range(start, b + 1))
            start = b + 1
    return sets


@torch.no_grad()
def explore(
    model: TBNN,
    images: np.ndarray,
    kpoints: np.ndarray,
    gap: float = 1e-3,
    batch: int = 500,
    exact: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Band sets, fingerprints and fragile second sets of ``images`` (units of vmax)
    through the network, on the fine grid ``kpoints`` and at the high-symmetry points only;
    with ``exact`` (energies on ``kpoints`` and labels, e.g. a validation set), the same
    from the exact bands, and the agreement per potential."""
    lattice = model.tb.lattice
    n = model.hparams.n_bands
    table = ebrs(lattice)
    memo: dict[tuple[int, ...], bool] = {}

    def fragile(vec: np.ndarray) -> bool:
        key = tuple(int(x) for x in vec)
        if key not in memo:
            memo[key] = is_fragile(vec, table)
        return memo[key]

    hsp = np.array([lattice.points[p][0] for p in lattice.points])

    def classify(energies: np.ndarray, at_points: np.ndarray, labels: dict[str, np.ndarray]):
        out = []
        for i in range(len(energies)):
            row = {}
            for mode, e in (("fine", energies[i]), ("points", at_points[i])):
                sets = band_sets(e, gap, n)
                second = sets[1] if len(sets) > 1 else None
                lab = {p: labels[p][i] for p in labels}
                if second is None:
                    row[mode] = None
                else:
                    vec = fingerprint(lattice, lab, second)
                    row[mode] = {"bands": [second.start, second.stop], "fragile": fragile(vec),
                                 "fingerprint": vec.tolist()}  # fmt: skip
            out.append(row)
        return out

    rows = []
    for start in range(0, len(images), batch):
        x = torch.as_tensor(images[start : start + batch], dtype=torch.float32)
        params = model(x)
        e_fine = model.tb.bands(params, kpoints).cpu().numpy()
        e_pts = model.tb.bands(params, hsp).cpu().numpy()
        rows += classify(e_fine, e_pts, predicted_labels(model, params))
    summary = _summary(rows, table)
    if exact is not None:
        e = exact["energies"] / exact["vmax"]
        idx = [int(np.argmin(np.abs(kpoints - k).sum(axis=1))) for k in hsp]
        truth = classify(e, e[:, idx], exact["labels"])
        summary["exact"] = _summary(truth, table)
        agree = [
            (a["fine"] or {}).get("fragile") == (b["fine"] or {}).get("fragile")
            and (a["fine"] or {}).get("bands") == (b["fine"] or {}).get("bands")
            for a, b in zip(rows[: len(truth)], truth, strict=True)
        ]
        summary["agreement_with_exact"] = float(np.mean(agree))
    return summary


def _summary(rows: list[dict[str, Any]], table: dict[str, np.ndarray]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "n_potentials": len(rows),
        "ebrs": {k: v.tolist() for k, v in table.items()},
    }
    for mode in ("fine", "points"):
        second = [r[mode] for r in rows if r[mode] is not None]
        fragile = [s for s in second if s["fragile"]]
        prints = Counter(tuple(s["fingerprint"]) for s in second)
        out[mode] = {
            "with_second_set": len(second),
            "fragile": len(fragile),
            "fragile_fraction_of_second_sets": len(fragile) / len(second) if second else None,
            "fragile_fraction_of_potentials": len(fragile) / len(rows) if rows else None,
            "fingerprints": [
                {"fingerprint": list(k), "count": c} for k, c in prints.most_common(10)
            ],
        }
    return out
