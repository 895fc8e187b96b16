"""The calculators of the funnel, the Stage III oracle and the prototype library.

Each follows :class:`topogen.calc.chain.Calc` (``calc``, ``calc_many``; results with
``verdict``, ``reason``, ``structure``), in the spirit of matcalc's ``PropCalc``:

* :class:`RelaxCalc`: CHGNet + lock-step batched FIRE (:func:`topogen.calc.relax.relax_batch`);
  slabs are turned into the canonical frame and relax their in-plane cell only, bulk
  crystals their whole cell; batches can be spread over worker processes;
* :class:`PhononCalc`: phonopy + CHGNet forces (:func:`topogen.calc.phonons.phonons_batch`),
  on the model of the :class:`RelaxCalc` it is given;
* :class:`CheckCalc`: an injected check ``structure -> problem or None``;
* :class:`ScoreCalc`: an injected predictor ``structures -> numbers`` and a threshold
  (:func:`band_gap_calc`: a band-gap model; :func:`topology_calc`: a topology scorer).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from topogen.calc import phonons as ph
from topogen.calc.chain import Calc
from topogen.calc.relax import SLAB_MASK, RelaxResult, RelaxSettings
from topogen.structure.slabs import SlabFrameError, canonical_slab, is_2d

BAND_GAP_MIN = 0.1  # eV: "insulating"
TOPOLOGY_MIN = 0.5  # a topology score at least this passes

Check = Callable[[Any, RelaxResult], "str | None"]
Predictor = Callable[[Sequence[Any]], Sequence[float]]


class RelaxCalc(Calc):
    """CHGNet relaxation (module docstring). Verdicts: ``failed`` when CHGNet raised or the
    numbers became non-finite; ``fail`` when not converged (with ``require_converged``) or
    when ``check(start, result)`` names a problem (its text is the reason); else ``pass``.
    The model is loaded on first use unless given; ``workers`` processes of
    ``threads // workers`` torch threads share the batch (each relaxes every
    ``workers``-th structure in lock-step)."""

    name = "relax"

    def __init__(
        self,
        settings: RelaxSettings | None = None,
        *,
        model: Any = None,
        threads: int | None = None,
        workers: int = 1,
        require_converged: bool = True,
        check: Check | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> None:
        self.settings = settings or RelaxSettings()
        self._model = model
        self.threads = threads
        self.workers = max(1, int(workers))
        self.require_converged = require_converged
        self.check = check
        self.progress = progress

    @property
    def model(self) -> Any:
        """The CHGNet model (loaded on first use)."""
        if self._model is None:
            from topogen.calc.relax import load_model

            self._model = load_model()
        return self._model

    def relax_many(self, structures: Sequence[Any]) -> list[RelaxResult]:
        """The raw relaxation results, in order (no verdicts). Slabs are put in the canonical
        2D frame first (:func:`~topogen.structure.slabs.canonical_slab`), and their relaxed
        structures again (the in-plane shear strain turns a off x); one that cannot be
        gets a result with ``steps = -1``, ``error`` None and the reason in
        :attr:`refused` (the verdict is then ``fail``)."""
        from topogen.calc.workers import map_with_model

        self.refused: dict[int, str] = {}
        starts: list[Any] = []
        masks: list[Any] = []
        for k, s in enumerate(structures):
            if not is_2d(s):
                starts.append(s)
                masks.append(None)
                continue
            try:
                starts.append(canonical_slab(s))
            except SlabFrameError as exc:
                self.refused[k] = f"cannot put in the 2D frame: {exc}"
                continue
            masks.append(SLAB_MASK)
        todo = [k for k in range(len(structures)) if k not in self.refused]
        n_groups = max(1, min(self.workers, len(starts)))
        per_worker = max(1, (self.threads or self.workers) // self.workers)
        if not starts:
            done: list[Any] = []
        elif n_groups == 1:
            from topogen.calc.relax import relax_batch

            done = relax_batch(
                starts,
                self.settings,
                model=self.model,
                masks=masks,
                threads=self.threads,
                progress=self.progress,
            )
        else:
            groups = [
                (starts[g::n_groups], masks[g::n_groups], self.settings) for g in range(n_groups)
            ]
            parts = map_with_model(
                _relax_group, groups, model=self.model, workers=n_groups, threads=per_worker
            )
            done = [None] * len(starts)
            for g, part in enumerate(parts):
                done[g::n_groups] = part
        results: list[RelaxResult] = [RelaxResult(s, None, None, -1, False) for s in structures]
        for k, r, m in zip(todo, done, masks, strict=True):
            if m is not None and r.structure is not None:  # the in-plane shear turned a a bit
                with contextlib.suppress(SlabFrameError, ValueError):
                    r.structure = canonical_slab(r.structure, min_vacuum=0.0)
            results[k] = r
        return results

    def calc_many(self, structures: Sequence[Any]) -> list[dict[str, Any]]:
        out = []
        for k, (start, r) in enumerate(zip(structures, self.relax_many(structures), strict=True)):
            res: dict[str, Any] = {
                "structure": r.structure,
                "energy_per_atom": r.energy_per_atom,
                "relax_steps": r.steps,
                "relax_fmax": r.fmax,
                "relax_converged": r.converged,
            }
            if k in self.refused:
                res.update(verdict="fail", reason=self.refused[k], relax_steps=None)
            elif r.error:
                res.update(verdict="failed", reason=r.error)
            elif not r.converged and self.require_converged:
                why = f"not converged in {r.steps} steps (fmax {r.fmax:.3f} eV/A)"
                res.update(verdict="fail", reason=why)
            elif (problem := self.check(start, r) if self.check else None) is not None:
                res.update(verdict="fail", reason=problem)
            else:
                energy = r.energy_per_atom
                why = f"converged in {r.steps} steps, {energy:.4f} eV/atom"
                res.update(verdict="pass", reason=why if r.converged else "not converged, kept")
            out.append(res)
        return out


def _relax_group(model: Any, job: tuple[list[Any], list[Any], RelaxSettings]) -> list[Any]:
    from topogen.calc.relax import relax_batch

    structures, masks, settings = job
    return relax_batch(structures, settings, model=model, masks=masks)


@dataclass
class PhononSettings:
    """The phonon calculation's knobs (meaning and defaults: :mod:`topogen.calc.phonons`)."""

    displacement: float = ph.DISPLACEMENT  # A
    min_repeat_2d: int = ph.MIN_REPEAT_2D
    tol: float = ph.TOL  # THz
    gamma_tol: float = ph.GAMMA_TOL  # THz
    gamma_radius: float = ph.GAMMA_RADIUS  # 1/A
    symprec: float = ph.SYMPREC  # A, phonopy's symmetry tolerance
    reuse_topology: bool = True
    prescreen: int = ph.PRESCREEN  # slabs: in-plane repeat of the pre-screen supercell
    prescreen_margin: float = ph.PRESCREEN_MARGIN  # THz


