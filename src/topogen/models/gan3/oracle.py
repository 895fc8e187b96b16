"""Stage III's oracles: scores of generated crystals that no gradient flows through.

For each decoded structure (``None``: the image did not decode):

1. structural check (:func:`topogen.io.sanity.structure_problem`: atoms closer than 0.5 A,
   a degenerate cell) and a 2D check (a vacuum gap along c, :func:`topogen.calc.slabs.is_2d`);
2. CHGNet relaxation (batched FIRE, in-plane cell and positions; :mod:`topogen.calc.relax`);
3. phonons of the relaxed crystal with CHGNet forces and phonopy (:mod:`topogen.calc.phonons`):
   the stability score in [0, 1] documented there (1 exactly when dynamically stable);
4. the CGCNN band gap of the relaxed crystal mapped to [0, 1] (:func:`~topogen.models.cgcnn.
   gap_score`), when a band-gap model is given; NaN otherwise.

A structure that fails a step scores 0 on both (it is not a usable 2D crystal) and keeps
the reason. "Stable" means the phonon verdict is stable; "insulating" means a predicted gap
of at least ``band_gap_min`` eV.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch


@dataclass
class OracleSettings:
    """Relaxation and phonon settings of the Stage III oracle (config train.gan.stage3)."""

    fmax: float = 0.05  # eV/A
    relax_steps: int = 150
    min_repeat_2d: int = 6  # smallest in-plane phonon supercell (see topogen.calc.phonons)
    band_gap_min: float = 0.1  # eV: "insulating"
    min_distance: float = 0.5  # A
    batch_size: int = 16  # structures per CHGNet call while relaxing


@dataclass
class OracleScores:
    """Per-structure oracle output (arrays of the batch's length)."""

    stability: np.ndarray  # [0, 1]
    gap_score: np.ndarray  # [0, 1], NaN without a band-gap model
    stable: np.ndarray  # bool
    insulating: np.ndarray  # bool (False without a band-gap model)
    gap: np.ndarray  # eV, NaN where not predicted
    reasons: list[str] = field(default_factory=list)
    relaxed: list[Any] = field(default_factory=list)  # relaxed structures (None on failure)

    def summary(self, has_gap: bool) -> dict[str, float]:
        """Fractions of the batch: decodable, stable, insulating, both (NaN without gaps)."""
        n = max(1, len(self.stability))
        nan = float("nan")
        ok = np.array([r is not None for r in self.relaxed])
        return {
            "relaxed": float(ok.sum() / n),
            "stable": float(self.stable.sum() / n),
            "insulating": float(self.insulating.sum() / n) if has_gap else nan,
            "both": float((self.stable & self.insulating).sum() / n) if has_gap else nan,
            "mean_stability": float(self.stability.mean()) if len(self.stability) else nan,
        }


class Oracle:
    """CHGNet + phonopy stability and CGCNN gap scores of structures (module docstring)."""

    def __init__(
        self,
        settings: OracleSettings | None = None,
        band_gap_model: Any = None,
        chgnet: Any = None,
        threads: int | None = None,
    ) -> None:
        self.settings = settings or OracleSettings()
        self.band_gap_model = band_gap_model
        self._chgnet = chgnet
        self.threads = threads

    @property
    def chgnet(self) -> Any:
        if self._chgnet is None:
            from topogen.calc.relax import load_model

            self._chgnet = load_model()
        return self._chgnet

    def __call__(self, structures: list[Any]) -> OracleScores:
        from topogen.calc.phonons import phonons_batch
        from topogen.calc.relax import relax_batch
        from topogen.calc.slabs import is_2d
        from topogen.io.sanity import structure_problem

        s = self.settings
        n = len(structures)
        stability, gap = np.zeros(n), np.full(n, np.nan)
        stable = np.zeros(n, dtype=bool)
        reasons = ["" for _ in range(n)]
        relaxed: list[Any] = [None] * n
        todo = []
        for i, st in enumerate(structures):
            if st is None:
                reasons[i] = "undecodable image"
                continue
            problem = structure_problem(st, s.min_distance)
            if problem is None and not is_2d(st):
                problem = "not a 2D layer (no vacuum gap along c)"
            if problem:
                reasons[i] = problem
                continue
            todo.append(i)
        if todo:
            results = relax_batch(
                [structures[i] for i in todo],
                model=self.chgnet,
                fmax=s.fmax,
                steps=s.relax_steps,
                batch_size=s.batch_size,
                threads=self.threads,
            )
            kept = []
            for i, r in zip(todo, results, strict=True):
                problem = r.error or structure_problem(r.structure, s.min_distance)
                if problem is None and not is_2d(r.structure):
                    problem = "relaxation left the 2D layer"
                if problem:
                    reasons[i] = f"relaxation: {problem}"
                    continue
                relaxed[i] = r.structure
                kept.append(i)
            phonons = phonons_batch(
                [relaxed[i] for i in kept],
                model=self.chgnet,
                threads=self.threads,
                min_repeat_2d=s.min_repeat_2d,
                two_d=True,
                dos=False,
            )
            for i, ph in zip(kept, phonons, strict=True):
                reasons[i] = ph.reason()
                if ph.error:
                    relaxed[i] = None
                    continue
                stability[i] = float(ph.score or 0.0)
                stable[i] = bool(ph.stable)
            ok = [i for i in kept if relaxed[i] is not None]
            if self.band_gap_model is not None and ok:
                from topogen.models.cgcnn.model import predict_gaps

                gap[ok] = predict_gaps(self.band_gap_model, [relaxed[i] for i in ok]).numpy()
        if self.band_gap_model is not None:
            from topogen.models.cgcnn.model import gap_score as to_score

            gap_score = to_score(torch.as_tensor(np.nan_to_num(gap))).numpy()
        else:
            gap_score = np.full(n, np.nan)
        insulating = np.nan_to_num(gap, nan=-1.0) >= s.band_gap_min
        return OracleScores(stability, gap_score, stable, insulating, gap, reasons, relaxed)
