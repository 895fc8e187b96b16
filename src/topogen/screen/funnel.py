"""The screening funnel for one chunk of candidates.

Steps, in order (:data:`STEPS`); each candidate gets, at every step, a verdict (``pass``,
``fail``, ``skipped`` or ``failed``) and a one-line reason:

=========== ==================================================================================
validity    structural and SMACT compositional validity (:mod:`topogen.screen.validity`)
uniqueness  not equal to an earlier candidate of the chunk (:mod:`topogen.screen.novelty`:
            primitive cells compared, supercells tried, so site counts may differ);
            :func:`~topogen.screen.chunks.split_chunks` puts every possible pair of
            duplicates (same reduced formula) in the same chunk, so this is uniqueness over
            all candidates. Column ``duplicate_of``
novelty     not equal to a structure of the training table (column ``training_match``)
relax       CHGNet + FIRE, batched (:func:`topogen.calc.relax.relax_batch`): atoms and cell;
            slabs are first put in the canonical 2D frame (a along x, c perpendicular to the
            layer: :func:`topogen.structure.slabs.canonical_slab`), then relax their in-plane
            cell only and keep c and the vacuum. Pass: converged to ``fmax`` within
            ``steps`` and still a valid structure (and still a slab); fail: cannot be put in
            the 2D frame, not converged (``relax_converged`` False: the step limit was hit;
            it goes no further) or broken; failed: CHGNet raised
relaxed_uniqueness
            the relaxed structure is not equal to the relaxed structure of an earlier
            candidate (two candidates that relax into one crystal; ``relaxed_duplicate_of``)
relaxed_novelty
            the relaxed structure is not equal to a training structure (a noisy copy of a
            known crystal that relaxes back into it; ``relaxed_training_match``)
phonons     phonopy + CHGNet forces on the relaxed structure (:mod:`topogen.calc.phonons`):
            pass when dynamically stable; failed when CHGNet or phonopy raised
band_gap    optional hook ``band_gap(structures) -> gaps (eV)``: pass when
            ``gap >= band_gap_min``; skipped without a model
topology    optional hook ``topology(structures) -> scores in [0, 1]``: pass when
            ``score >= topology_min``; skipped without a model (the workflow leaves it
            out here and scores the merged survivors: :mod:`topogen.screen.topology`)
=========== ==================================================================================

``fail`` means the candidate was judged and rejected, ``failed`` that the step could not
judge it (an exception, recorded in the reason, e.g. the structure matcher raised and no
other structure matched; the chunk goes on), ``skipped`` that the step
did not run (an earlier step rejected the candidate, or the step is switched off).
A candidate ``passed`` when no step says ``fail`` or ``failed``.

Steps relax and phonons to topology are :class:`~topogen.calc.chain.Chain` s of the
calculators of :mod:`topogen.calc.calculators` (:func:`funnel_chains`). Chunk files
(split, screen one, merge): :mod:`topogen.screen.chunks`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import pandas as pd

from topogen.calc.calculators import (
    BAND_GAP_MIN,
    TOPOLOGY_MIN,
    PhononCalc,
    PhononSettings,
    Predictor,
    RelaxCalc,
    band_gap_calc,
    topology_calc,
)
from topogen.calc.chain import Calc, Chain
from topogen.calc.relax import RelaxResult, RelaxSettings
from topogen.io.tables import Record
from topogen.runtime import set_threads
from topogen.screen.novelty import Index, Lookup, duplicates
from topogen.screen.validity import ValidityOptions, crystal_problem, validity
from topogen.structure.slabs import MIN_VACUUM, is_2d

STEPS = (
    "validity",
    "uniqueness",
    "novelty",
    "relax",
    "relaxed_uniqueness",
    "relaxed_novelty",
    "phonons",
    "band_gap",
    "topology",
)
MATCHES = ("duplicate_of", "training_match", "relaxed_duplicate_of", "relaxed_training_match")
NUMBERS = (
    "energy_per_atom",
    "relax_steps",
    "relax_fmax",
    "relax_converged",
    "min_frequency",
    "min_frequency_off_gamma",
    "stability_score",
    "imaginary_fraction",
    "phonon_supercell",
    "phonon_evaluations",
    "predicted_band_gap",
    "topology_score",
)
FUNNEL_COLUMNS = (
    "id",
    "source",
    "formula",
    "chunk",
    "n_sites",
    "dim",
    *(c for s in STEPS for c in (s, f"{s}_reason")),
    *MATCHES,
    *NUMBERS,
    "passed",
)

ScoreHook = Predictor  # structures -> one number each


@dataclass
class FunnelOptions(PhononSettings, RelaxSettings):
    """Every knob of the funnel: the relaxation's (:class:`~topogen.calc.relax.RelaxSettings`)
    and the phonons' (:class:`~topogen.calc.calculators.PhononSettings`) settings, whose
    defaults live there, and the funnel's own. The CLI's options map one to one onto these."""

    phonons: bool = True
    band_gap_min: float = BAND_GAP_MIN  # eV
    topology_min: float = TOPOLOGY_MIN
    validity: ValidityOptions = field(default_factory=ValidityOptions)

    def relax_settings(self) -> RelaxSettings:
        return RelaxSettings(**{f.name: getattr(self, f.name) for f in fields(RelaxSettings)})

    def phonon_settings(self) -> PhononSettings:
        return PhononSettings(**{f.name: getattr(self, f.name) for f in fields(PhononSettings)})

    def as_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "validity"}
        out["validity"] = {f.name: getattr(self.validity, f.name) for f in fields(self.validity)}
        return out


@dataclass
class _Cand:
    id: str
    source: str
    structure: Any  # as given (None when it did not decode)
    properties: dict[str, Any]
    chunk: str = ""
    verdicts: dict[str, tuple[str, str]] = field(default_factory=dict)
    values: dict[str, Any] = field(default_factory=dict)
    two_d: bool = False
    relaxed: Any = None

    def set(self, step: str, verdict: str, reason: str) -> None:
        self.verdicts[step] = (verdict, " ".join(str(reason).split())[:500])

    @property
    def alive(self) -> bool:
        return all(v[0] not in ("fail", "failed") for v in self.verdicts.values())

    def first_rejection(self) -> str | None:
        for step in STEPS:
            v = self.verdicts.get(step)
            if v and v[0] in ("fail", "failed"):
                return f"not reached ({v[0]} at {step})"
        return None


@dataclass
class FunnelResult:
    """One chunk's outcome: funnel rows (every candidate), relaxed records, phonon DOS."""

    rows: list[dict[str, Any]]
    records: list[Record]
    dos: dict[str, tuple[np.ndarray, np.ndarray]]
    seconds: dict[str, float] = field(default_factory=dict)

    def frame(self) -> pd.DataFrame:
        return funnel_frame(self.rows)