class PhononCalc(Calc):
    """Dynamical stability from phonons with CHGNet forces, on ``relax``'s model.

    Verdicts: ``failed`` when CHGNet or phonopy raised; ``pass`` when stable, ``fail`` when
    not (with ``reject_unstable=False`` every computed result passes, and the stability
    stays in the numbers). ``two_d=None`` detects slabs; ``dos``: the DOS (key ``dos``) of every
    result (True), of stable ones only ("stable") or of none (False)."""

    name = "phonons"

    def __init__(
        self,
        settings: PhononSettings | None = None,
        *,
        relax: RelaxCalc | None = None,
        threads: int | None = None,
        workers: int = 1,
        two_d: bool | None = None,
        dos: ph.Dos = True,
        reject_unstable: bool = True,
    ) -> None:
        self.settings = settings or PhononSettings()
        self.relax = relax or RelaxCalc()
        self.threads = threads
        self.workers = workers
        self.two_d = two_d
        self.dos = dos
        self.reject_unstable = reject_unstable

    def calc_many(self, structures: Sequence[Any]) -> list[dict[str, Any]]:
        if not structures:
            return []
        results = ph.phonons_batch(
            list(structures),
            model=self.relax.model,
            threads=self.threads,
            workers=self.workers,
            two_d=self.two_d,
            dos=self.dos,
            **asdict(self.settings),
        )
        out = []
        for s, r in zip(structures, results, strict=True):
            res: dict[str, Any] = {"structure": s, "reason": r.reason()}
            if r.error:
                res["verdict"] = "failed"
            else:
                ok = bool(r.stable) or not self.reject_unstable
                res.update(
                    verdict="pass" if ok else "fail",
                    stable=bool(r.stable),
                    min_frequency=r.min_frequency,
                    min_frequency_off_gamma=r.min_frequency_off_gamma,
                    stability_score=r.score,
                    imaginary_fraction=r.imaginary_fraction,
                    phonon_supercell="x".join(map(str, r.supercell)),
                    phonon_evaluations=r.n_evaluations,
                )
                if len(r.dos_frequencies):  # computed (see ``dos``)
                    res["dos"] = (r.dos_frequencies, r.dos)
            out.append(res)
        return out


