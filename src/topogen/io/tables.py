"""Structure tables: the Parquet files that stages exchange.

Schema (version 1), one row per structure:

=========== ======= =====================================================================
column      type    meaning
=========== ======= =====================================================================
id          string  unique within the table (source id where the source has one)
source      string  where the row came from (``c2db``, ``mp``, ``prototypes``, ``import``...)
formula     string  reduced formula
structure   string  pymatgen JSON (``Structure.as_dict()``; ``Molecule`` for molecules)
properties  string  JSON object of scalar properties (band gap, labels, origin, ...)
=========== ======= =====================================================================

Extra columns are allowed and kept; the required ones are checked on every read.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from topogen.errors import TableSchemaError
from topogen.io.atomic import atomic_path
from topogen.io.quarantine import Rejected

SCHEMA_VERSION = "structure-table/1"
COLUMNS = ("id", "source", "formula", "structure", "properties")
_SCHEMA_KEY = b"topogen.schema"


@dataclass
class Record:
    """One structure with its identity and properties (a row of a structure table)."""

    id: str
    source: str
    structure: Any  # pymatgen Structure or Molecule
    properties: dict[str, Any] = field(default_factory=dict)

    @property
    def formula(self) -> str:
        return self.structure.composition.reduced_formula


@dataclass
class LoadResult:
    """What a reader got out of its inputs: usable records and rejected entries."""

    records: list[Record] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    _ids: set[str] = field(default_factory=set, init=False, repr=False)

    def admit(self, file: str, item: str, rid: str, reason: str | None, record: Any) -> None:
        """Keep ``record``, or reject entry ``item`` of ``file`` with ``reason`` (or as a
        duplicate of an id already kept); ``record`` is None when there is a reason."""
        if reason is None and rid in self._ids:
            reason = f"duplicate id {rid!r}"
        if reason is not None:
            self.rejected.append(Rejected(file, item, rid, reason))
            return
        self._ids.add(rid)
        self.records.append(record)


def _json_safe(value: Any) -> Any:
    """Convert numpy scalars/arrays to plain JSON values; NaN and inf become None."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def records_to_frame(records: Iterable[Record]) -> pd.DataFrame:
    """Serialise records into a DataFrame with the table's required columns."""
    rows = [
        {
            "id": r.id,
            "source": r.source,
            "formula": r.formula,
            "structure": json.dumps(r.structure.as_dict()),
            "properties": json.dumps(_json_safe(r.properties), sort_keys=True),
        }
        for r in records
    ]
    return pd.DataFrame(rows, columns=list(COLUMNS)).astype("string")


def check_frame(df: pd.DataFrame, path: str | os.PathLike[str] = "<table>") -> None:
    """Raise TableSchemaError naming the file and the first problem found."""
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise TableSchemaError(f"{path}: missing column(s) {', '.join(missing)}")
    for col in COLUMNS:
        nulls = df[col].isna()
        if nulls.any():
            row = int(nulls.to_numpy().nonzero()[0][0])
            raise TableSchemaError(f"{path}: row {row}: empty value in column {col!r}")
    dup = df["id"].duplicated()
    if dup.any():
        row = int(dup.to_numpy().nonzero()[0][0])
        raise TableSchemaError(f"{path}: row {row}: duplicate id {df['id'].iloc[row]!r}")


def write_table(df: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Check and atomically write a structure table to Parquet."""
    path = Path(path)
    check_frame(df, path)
    table = pa.Table.from_pandas(df.reset_index(drop=True), preserve_index=False)
    meta = dict(table.schema.metadata or {})
    meta[_SCHEMA_KEY] = SCHEMA_VERSION.encode()
    table = table.replace_schema_metadata(meta)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
    return path


def write_records(records: Iterable[Record], path: str | os.PathLike[str]) -> Path:
    return write_table(records_to_frame(records), path)


def read_table(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a structure table, checking the schema; errors name the file."""
    path = Path(path)
    if not path.exists():
        raise TableSchemaError(f"{path}: no such file")
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise TableSchemaError(f"{path}: not a readable Parquet file ({exc})") from exc
    version = (table.schema.metadata or {}).get(_SCHEMA_KEY, b"").decode()
    if version and version != SCHEMA_VERSION:
        raise TableSchemaError(f"{path}: schema {version!r}, expected {SCHEMA_VERSION!r}")
    df = table.to_pandas()
    check_frame(df, path)
    for col in COLUMNS:
        df[col] = df[col].astype("string")
    return df


def decode_structure(text: str) -> Any:
    """pymatgen JSON -> Structure or Molecule."""
    from pymatgen.core import Molecule, Structure

    data = json.loads(text)
    cls = Molecule if data.get("@class") == "Molecule" else Structure
    return cls.from_dict(data)


def iter_records(df: pd.DataFrame, path: str | os.PathLike[str] = "<table>") -> Iterator[Record]:
    """Decode each row; a row that does not decode raises an error naming file, row and id."""
    for i, row in enumerate(df.itertuples(index=False)):
        column = "structure"
        try:
            structure = decode_structure(row.structure)
            column = "properties"
            props = json.loads(row.properties)
        except Exception as exc:  # any decoding failure is a schema error for this row
            why = f"{type(exc).__name__}: {' '.join(str(exc).split())}"
            raise TableSchemaError(
                f"{path}: row {i} (id {row.id!r}): the {column} column does not decode ({why})"
            ) from exc
        yield Record(id=row.id, source=row.source, structure=structure, properties=props)


def read_records(path: str | os.PathLike[str]) -> list[Record]:
    return list(iter_records(read_table(path), path))


def load_records(path: str | os.PathLike[str]) -> LoadResult:
    """Every row of a table that decodes, and the others as :class:`Rejected` (the file, the
    row, its id, why): for stages that quarantine a broken row instead of stopping."""
    result = LoadResult()
    df = read_table(path)
    for i in range(len(df)):
        try:
            (record,) = iter_records(df.iloc[i : i + 1], path)
        except TableSchemaError as exc:
            reason = str(exc).split(": ", 2)[-1]  # without the "file: row i (id ...)" prefix
            result.rejected.append(Rejected(str(path), str(i), str(df["id"].iloc[i]), reason))
            continue
        result.records.append(record)
    return result
