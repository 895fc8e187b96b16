"""Stage III's oracles: scores of generated crystals that no gradient flows through.

For each decoded structure (``None``: the image did not decode):

1. structural check (:func:`topogen.structure.sanity.structure_problem`: atoms closer than
   0.5 A, a degenerate cell) and a 2D check (a vacuum gap along c,
   :func:`topogen.structure.slabs.is_2d`);
2. CHGNet relaxation (batched FIRE, in-plane cell and positions, in the canonical 2D frame;
   :mod:`topogen.calc.relax`); one that does not converge within ``relax_steps`` fails
   ("relaxation: not converged in N steps") and goes no further: an unrelaxed structure's
   phonons say nothing about its stability;
3. phonons of the relaxed crystal with CHGNet forces and phonopy (:mod:`topogen.calc.phonons`):
   the stability score in [0, 1] documented there (1 exactly when dynamically stable); with
   ``prescreen`` (off by default) a crystal clearly unstable on that small supercell stops
   there (:mod:`topogen.calc.phonons` says why it is off);
4. the CGCNN band gap of the relaxed crystal mapped to [0, 1] (:func:`~topogen.models.cgcnn.model.
   gap_score`), when a band-gap model is given; NaN otherwise;
5. the topology score of the relaxed crystal (a CrystalBERT topology classifier's probability
   of "topological", :class:`~topogen.models.crystalbert.scorer.TopologyClassifier`), when a
   topology model is given; NaN otherwise.

The steps are one :class:`~topogen.calc.chain.Chain` of the calculators of
:mod:`topogen.calc.calculators`, the same ones the screening funnel uses.

A structure that fails a step scores 0 on all (it is not a usable 2D crystal) and keeps
the reason. The gap and topology steps score every relaxed crystal (no threshold stops the
chain there: a metal still gets its topology score, for the reward model to learn).
"Stable" means the phonon verdict is stable; "insulating" a predicted gap of at least
``band_gap_min`` eV; "topological" a topology score of at least ``topology_min``.

One call scores a whole epoch's samples: they relax together in one lock-step batch
(``batch_size`` >= the ``oracle_samples`` of the demo, 32, and of the paper-scale config, 64),
shared by ``workers`` single-thread processes (default: one per thread; on small CPU nodes
several single-thread processes beat one multi-threaded one, :mod:`topogen.calc.workers`).
Fractions of a batch come with a binomial confidence interval (:func:`wilson_interval`,
90% by default: :data:`CONFIDENCE`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from topogen.calc.calculators import BAND_GAP_MIN, TOPOLOGY_MIN
from topogen.calc.phonons import MIN_REPEAT_2D, PRESCREEN
from topogen.calc.relax import RelaxSettings
from topogen.structure.sanity import MIN_DISTANCE, structure_problem
from topogen.structure.slabs import is_2d

CONFIDENCE = 0.9  # of the binomial intervals of oracle fractions
VERDICTS = ("stable", "insulating", "both", "topological", "all")

if TYPE_CHECKING:
    from topogen.calc.chain import Chain


@dataclass
class OracleSettings:
    """Relaxation and phonon settings of the Stage III oracle (config train.gan.stage3)."""

    fmax: float = RelaxSettings.fmax  # eV/A
    relax_steps: int = 150
    min_repeat_2d: int = MIN_REPEAT_2D  # smallest in-plane phonon supercell
    prescreen: int = PRESCREEN  # phonon pre-screen supercell n x n x 1 (0: none; see calc)
    band_gap_min: float = BAND_GAP_MIN  # eV: "insulating"
    topology_min: float = TOPOLOGY_MIN  # topology score: "topological"
    min_distance: float = MIN_DISTANCE  # A
    batch_size: int = 64  # structures relaxed in lock-step (a whole epoch's samples)
    chgnet_model: str | None = None  # a fine-tuned CHGNet (topogen train chgnet); None: 0.3.0


@dataclass
class OracleScores:
    """Per-structure oracle output (arrays of the batch's length). ``has_gap`` and
    ``has_topology``: whether the oracle had a band-gap and a topology model."""

    stability: np.ndarray  # [0, 1]
    gap_score: np.ndarray  # [0, 1], NaN without a band-gap model
    stable: np.ndarray  # bool
    insulating: np.ndarray  # bool (False without a band-gap model)
    gap: np.ndarray  # eV, NaN where not predicted
    decodable: np.ndarray  # bool: the image decoded to a structure
    reasons: list[str] = field(default_factory=list)
    relaxed: list[Any] = field(default_factory=list)  # relaxed structures (None on failure)
    topology_score: np.ndarray | None = None  # [0, 1] (0 where not scored); None: no model
    has_gap: bool = False
    topology_min: float = TOPOLOGY_MIN

    @property
    def has_topology(self) -> bool:
        return self.topology_score is not None

    @property
    def topological(self) -> np.ndarray:
        """bool: a topology score of at least the oracle's ``topology_min`` (all False
        without a topology model)."""
        if self.topology_score is None:
            return np.zeros(len(self.stability), dtype=bool)
        return np.nan_to_num(self.topology_score, nan=-1.0) >= self.topology_min

    def verdicts(self) -> dict[str, np.ndarray]:
        """The boolean verdicts of the oracles used: stable; insulating and both (stable and
        insulating) with a band-gap model; topological and all (every verdict in use) with a
        topology model."""
        out = {"stable": self.stable}
        if self.has_gap:
            out |= {"insulating": self.insulating, "both": self.stable & self.insulating}
        if self.has_topology:
            every = out["both"] if self.has_gap else self.stable
            out |= {"topological": self.topological, "all": every & self.topological}
        return out

    def summary(self) -> dict[str, float]:
        """Fractions of the batch: decodable, relaxed, each verdict of :data:`VERDICTS` (NaN
        where its oracle is missing), and the mean stability score."""
        n = max(1, len(self.stability))
        nan = float("nan")
        ok = np.array([r is not None for r in self.relaxed])
        hits = self.verdicts()
        return {
            "decodable": float(self.decodable.sum() / n),
            "relaxed": float(ok.sum() / n),
            **{k: float(hits[k].sum() / n) if k in hits else nan for k in VERDICTS},
            "mean_stability": float(self.stability.mean()) if len(self.stability) else nan,
        }

    def counts(self) -> dict[str, dict[str, Any]]:
        """Per verdict in use (:meth:`verdicts`): ``k`` of ``n``, the fraction and its
        :func:`wilson_interval`."""
        hits = self.verdicts()
        n = len(self.stability)
        out = {}
        for name, mask in hits.items():
            k = int(np.sum(mask))
            out[name] = {"k": k, "n": n, "fraction": k / n if n else float("nan")}
            out[name]["interval"] = list(wilson_interval(k, n))
        return out


def wilson_interval(k: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion ``k / n`` at ``confidence`` (two-sided);
    (0, 1) when ``n`` is 0. Good coverage at the small ``n`` and extreme fractions seen here,
    unlike the normal approximation, and never outside [0, 1]."""
    from scipy.stats import norm

    if n <= 0:
        return 0.0, 1.0
    if not 0 <= k <= n:
        raise ValueError(f"wilson_interval: k = {k} outside [0, n = {n}]")
    z = float(norm.ppf(0.5 + confidence / 2))
    p, z2 = k / n, z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z / (1 + z2 / n) * float(np.sqrt(p * (1 - p) / n + z2 / (4 * n * n)))
    return max(0.0, centre - half), min(1.0, centre + half)