def _skip_rest(cands: Iterable[_Cand], step: str, reason: str | None = None) -> list[_Cand]:
    """Mark ``step`` skipped for rejected candidates; return the ones still in the running."""
    alive = []
    for c in cands:
        if step in c.verdicts:
            continue
        why = c.first_rejection()
        if why is not None:
            c.set(step, "skipped", why)
        elif reason is not None:
            c.set(step, "skipped", reason)
        else:
            alive.append(c)
    return alive


def screen(
    candidates: Sequence[Record | tuple[str, Any]],
    *,
    training: Index | None = None,
    options: FunnelOptions | None = None,
    model: Any = None,
    band_gap: ScoreHook | None = None,
    topology: ScoreHook | None = None,
    threads: int | None = None,
    workers: int = 1,
    chunk: str = "",
    log: Callable[[str], None] | None = None,
) -> FunnelResult:
    """Run candidates (Records, or (id, Structure) pairs) through the funnel (module doc).

    ``training`` is an :class:`~topogen.screen.novelty.Index` of training structures (None:
    novelty is skipped). A candidate whose structure is None (it did not decode) fails
    validity. ``model`` is a loaded CHGNet (loaded when needed otherwise). CHGNet work runs
    in ``workers`` processes of ``threads // workers`` torch threads each
    (:mod:`topogen.calc.workers`; relaxation: each worker relaxes every ``workers``-th
    structure in lock-step, phonons: structure by structure, largest first).
    """
    opts = options or FunnelOptions()
    say = log or (lambda msg: None)
    set_threads(threads)
    cands = [_candidate(item, chunk) for item in candidates]
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    _validity_step(cands, opts.validity)
    seconds["validity"] = time.perf_counter() - t0
    say(f"validity: {sum(c.alive for c in cands)}/{len(cands)} valid")
    if training is not None and training.undecodable:
        ids = ", ".join(training.undecodable[:20])
        more = " ..." if len(training.undecodable) > 20 else ""
        say(
            f"training table: {len(training.undecodable)} row(s) did not decode and are not "
            f"in the novelty check: {ids}{more}"
        )
    t0 = time.perf_counter()
    _uniqueness_step(cands)
    _novelty_step(cands, training)
    seconds["novelty"] = time.perf_counter() - t0
    say(f"uniqueness/novelty: {sum(c.alive for c in cands)} left")

    relax, rest = funnel_chains(
        opts, model=model, band_gap=band_gap, topology=topology, threads=threads, workers=workers
    )
    relax.log = rest.log = log
    dos = _chain_steps(cands, relax)
    t0 = time.perf_counter()
    _uniqueness_step(cands, relaxed=True)
    _novelty_step(cands, training, relaxed=True)
    seconds["novelty"] += time.perf_counter() - t0
    say(f"after relaxation, uniqueness/novelty: {sum(c.alive for c in cands)} left")
    dos.update(_chain_steps(cands, rest))
    seconds.update({"relax": 0.0, "phonons": 0.0, **relax.seconds, **rest.seconds})
    seconds["hooks"] = seconds.pop("band_gap", 0.0) + seconds.pop("topology", 0.0)
    for step in ("relax", "phonons"):
        ran = sum(c.verdicts.get(step, ("skipped",))[0] != "skipped" for c in cands)
        say(f"{step}: {ran} ran")
    for step, switched_off in (
        ("phonons", None if opts.phonons else "phonons switched off"),
        ("band_gap", None if band_gap is not None else "no band-gap model"),
        ("topology", None if topology is not None else "no topology model"),
    ):
        _skip_rest(cands, step, switched_off)

    rows, records = [], []
    for c in cands:
        row = _row(c)
        rows.append(row)
        if c.relaxed is not None and c.verdicts["relax"][0] in ("pass", "fail"):
            props = {**c.properties, **_screen_properties(row)}
            records.append(Record(c.id, c.source, c.relaxed, props))
    say(f"passed: {sum(r['passed'] for r in rows)}/{len(rows)}")
    return FunnelResult(rows, records, dos, seconds)


