"""Table layout of the embedded store and the conversion of incoming Arrow tables to it.

Why a separate module: the layout (one table per modality, each row tagged with the integer key
of the source it came from) is what makes re-ingest idempotent and atomic, and the conversion
(select the schema's columns, cast, sort by time) is what keeps window queries fast. Both are
small, pure and worth testing on their own.

Rows are sorted by time when they are written (``TelemetryStore``), so DuckDB's per-row-group
min/max statistics (zone maps) let a window query skip everything outside the window without a
secondary index.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from tools.core.errors import InputError
from tools.telemetry.model import LOG_SCHEMA, METRIC_SCHEMA, SPAN_SCHEMA

SCHEMA_VERSION = "1"


@dataclass(frozen=True)
class Kind:
    """One modality: its table name, columnar schema and the column that orders it in time."""

    name: str
    schema: pa.Schema
    time_column: str


KINDS: dict[str, Kind] = {
    "spans": Kind("spans", SPAN_SCHEMA, "start_ns"),
    "logs": Kind("logs", LOG_SCHEMA, "ts_ns"),
    "metrics": Kind("metrics", METRIC_SCHEMA, "ts_ns"),
}


SOURCES_SCHEMA = pa.schema(
    [
        ("src", pa.int32()),
        ("source_id", pa.string()),
        ("kind", pa.string()),
        ("rows", pa.int64()),
        ("min_ns", pa.int64()),
        ("max_ns", pa.int64()),
        ("ingested_ns", pa.int64()),
    ]
)


def kind_of(name: str) -> Kind:
    try:
        return KINDS[name]
    except KeyError:
        raise ValueError(
            f"unknown telemetry kind {name!r}; expected one of {sorted(KINDS)}"
        ) from None


# Column compression chosen by measurement on the Nezha TT day (CPU time of the insert):
# random hex ids hardly compress and analysing them costs about a third of the span ingest, so
# they are stored as they are (file ~2x, ingest ~1.6x faster); long free text (log bodies,
# attribute JSON) is left uncompressed by DuckDB's default analysis, zstd makes it ~17x smaller
# at the same CPU cost.
COMPRESSION = {
    "trace_id": "uncompressed",
    "span_id": "uncompressed",
    "parent_id": "uncompressed",
    "body": "zstd",
    "attributes": "zstd",
}


def _sql_type(f: pa.Field) -> str:
    if pa.types.is_int64(f.type):
        return "BIGINT"
    if pa.types.is_float64(f.type):
        return "DOUBLE"
    method = COMPRESSION.get(f.name)
    return f"VARCHAR USING COMPRESSION {method}" if method else "VARCHAR"


def ddl() -> list[str]:
    """Statements creating the store's tables (idempotent)."""
    stmts = [
        "CREATE TABLE IF NOT EXISTS store_meta (key VARCHAR PRIMARY KEY, value VARCHAR)",
        # One row per (source, kind): what a re-ingest of that source replaces.
        "CREATE TABLE IF NOT EXISTS sources (src INTEGER, source_id VARCHAR, kind VARCHAR, "
        "rows BIGINT, min_ns BIGINT, max_ns BIGINT, ingested_ns BIGINT)",
        # The declared service graph (tools.telemetry.topology): one per store, replaced whole.
        "CREATE TABLE IF NOT EXISTS topology (caller VARCHAR, callee VARCHAR, source_id VARCHAR)",
    ]
    for k in KINDS.values():
        cols = ", ".join(f'"{f.name}" {_sql_type(f)}' for f in k.schema)
        stmts.append(f"CREATE TABLE IF NOT EXISTS {k.name} ({cols}, src INTEGER)")
    return stmts


def conform(kind: Kind, table: pa.Table, source_id: str) -> pa.Table:
    """``table`` as exactly ``kind.schema`` (extra columns dropped, types cast).

    Raises ``InputError`` naming the source and the column when a column is missing or cannot be
    converted, so that a bad table never reaches the store.
    """
    if table.schema.equals(kind.schema):  # the adapters' and parsers' tables: nothing to convert
        out = table.replace_schema_metadata(None)
    else:
        out = _converted(kind, table, source_id)
    if out.column(kind.time_column).null_count:
        raise InputError(f"column {kind.time_column} has null values", path=source_id)
    return out


def _converted(kind: Kind, table: pa.Table, source_id: str) -> pa.Table:
    """``table``'s columns of ``kind.schema`` in its order, cast where their type differs."""
    names = set(table.column_names)
    missing = [f.name for f in kind.schema if f.name not in names]
    if missing:
        raise InputError(f"{kind.name} table lacks column(s) {', '.join(missing)}", path=source_id)
    cols = []
    for f in kind.schema:
        col = table.column(f.name)
        if col.type != f.type:
            try:
                col = col.cast(f.type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise InputError(
                    f"column {f.name}: cannot convert {col.type} to {f.type} ({exc})",
                    path=source_id,
                ) from None
        cols.append(col)
    return pa.Table.from_arrays(cols, schema=kind.schema)