class Oracle:
    """CHGNet + phonopy stability, CGCNN gap and topology scores of structures (module
    docstring). ``topology_model``: ``scorer(structures) -> scores in [0, 1]``, e.g. a
    :class:`~topogen.models.crystalbert.scorer.TopologyClassifier`."""

    def __init__(
        self,
        settings: OracleSettings | None = None,
        band_gap_model: Any = None,
        chgnet: Any = None,
        threads: int | None = None,
        topology_model: Any = None,
        workers: int | None = None,
    ) -> None:
        self.settings = settings or OracleSettings()
        self.band_gap_model = band_gap_model
        self.topology_model = topology_model
        self._chgnet = chgnet
        self.threads = threads
        self.workers = max(1, workers if workers is not None else threads or 1)

    @property
    def chgnet(self) -> Any:
        if self._chgnet is None:
            from topogen.calc.relax import load_model

            self._chgnet = load_model(self.settings.chgnet_model)
        return self._chgnet

    def chain(self) -> Chain:
        """Check -> relaxation -> phonons (-> band gap) (-> topology): the oracle's
        calculators; the last two score without a threshold (module docstring)."""
        from topogen.calc.calculators import (
            CheckCalc,
            PhononCalc,
            PhononSettings,
            RelaxCalc,
            band_gap_calc,
            topology_calc,
        )
        from topogen.calc.chain import Chain

        s = self.settings

        def start_problem(structure: Any) -> str | None:
            problem = structure_problem(structure, s.min_distance)
            if problem is None and not is_2d(structure):
                problem = "not a 2D layer (no vacuum gap along c)"
            return problem

        def relaxed_problem(start: Any, r: Any) -> str | None:
            problem = structure_problem(r.structure, s.min_distance)
            if problem is None and not is_2d(r.structure):
                problem = "relaxation left the 2D layer"
            return problem

        relax = RelaxCalc(
            RelaxSettings(fmax=s.fmax, steps=s.relax_steps, batch_size=s.batch_size),
            model=self.chgnet,
            threads=self.threads,
            workers=self.workers,
            require_converged=True,
            check=relaxed_problem,
        )
        phonons = PhononCalc(
            PhononSettings(min_repeat_2d=s.min_repeat_2d, prescreen=s.prescreen),
            relax=relax,
            threads=self.threads,
            workers=self.workers,
            two_d=True,
            dos=False,
            reject_unstable=False,
        )
        calcs: list[Any] = [CheckCalc("check", start_problem), relax, phonons]
        if self.band_gap_model is not None:
            from topogen.models.cgcnn.model import predict_gaps

            gap_model = self.band_gap_model
            predict = lambda ss: predict_gaps(gap_model, ss).numpy()  # noqa: E731
            calcs.append(band_gap_calc(predict, -np.inf))
        if self.topology_model is not None:
            calcs.append(topology_calc(self.topology_model, -np.inf))
        return Chain(*calcs)

    def __call__(self, structures: list[Any]) -> OracleScores:
        n = len(structures)
        stability, gap, topology = np.zeros(n), np.full(n, np.nan), np.full(n, np.nan)
        stable = np.zeros(n, dtype=bool)
        reasons = ["undecodable image" for _ in range(n)]
        relaxed: list[Any] = [None] * n
        todo = [i for i, st in enumerate(structures) if st is not None]
        outs = self.chain().calc_many([structures[i] for i in todo]) if todo else []
        for i, out in zip(todo, outs, strict=True):
            steps, where = out["steps"], out["stopped_at"]
            if where in ("check", "relax"):
                reasons[i] = out["reason"] if where == "check" else f"relaxation: {out['reason']}"
                continue
            ph = steps["phonons"]
            reasons[i] = ph["reason"]
            if ph["verdict"] == "failed":
                continue
            relaxed[i] = steps["relax"]["structure"]
            stability[i] = float(ph["stability_score"] or 0.0)
            stable[i] = bool(ph["stable"])
            if "band_gap" in steps:
                gap[i] = steps["band_gap"].get("predicted_band_gap", np.nan)
            if "topology" in steps:
                topology[i] = steps["topology"].get("topology_score", np.nan)
            if where in ("band_gap", "topology"):  # the model failed on this one
                reasons[i] += f"; {out['reason']}"
        if self.band_gap_model is not None:
            from topogen.models.cgcnn.model import gap_score as to_score

            gap_score = to_score(torch.as_tensor(np.nan_to_num(gap))).numpy()
        else:
            gap_score = np.full(n, np.nan)
        insulating = np.nan_to_num(gap, nan=-1.0) >= self.settings.band_gap_min
        decodable = np.array([st is not None for st in structures], dtype=bool)
        return OracleScores(
            stability,
            gap_score,
            stable,
            insulating,
            gap,
            decodable,
            reasons,
            relaxed,
            topology_score=np.nan_to_num(topology) if self.topology_model is not None else None,
            has_gap=self.band_gap_model is not None,
            topology_min=self.settings.topology_min,
        )