def funnel_chains(
    opts: FunnelOptions,
    *,
    model: Any = None,
    band_gap: ScoreHook | None = None,
    topology: ScoreHook | None = None,
    threads: int | None = None,
    workers: int = 1,
) -> tuple[Chain, Chain]:
    """The funnel's calculators: relaxation, then (after uniqueness and novelty of the
    relaxed structures) phonons (unless switched off) -> band gap, topology (when given).
    A relaxed structure must still be a valid crystal, and a slab must still be a slab."""

    def check(start: Any, result: RelaxResult) -> str | None:
        problem = crystal_problem(result.structure, opts.validity)
        if problem is None and is_2d(start) and not is_2d(result.structure, MIN_VACUUM):
            problem = "no longer a slab (vacuum along c closed)"
        return None if problem is None else f"relaxed structure: {problem}"

    relax = RelaxCalc(
        opts.relax_settings(), model=model, threads=threads, workers=workers, check=check
    )
    calcs: list[Calc] = []
    if opts.phonons:
        settings = opts.phonon_settings()
        # the DOS of stable candidates only: the merge keeps the survivors' alone
        calcs.append(
            PhononCalc(settings, relax=relax, threads=threads, workers=workers, dos="stable")
        )
    if band_gap is not None:
        calcs.append(band_gap_calc(band_gap, opts.band_gap_min))
    if topology is not None:
        calcs.append(topology_calc(topology, opts.topology_min))
    return Chain(relax), Chain(*calcs)


def _candidate(item: Record | tuple[str, Any], chunk: str) -> _Cand:
    if isinstance(item, Record):
        return _Cand(item.id, item.source, item.structure, dict(item.properties), chunk)
    id_, s = item
    return _Cand(str(id_), "", s, {}, chunk)


def _validity_step(cands: list[_Cand], opts: ValidityOptions) -> None:
    for c in cands:
        if c.structure is None:
            c.set("validity", "fail", "structure: does not decode")
            continue
        ok, reason = validity(c.structure, opts)
        c.set("validity", "pass" if ok else "fail", reason)
        if ok:
            c.two_d = is_2d(c.structure)


