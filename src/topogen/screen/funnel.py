"""The screening funnel for one chunk of candidates, and splitting/merging chunks.

Steps, in order (:data:`STEPS`); each candidate gets, at every step, a verdict (``pass``,
``fail``, ``skipped`` or ``failed``) and a one-line reason:

=========== ==================================================================================
validity    structural and SMACT compositional validity (:mod:`topogen.screen.validity`)
uniqueness  not equal to an earlier candidate of the chunk (:mod:`topogen.screen.novelty`);
            :func:`split_chunks` puts every possible pair of duplicates in the same chunk,
            so this is uniqueness over all candidates
novelty     not equal to a structure of the training table
relax       CHGNet + FIRE, batched (:func:`topogen.calc.relax.relax_batch`): atoms and cell;
            slabs (vacuum along c) relax their in-plane cell only and keep c and the vacuum.
            Pass: converged to ``fmax`` within ``steps`` and still a valid structure (and
            still a slab); fail: not converged or broken; failed: CHGNet raised
phonons     phonopy + CHGNet forces on the relaxed structure (:mod:`topogen.calc.phonons`):
            pass when dynamically stable; failed when CHGNet or phonopy raised
band_gap    optional hook ``band_gap(structures) -> gaps (eV)``: pass when
            ``gap >= band_gap_min``; skipped without a model
topology    optional hook ``topology(structures) -> scores in [0, 1]``: pass when
            ``score >= topology_min``; skipped without a model
=========== ==================================================================================

``fail`` means the candidate was judged and rejected, ``failed`` that the step could not
judge it (an exception, recorded in the reason; the chunk goes on), ``skipped`` that the step
did not run (an earlier step rejected the candidate, or the step is switched off).
A candidate ``passed`` when no step says ``fail`` or ``failed``.

Outputs of one chunk (:func:`write_chunk`): a structure table of every candidate that was
relaxed (the relaxed structure; properties carry all verdicts, reasons and numbers), a funnel
table (every candidate, see :data:`FUNNEL_COLUMNS`) and an ``.npz`` file of phonon DOS
arrays (:func:`write_dos`).
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from topogen.calc.slabs import MIN_VACUUM, is_2d, orient
from topogen.io.tables import Record
from topogen.screen.novelty import Index, duplicates
from topogen.screen.validity import ValidityOptions, structure_problem, validity

STEPS = ("validity", "uniqueness", "novelty", "relax", "phonons", "band_gap", "topology")
FUNNEL_SCHEMA = "funnel-table/1"
_SCHEMA_KEY = b"topogen.schema"
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
    "duplicate_of",
    "training_match",
    *NUMBERS,
    "passed",
)

ScoreHook = Callable[[Sequence[Any]], Sequence[float]]


@dataclass
class FunnelOptions:
    """Every knob of the funnel (the CLI's options map one to one onto these)."""

    fmax: float = 0.05  # eV/A
    steps: int = 300  # FIRE steps
    batch_size: int = 32  # structures per CHGNet call in the relaxation
    cell_filter: str = "unit"
    phonons: bool = True
    displacement: float = 0.01  # A
    min_repeat_2d: int = 6
    tol: float = 0.05  # THz
    gamma_tol: float = 1.0  # THz
    gamma_radius: float = 0.06  # 1/A
    symprec: float = 0.01  # A, phonopy's symmetry tolerance
    reuse_topology: bool = True
    band_gap_min: float = 0.1  # eV
    topology_min: float = 0.5
    validity: ValidityOptions = field(default_factory=ValidityOptions)

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


def _score_step(
    cands: list[_Cand],
    step: str,
    hook: ScoreHook | None,
    threshold: float,
    key: str,
    unit: str,
    missing: str,
) -> None:
    todo = _skip_rest(cands, step, None if hook is not None else missing)
    if not todo or hook is None:
        return
    structures = [c.relaxed if c.relaxed is not None else c.structure for c in todo]
    try:
        values: list[Any] = list(hook(structures))
        if len(values) != len(todo):
            raise ValueError(f"returned {len(values)} values for {len(todo)} structures")
    except Exception:  # find the culprit(s) one at a time
        values = []
        for s in structures:
            try:
                values.append(next(iter(hook([s]))))
            except Exception as exc:
                values.append(exc)
    for c, v in zip(todo, values, strict=True):
        if isinstance(v, Exception):
            c.set(step, "failed", f"{step} model failed: {type(v).__name__}: {v}")
            continue
        try:
            x = float(v)
        except (TypeError, ValueError):
            x = math.nan
        if not math.isfinite(x):
            c.set(step, "failed", f"{step} model gave no finite value ({v!r})")
            continue
        c.values[key] = x
        if x >= threshold:
            c.set(step, "pass", f"{x:.3g}{unit} >= {threshold:g}{unit}")
        else:
            c.set(step, "fail", f"{x:.3g}{unit} < {threshold:g}{unit}")


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
    from topogen.calc.phonons import phonons_batch
    from topogen.calc.relax import SLAB_MASK, load_model, set_threads
    from topogen.calc.workers import map_with_model

    opts = options or FunnelOptions()
    say = log or (lambda msg: None)
    set_threads(threads)
    workers = max(1, int(workers))
    per_worker = max(1, (threads or workers) // workers)
    seconds: dict[str, float] = {}
    cands: list[_Cand] = []
    for item in candidates:
        if isinstance(item, Record):
            cands.append(_Cand(item.id, item.source, item.structure, dict(item.properties)))
        else:
            id_, s = item
            cands.append(_Cand(str(id_), "", s, {}))
    for c in cands:
        c.chunk = chunk

    # 1. validity
    t0 = time.perf_counter()
    for c in cands:
        if c.structure is None:
            c.set("validity", "fail", "structure: does not decode")
            continue
        ok, reason = validity(c.structure, opts.validity)
        c.set("validity", "pass" if ok else "fail", reason)
        if ok:
            c.two_d = is_2d(c.structure)
    seconds["validity"] = time.perf_counter() - t0
    say(f"validity: {sum(c.alive for c in cands)}/{len(cands)} valid")

    # 2. uniqueness (within the chunk; split_chunks keeps possible twins together)
    t0 = time.perf_counter()
    todo = _skip_rest(cands, "uniqueness")
    twins = duplicates([c.id for c in todo], [c.structure for c in todo])
    for c, twin in zip(todo, twins, strict=True):
        if twin is None:
            c.set("uniqueness", "pass", "unique")
        else:
            c.values["duplicate_of"] = twin
            c.set("uniqueness", "fail", f"duplicate of {twin} (StructureMatcher)")

    # 3. novelty
    todo = _skip_rest(cands, "novelty", None if training is not None else "no training set")
    for c in todo:
        match = training.find(c.structure) if training is not None else None
        if match is None:
            c.set("novelty", "pass", "novel")
        else:
            c.values["training_match"] = match
            c.set("novelty", "fail", f"matches training structure {match} (StructureMatcher)")
    seconds["novelty"] = time.perf_counter() - t0
    say(f"uniqueness/novelty: {sum(c.alive for c in cands)} left")

    # 4. relaxation
    t0 = time.perf_counter()
    todo = _skip_rest(cands, "relax")
    if todo and model is None:
        model = load_model()
    starts = [orient(c.structure) if c.two_d else c.structure for c in todo]
    masks = [SLAB_MASK if c.two_d else None for c in todo]
    relax_options = {
        "fmax": opts.fmax,
        "steps": opts.steps,
        "batch_size": opts.batch_size,
        "cell_filter": opts.cell_filter,
    }
    results: list[Any] = []
    if todo:
        n_groups = max(1, min(workers, len(todo)))
        groups = [(starts[g::n_groups], masks[g::n_groups], relax_options) for g in range(n_groups)]
        parts = map_with_model(
            _relax_group, groups, model=model, workers=n_groups, threads=per_worker
        )
        results = [None] * len(todo)
        for g, part in enumerate(parts):
            results[g::n_groups] = part
    say(f"relaxed {len(todo)}")
    for c, res in zip(todo, results, strict=True):
        c.values.update(
            energy_per_atom=res.energy_per_atom,
            relax_steps=res.steps,
            relax_fmax=res.fmax,
            relax_converged=res.converged,
        )
        if res.error:
            c.set("relax", "failed", res.error)
            continue
        c.relaxed = res.structure
        if not res.converged:
            c.set("relax", "fail", f"not converged in {res.steps} steps (fmax {res.fmax:.3f} eV/A)")
            continue
        problem = structure_problem(res.structure, opts.validity)
        if problem is None and c.two_d and not is_2d(res.structure, MIN_VACUUM):
            problem = "no longer a slab (vacuum along c closed)"
        if problem:
            c.set("relax", "fail", f"relaxed structure: {problem}")
            continue
        c.set(
            "relax",
            "pass",
            f"converged in {res.steps} steps, {res.energy_per_atom:.4f} eV/atom",
        )
    seconds["relax"] = time.perf_counter() - t0

    # 5. phonons
    t0 = time.perf_counter()
    todo = _skip_rest(cands, "phonons", None if opts.phonons else "phonons switched off")
    dos: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    if todo:
        ph = phonons_batch(
            [c.relaxed for c in todo],
            model=model,
            threads=threads,
            workers=workers,
            displacement=opts.displacement,
            min_repeat_2d=opts.min_repeat_2d,
            symprec=opts.symprec,
            tol=opts.tol,
            gamma_tol=opts.gamma_tol,
            gamma_radius=opts.gamma_radius,
            reuse_topology=opts.reuse_topology,
        )
        say(f"phonons {len(todo)}")
        for c, r in zip(todo, ph, strict=True):
            if r.error:
                c.set("phonons", "failed", r.error)
                continue
            c.values.update(
                min_frequency=r.min_frequency,
                min_frequency_off_gamma=r.min_frequency_off_gamma,
                stability_score=r.score,
                imaginary_fraction=r.imaginary_fraction,
                phonon_supercell="x".join(map(str, r.supercell)),
                phonon_evaluations=r.n_evaluations,
            )
            dos[c.id] = (r.dos_frequencies, r.dos)
            c.set("phonons", "pass" if r.stable else "fail", r.reason())
    seconds["phonons"] = time.perf_counter() - t0

    # 6, 7. hooks
    t0 = time.perf_counter()
    _score_step(
        cands, "band_gap", band_gap, opts.band_gap_min, "predicted_band_gap", " eV",
        "no band-gap model",
    )  # fmt: skip
    _score_step(
        cands, "topology", topology, opts.topology_min, "topology_score", "",
        "no topology model",
    )  # fmt: skip
    seconds["hooks"] = time.perf_counter() - t0

    rows, records = [], []
    for c in cands:
        row = _row(c)
        rows.append(row)
        if c.relaxed is not None and c.verdicts["relax"][0] in ("pass", "fail"):
            props = {**c.properties, **_screen_properties(row)}
            records.append(Record(c.id, c.source, c.relaxed, props))
    say(f"passed: {sum(r['passed'] for r in rows)}/{len(rows)}")
    return FunnelResult(rows, records, dos, seconds)


def _relax_group(model: Any, job: tuple[list[Any], list[Any], dict[str, Any]]) -> list[Any]:
    from topogen.calc.relax import relax_batch

    structures, masks, options = job
    return relax_batch(structures, model=model, masks=masks, **options)


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
    row["duplicate_of"] = c.values.get("duplicate_of")
    row["training_match"] = c.values.get("training_match")
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
    for key in ("duplicate_of", "training_match", *NUMBERS, "passed", "dim", "chunk"):
        out[key if key not in ("dim", "chunk", "passed") else f"screen_{key}"] = row[key]
    return out


# --- files ----------------------------------------------------------------------------------


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


def write_funnel(df: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Atomically write a funnel table (Parquet, schema tag ``funnel-table/1``)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from topogen.io.atomic import atomic_path

    dup = df["id"].duplicated()
    if dup.any():
        raise ValueError(f"{path}: duplicate id {df['id'][dup].iloc[0]!r} in the funnel table")
    table = pa.Table.from_pandas(df.reset_index(drop=True), preserve_index=False)
    meta = dict(table.schema.metadata or {})
    meta[_SCHEMA_KEY] = FUNNEL_SCHEMA.encode()
    table = table.replace_schema_metadata(meta)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
    return Path(path)


def read_funnel(path: str | os.PathLike[str]) -> pd.DataFrame:
    import pyarrow.parquet as pq

    from topogen.errors import TableSchemaError

    table = pq.read_table(path)
    tag = (table.schema.metadata or {}).get(_SCHEMA_KEY, b"").decode()
    if tag != FUNNEL_SCHEMA:
        raise TableSchemaError(f"{path}: not a funnel table (schema {tag!r})")
    return funnel_frame(table.to_pandas().to_dict("records"))


def write_dos(dos: dict[str, tuple[np.ndarray, np.ndarray]], path: str | os.PathLike[str]) -> Path:
    """Phonon DOS per candidate in one ``.npz``: ``ids`` (strings) and, for the k-th id,
    ``frequencies_<k>`` (THz) and ``dos_<k>`` (states/THz per primitive cell)."""
    from topogen.io.atomic import atomic_path

    arrays: dict[str, np.ndarray] = {"ids": np.array(list(dos), dtype=str)}
    for k, (f, d) in enumerate(dos.values()):
        arrays[f"frequencies_{k}"] = np.asarray(f, dtype=float)
        arrays[f"dos_{k}"] = np.asarray(d, dtype=float)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(fh, **arrays)
    return Path(path)


def read_dos(path: str | os.PathLike[str]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    with np.load(path, allow_pickle=False) as data:
        ids = [str(x) for x in data["ids"]]
        return {i: (data[f"frequencies_{k}"], data[f"dos_{k}"]) for k, i in enumerate(ids)}


def write_chunk(
    result: FunnelResult,
    structures: str | os.PathLike[str],
    funnel: str | os.PathLike[str],
    dos: str | os.PathLike[str],
) -> None:
    from topogen.io.tables import write_records

    write_records(result.records, structures)
    write_funnel(result.frame(), funnel)
    write_dos(result.dos, dos)


def read_candidates(path: str | os.PathLike[str]) -> list[Record]:
    """A structure table's rows as Records; a row whose structure does not decode becomes a
    Record with ``structure=None`` (it then fails validity with that reason)."""
    from topogen.io.tables import decode_structure, read_table

    df = read_table(path)
    out = []
    for row in df.itertuples(index=False):
        try:
            props = json.loads(row.properties)
        except json.JSONDecodeError:
            props = {}
        try:
            structure = decode_structure(row.structure)
        except Exception:
            structure = None
        out.append(Record(str(row.id), str(row.source), structure, props))
    return out


# --- chunks ---------------------------------------------------------------------------------


def _n_sites(text: str) -> int:
    try:
        return len(json.loads(text).get("sites", ()))
    except (json.JSONDecodeError, AttributeError):
        return -1


def split_chunks(table: pd.DataFrame, n_chunks: int) -> list[pd.DataFrame]:
    """Split a structure table into ``n_chunks`` tables (some may be empty).

    Rows with the same (reduced formula, number of sites), the only ones that can be
    duplicates of each other, always go to the same chunk, so per-chunk uniqueness is
    uniqueness over the whole table. Buckets are dealt largest first to the least loaded
    chunk (ties: lowest chunk number, then formula order), which balances chunks unless one
    bucket alone exceeds a chunk's share. Rows keep their order within a chunk; the split
    depends only on the table.
    """
    if n_chunks < 1:
        raise ValueError(f"n_chunks must be >= 1, not {n_chunks}")
    keys = list(zip(table["formula"].astype(str), map(_n_sites, table["structure"]), strict=True))
    buckets: dict[tuple[str, int], list[int]] = {}
    for row, key in enumerate(keys):
        buckets.setdefault(key, []).append(row)
    load = [0] * n_chunks
    assign = np.zeros(len(table), dtype=np.int64)
    for key in sorted(buckets, key=lambda k: (-len(buckets[k]), k)):
        target = min(range(n_chunks), key=lambda i: (load[i], i))
        assign[buckets[key]] = target
        load[target] += len(buckets[key])
    return [table.iloc[np.flatnonzero(assign == i)].reset_index(drop=True) for i in range(n_chunks)]


def merge_chunks(funnels: Sequence[str | os.PathLike[str]]) -> pd.DataFrame:
    """The funnel tables of all chunks as one (chunk order kept); ids must be unique."""
    frames = [read_funnel(p) for p in funnels]
    df = pd.concat(frames, ignore_index=True) if frames else funnel_frame([])
    dup = df["id"].duplicated()
    if dup.any():
        raise ValueError(f"id {df['id'][dup].iloc[0]!r} appears in more than one chunk")
    return funnel_frame(df.to_dict("records"))


def merge_structures(
    tables: Sequence[str | os.PathLike[str]], *, passed_only: bool = True
) -> list[Record]:
    """Relaxed structures of all chunks; only those that passed every step by default."""
    from topogen.io.tables import read_records

    out = []
    for p in tables:
        for r in read_records(p):
            if not passed_only or r.properties.get("screen_passed"):
                out.append(r)
    return out


def merge_dos(
    paths: Sequence[str | os.PathLike[str]], keep: Iterable[str] | None = None
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    wanted = None if keep is None else set(keep)
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for p in paths:
        for k, v in read_dos(p).items():
            if wanted is None or k in wanted:
                out[k] = v
    return out


def summary(df: pd.DataFrame) -> dict[str, dict[str, int]]:
    """Counts of each verdict at each step (for logs and reports)."""
    return {
        s: {v: int((df[s] == v).sum()) for v in ("pass", "fail", "skipped", "failed")}
        for s in STEPS
    }


# --- file-level entry points (what `topogen screen ...` runs) --------------------------------


def split_file(table: str | os.PathLike[str], outs: Sequence[str | os.PathLike[str]]) -> list[int]:
    """Split the structure table ``table`` into ``len(outs)`` chunk tables
    (:func:`split_chunks`); returns the chunk sizes. Every output is written, empty or not."""
    from topogen.io.tables import read_table, write_table

    parts = split_chunks(read_table(table), len(outs))
    for part, out in zip(parts, outs, strict=True):
        write_table(part, out)
    return [len(p) for p in parts]


def run_chunk(
    candidates: str | os.PathLike[str],
    *,
    out: str | os.PathLike[str],
    funnel: str | os.PathLike[str],
    dos: str | os.PathLike[str],
    training: str | os.PathLike[str] | None = None,
    chunk: str = "",
    options: FunnelOptions | None = None,
    threads: int | None = None,
    workers: int = 1,
    model: Any = None,
    band_gap: ScoreHook | None = None,
    topology: ScoreHook | None = None,
    log: Callable[[str], None] | None = None,
) -> FunnelResult:
    """Screen one chunk file and write its three outputs (:func:`write_chunk`). Only the
    training rows whose reduced formula occurs in the chunk are decoded."""
    from topogen.screen.novelty import training_index

    records = read_candidates(candidates)
    index = None
    if training is not None:
        formulas = {r.structure.composition.reduced_formula for r in records if r.structure}
        index = training_index(path=training, formulas=formulas)
    result = screen(
        records,
        training=index,
        options=options,
        model=model,
        band_gap=band_gap,
        topology=topology,
        threads=threads,
        workers=workers,
        chunk=chunk,
        log=log,
    )
    write_chunk(result, out, funnel, dos)
    return result


def merge_files(
    funnels: Sequence[str | os.PathLike[str]],
    structures: Sequence[str | os.PathLike[str]],
    doses: Sequence[str | os.PathLike[str]],
    *,
    funnel_out: str | os.PathLike[str],
    survivors_out: str | os.PathLike[str],
    dos_out: str | os.PathLike[str],
) -> dict[str, dict[str, int]]:
    """Merge chunk outputs: the funnel table of every candidate, the structures that passed
    every step, and their phonon DOS. Returns :func:`summary` of the merged funnel."""
    from topogen.io.tables import write_records

    df = merge_chunks(funnels)
    write_funnel(df, funnel_out)
    survivors = merge_structures(structures)
    write_records(survivors, survivors_out)
    write_dos(merge_dos(doses, keep={r.id for r in survivors}), dos_out)
    return summary(df)
