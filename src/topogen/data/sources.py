"""The downloaded sources by name: each reader turns its raw file(s) into a table.

``READERS[name](inputs, options)`` reads the downloaded file(s) ``inputs`` of source ``name``
with the source's options (a mapping named like the ``topogen data normalize`` flags) and
returns a :class:`~topogen.io.tables.LoadResult` (structures), or for ``topoa`` a
:class:`~topogen.data.topoa.TopoaResult` (a label table, no structures).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from topogen.data import c2db, logan, mc2d, mp, qm9, topoa, tqc
from topogen.errors import TopogenError
from topogen.io.tables import LoadResult, read_records

Options = Mapping[str, Any]
Reader = Callable[[Sequence[str], Options], Any]


def _qm9(inputs: Sequence[str], o: Options) -> LoadResult:
    """The xyz archive when given, else qm9pack's CSV files."""
    if inputs:
        return qm9.load_qm9(inputs[0], o.get("uncharacterized"), o.get("limit"))
    return qm9.load_qm9pack(o.get("qm9pack_dir"), o.get("limit"))


READERS: dict[str, Reader] = {
    "c2db": lambda inputs, o: c2db.load_c2db_db(inputs[0], o["topological"], o["min_distance"]),
    "jarvis-c2db": lambda inputs, o: c2db.load_jarvis_c2db(inputs[0], o["min_distance"]),
    "mp": lambda inputs, o: mp.load_mp(inputs[0], o["min_distance"]),
    "qm9": _qm9,
    "tqc": lambda inputs, o: tqc.join_tqc(inputs[0], read_records(o["mp_table"])),
    "c2db-subset": lambda inputs, o: c2db.load_c2db_subset(inputs[0]),
    "mc2d": lambda inputs, o: mc2d.load_mc2d(inputs[0], o["min_distance"]),
    "mc2d-gaps": lambda inputs, o: mc2d.load_mc2d_file(inputs[0], o["min_distance"], "mc2d_gaps"),
    "logan": lambda inputs, o: logan.load_logan(inputs[0], o["set"]),
    "topoa": lambda inputs, o: topoa.load_topoa(inputs[0]),
}


def read_source(name: str, inputs: Sequence[str], options: Options) -> Any:
    """Read source ``name`` (a key of :data:`READERS`)."""
    if name not in READERS:
        raise TopogenError(f"unknown source {name!r}; known: {', '.join(READERS)}")
    return READERS[name](inputs, options)