def _uniqueness_step(cands: list[_Cand], relaxed: bool = False) -> None:
    """Within the chunk (:func:`~topogen.screen.chunks.split_chunks` keeps possible twins
    together); ``relaxed``: the relaxed structures of the candidates still in the running."""
    step, key, after = _names("uniqueness", "duplicate_of", relaxed)
    todo = _skip_rest(cands, step)
    found = duplicates([c.id for c in todo], [_probe(c, relaxed) for c in todo])
    for c, look in zip(todo, found, strict=True):
        verdict, reason = look.reason("duplicate of", after)
        c.values[key] = look.match
        c.set(step, verdict, reason or "unique")


def _novelty_step(cands: list[_Cand], training: Index | None, relaxed: bool = False) -> None:
    step, key, after = _names("novelty", "training_match", relaxed)
    todo = _skip_rest(cands, step, None if training is not None else "no training set")
    for c in todo:
        look = training.lookup(_probe(c, relaxed)) if training is not None else Lookup()
        verdict, reason = look.reason("matches training structure", after)
        c.values[key] = look.match
        c.set(step, verdict, reason or "novel")


def _names(step: str, key: str, relaxed: bool) -> tuple[str, str, str]:
    if relaxed:
        return f"relaxed_{step}", f"relaxed_{key}", " after relaxation"
    return step, key, ""


def _probe(c: _Cand, relaxed: bool) -> Any:
    return c.relaxed if relaxed else c.structure


def _chain_steps(cands: list[_Cand], chain: Chain) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Run the chain on the candidates still in the running (from the relaxed structure
    once there is one); record verdicts, numbers and the relaxed structures; return the
    phonon DOS per id (phonon-stable candidates only)."""
    if not chain.calcs:
        return {}
    todo = _skip_rest(cands, chain.calcs[0].name)
    dos: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    inputs = [c.structure if c.relaxed is None else c.relaxed for c in todo]
    for c, out in zip(todo, chain.calc_many(inputs), strict=True):
        for step, res in out["steps"].items():
            c.set(step, res["verdict"], res["reason"])
            c.values.update({k: v for k, v in res.items() if k in NUMBERS})
            if step == "relax" and res["verdict"] != "failed":
                c.relaxed = res["structure"]
            if "dos" in res:
                dos[c.id] = res["dos"]
    return dos


def _row(c: _Cand) -> dict[str, Any]:
    s = c.structure
    row: dict[str, Any] = {
        "id": c.id,
        "source": c.source,
        "formula": s.composition.reduced_formula if s is not None else None,
        "chunk": c.chunk,
        "n_sites": len(s) if s is not None else None,
        "dim": 2 if c.two_d else 3,
    }
    for step in STEPS:
        verdict, reason = c.verdicts.get(step, ("skipped", "not run"))
        row[step], row[f"{step}_reason"] = verdict, reason
    for key in MATCHES:
        row[key] = c.values.get(key)
    for key in NUMBERS:
        row[key] = c.values.get(key)
    row["passed"] = c.alive
    return row


def _screen_properties(row: dict[str, Any]) -> dict[str, Any]:
    """The funnel row as structure-table properties (``screen_<step>`` verdicts etc.)."""
    out: dict[str, Any] = {}
    for step in STEPS:
        out[f"screen_{step}"] = row[step]
        out[f"screen_{step}_reason"] = row[f"{step}_reason"]
    for key in (*MATCHES, *NUMBERS, "passed", "dim", "chunk"):
        out[key if key not in ("dim", "chunk", "passed") else f"screen_{key}"] = row[key]
    return out


def funnel_frame(rows: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """Rows -> the funnel table (columns :data:`FUNNEL_COLUMNS`, stable dtypes)."""
    df = pd.DataFrame(list(rows), columns=list(FUNNEL_COLUMNS))
    for col in FUNNEL_COLUMNS:
        if col in ("n_sites", "dim", "relax_steps", "phonon_evaluations"):
            df[col] = df[col].astype("Int64")
        elif col in ("relax_converged", "passed"):
            df[col] = df[col].astype("boolean")
        elif col in NUMBERS and col != "phonon_supercell":
            df[col] = pd.to_numeric(df[col], errors="coerce").astype("float64")
        else:
            df[col] = df[col].astype("string")
    return df