class CheckCalc(Calc):
    """A check as a step: ``fail`` with ``check(structure)``'s text when it names a problem,
    else ``pass``; the structure goes on unchanged."""

    def __init__(self, name: str, check: Callable[[Any], str | None]) -> None:
        self.name, self.check = name, check

    def calc_many(self, structures: Sequence[Any]) -> list[dict[str, Any]]:
        out = []
        for s in structures:
            problem = self.check(s)
            verdict = "pass" if problem is None else "fail"
            out.append({"structure": s, "verdict": verdict, "reason": problem or "ok"})
        return out


class ScoreCalc(Calc):
    """A number per structure from an injected ``predict(structures)``; ``pass`` when it is
    at least ``threshold``. A batch that raises is retried one structure at a time; a
    structure whose prediction raises or is not finite gets ``failed``."""

    def __init__(
        self, name: str, predict: Predictor, threshold: float, *, key: str, unit: str = ""
    ) -> None:
        self.name, self.predict, self.threshold = name, predict, threshold
        self.key, self.unit = key, unit

    def calc_many(self, structures: Sequence[Any]) -> list[dict[str, Any]]:
        if not structures:
            return []
        try:
            values: list[Any] = list(self.predict(structures))
            if len(values) != len(structures):
                raise ValueError(f"returned {len(values)} values for {len(structures)} structures")
        except Exception:  # find the culprit(s) one at a time
            values = []
            for s in structures:
                try:
                    values.append(next(iter(self.predict([s]))))
                except Exception as exc:
                    values.append(exc)
        return [self._judge(s, v) for s, v in zip(structures, values, strict=True)]

    def _judge(self, structure: Any, v: Any) -> dict[str, Any]:
        step, unit, lim = self.name, self.unit, self.threshold
        res: dict[str, Any] = {"structure": structure}
        if isinstance(v, Exception):
            why = f"{step} model failed: {type(v).__name__}: {v}"
            return {**res, "verdict": "failed", "reason": why}
        try:
            x = float(v)
        except (TypeError, ValueError):
            x = math.nan
        if not math.isfinite(x):
            return {
                **res,
                "verdict": "failed",
                "reason": f"{step} model gave no finite value ({v!r})",
            }
        if x >= lim:
            return {
                **res,
                self.key: x,
                "verdict": "pass",
                "reason": f"{x:.3g}{unit} >= {lim:g}{unit}",
            }
        return {**res, self.key: x, "verdict": "fail", "reason": f"{x:.3g}{unit} < {lim:g}{unit}"}


def band_gap_calc(predict: Predictor, band_gap_min: float = BAND_GAP_MIN) -> ScoreCalc:
    """Predicted band gap (eV) of a model such as the CGCNN; pass when ``>= band_gap_min``."""
    return ScoreCalc("band_gap", predict, band_gap_min, key="predicted_band_gap", unit=" eV")


def topology_calc(score: Predictor, topology_min: float = TOPOLOGY_MIN) -> ScoreCalc:
    """Topology score in [0, 1] of a scorer; pass when ``>= topology_min``."""
    return ScoreCalc("topology", score, topology_min, key="topology_score")
