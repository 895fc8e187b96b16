"""Element tables shared by the encodings: supported elements and per-element features.

Supported elements are Z = 1..103 (H..Lr), the elements with tabulated data in pymatgen
that occur in crystal databases; every element vector in ``topogen.encode`` has length
``MAX_Z`` and index ``Z - 1``.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from functools import lru_cache

import numpy as np

from topogen.encode import EncodingError

MAX_Z = 103
N_BINS = 10  # bins per continuous property in the CGCNN-like features (+1 "unknown" bin)


def check_atomic_numbers(numbers: Iterable[int]) -> np.ndarray:
    """Atomic numbers as an int64 array; raise EncodingError for Z outside 1..MAX_Z."""
    z = np.asarray(list(numbers) if not isinstance(numbers, np.ndarray) else numbers)
    z = z.astype(np.int64).reshape(-1)
    bad = z[(z < 1) | (z > MAX_Z)]
    if bad.size:
        raise EncodingError(
            f"unsupported atomic number(s) {sorted(set(bad.tolist()))}: "
            f"topogen encodes Z = 1..{MAX_Z}"
        )
    return z


def onehot_features(numbers: Iterable[int]) -> np.ndarray:
    """(N, MAX_Z) one-hot rows, column Z - 1."""
    z = check_atomic_numbers(numbers)
    out = np.zeros((z.size, MAX_Z), dtype=np.float32)
    out[np.arange(z.size), z - 1] = 1.0
    return out


def _binned(values: np.ndarray) -> np.ndarray:
    """One-hot of N_BINS equal-width bins over the finite range, plus an 'unknown' column."""
    out = np.zeros((values.size, N_BINS + 1), dtype=np.float32)
    finite = np.isfinite(values)
    lo, hi = values[finite].min(), values[finite].max()
    scaled = (np.where(finite, values, lo) - lo) / max(hi - lo, 1e-12) * N_BINS
    idx = np.where(finite, np.clip(scaled.astype(np.int64), 0, N_BINS - 1), N_BINS)
    out[np.arange(values.size), idx] = 1.0
    return out


@lru_cache(maxsize=1)
def cgcnn_like_table() -> np.ndarray:
    """(MAX_Z, F) float32 table of CGCNN-style one-hot element features.

    After Xie & Grossman, PRL 120, 145301 (2018): group (18), period (7), block (4) one-hot,
    and electronegativity, atomic radius, first ionisation energy, electron affinity and
    molar volume each in 10 equal-width bins plus an 'unknown' bin (F = 84). The values come
    from pymatgen's element data, not from CGCNN's ``atom_init.json``.
    """
    from pymatgen.core import Element

    def num(value: object) -> float:
        try:
            return float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return float("nan")

    group, row, block, cont = [], [], [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for z in range(1, MAX_Z + 1):
            el = Element.from_Z(z)
            group.append(el.group)
            row.append(el.row)
            block.append("spdf".index(el.block))
            ies = el.ionization_energies
            cont.append(
                [
                    num(el.X),
                    num(el.atomic_radius),
                    num(ies[0] if ies else None),
                    num(el.electron_affinity),
                    num(el.molar_volume),
                ]
            )
    eye = np.eye
    parts = [
        eye(18, dtype=np.float32)[np.array(group) - 1],
        eye(7, dtype=np.float32)[np.array(row) - 1],
        eye(4, dtype=np.float32)[np.array(block)],
    ]
    values = np.array(cont, dtype=np.float64)
    parts += [_binned(values[:, k]) for k in range(values.shape[1])]
    return np.concatenate(parts, axis=1)


def cgcnn_like_features(numbers: Iterable[int]) -> np.ndarray:
    """(N, 84) CGCNN-like feature rows for the given atomic numbers."""
    return cgcnn_like_table()[check_atomic_numbers(numbers) - 1]
