"""Small vectorised helpers shared by the dataset adapters (no per-row Python).

Why: every adapter maps a few distinct pod/container names to services and label JSON, and
turns wide per-minute metric tables into the long ``METRIC_SCHEMA``. Doing the mapping on the
distinct values and broadcasting with ``take`` keeps a whole dataset day at arrow speed while
using exactly :func:`tools.telemetry.model.service_from_pod` for every name.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tools.core.errors import InputError
from tools.telemetry.model import METRIC_SCHEMA

_PROM_NAME_RE = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")


def labels_json(labels: Mapping[str, str]) -> str:
    """Canonical label text of ``METRIC_SCHEMA.labels``: sorted keys, compact separators."""
    return json.dumps(dict(labels), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def map_distinct(
    values: pa.Array | pa.ChunkedArray, fn: Callable[[str], str | None]
) -> pa.Array | pa.ChunkedArray:
    """``fn`` applied to each distinct string of ``values`` and broadcast back as a string column
    (nulls stay null). Dictionary-encoded input (as the CSV reader can produce it) is mapped
    through its dictionary without hashing the rows again."""
    chunks = values.chunks if isinstance(values, pa.ChunkedArray) else [values]
    out = []
    for chunk in chunks:
        if not pa.types.is_dictionary(chunk.type):
            chunk = pc.dictionary_encode(chunk)
        names = chunk.dictionary.to_pylist()
        mapped = pa.array([None if v is None else fn(v) for v in names], pa.string())
        out.append(pc.take(mapped, chunk.indices))
    return pa.chunked_array(out, pa.string())


def plain_strings(values: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """A dictionary-encoded string column decoded to ``string`` (schemas use plain strings)."""
    return values.cast(pa.string()) if pa.types.is_dictionary(values.type) else values


def const(value: str | None, n: int, type_: pa.DataType = pa.string()) -> pa.Array:
    """A column of ``n`` copies of ``value`` (null when ``value`` is None)."""
    return pa.nulls(n, type_) if value is None else pa.repeat(pa.scalar(value, type_), n)


def check_metric_name(name: str, *, source: str) -> str:
    if not _PROM_NAME_RE.match(name):
        raise InputError(f"column maps to an invalid Prometheus metric name {name!r}", path=source)
    return name


def wide_to_long(
    ts_ns: pa.Array,
    columns: Sequence[tuple[str, pa.Array, float]],
    *,
    service: pa.Array,
    pod: pa.Array,
    labels: pa.Array,
) -> pa.Table:
    """Wide rows (one timestamp, many value columns) -> long ``METRIC_SCHEMA`` rows.

    ``columns`` holds ``(metric name, float64 values, scale)``. ``service``/``pod``/``labels``
    are per-row arrays (same length as ``ts_ns``), repeated for every metric. Null and NaN
    values are dropped: a minute without a sample has no point, as in Prometheus.
    """
    n = len(ts_ns)
    k = len(columns)
    if n == 0 or k == 0:
        return METRIC_SCHEMA.empty_table()
    names = pa.DictionaryArray.from_arrays(
        pa.array(np.repeat(np.arange(k, dtype=np.int32), n)),
        pa.array([name for name, _, _ in columns], pa.string()),
    ).cast(pa.string())
    values = pa.concat_arrays(
        [
            pc.multiply(pc.cast(v, pa.float64()), scale) if scale != 1 else pc.cast(v, pa.float64())
            for _, v, scale in columns
        ]
    )

    def tile(a: pa.Array) -> pa.Array:
        return pc.take(a, pa.array(np.tile(np.arange(n, dtype=np.int64), k)))

    table = pa.table(
        [names, tile(service), tile(pod), tile(labels), tile(ts_ns), values], schema=METRIC_SCHEMA
    )
    keep = pc.and_(pc.is_valid(values), pc.invert(pc.is_nan(values)))
    return table.filter(pc.fill_null(keep, False))


_DUCK = duckdb.connect()  # one in-memory database; each query runs on its own cursor


def duck_query(sql: str, **tables: pa.Table) -> pa.Table:
    """Run ``sql`` over arrow ``tables`` (registered under their keyword names) in DuckDB.

    A cursor of one shared in-memory connection: opening a connection per file costs more than
    the query on a small file, and cursors are the thread-safe way to share one.
    """
    cur = _DUCK.cursor()
    try:
        for name, table in tables.items():
            cur.register(name, table)
        return cur.sql(sql).to_arrow_table()
    finally:
        cur.close()
