"""Chunk files of the screening funnel: split a candidate table into chunks, screen one
chunk file, merge the chunks' outputs.

Outputs of one chunk (:func:`write_chunk`): a structure table of every candidate that was
relaxed (the relaxed structure; properties carry all verdicts, reasons and numbers), a funnel
table (every candidate, see :data:`topogen.screen.funnel.FUNNEL_COLUMNS`) and an ``.npz``
file of phonon DOS arrays of the phonon-stable candidates (:func:`write_dos`; the merge keeps
the survivors' alone).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from topogen.io.tables import Record
from topogen.screen.funnel import (
    STEPS,
    FunnelOptions,
    FunnelResult,
    ScoreHook,
    funnel_frame,
    screen,
)

FUNNEL_SCHEMA = "funnel-table/1"
_SCHEMA_KEY = b"topogen.schema"


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


def split_chunks(table: pd.DataFrame, n_chunks: int) -> list[pd.DataFrame]:
    """Split a structure table into ``n_chunks`` tables (some may be empty).

    Rows with the same reduced formula, the only ones that can be duplicates of each other
    (a supercell of a crystal included: :mod:`topogen.screen.novelty`), always go to the same
    chunk, so per-chunk uniqueness is uniqueness over the whole table. Buckets are dealt
    largest first to the least loaded chunk (ties: lowest chunk number, then formula
    order), which balances chunks unless one bucket alone exceeds a chunk's share. Rows keep
    their order within a chunk; the split depends only on the table.
    """
    if n_chunks < 1:
        raise ValueError(f"n_chunks must be >= 1, not {n_chunks}")
    keys = list(table["formula"].astype(str))
    buckets: dict[str, list[int]] = {}
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
