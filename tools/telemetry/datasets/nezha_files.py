"""Nezha file formats -> the columnar telemetry schemas (one function per file kind).

Why separate from the adapter: these functions know the columns of one file and nothing about
cases, so the bulk ingest (``iter_telemetry``), ``load_case`` and the property tests all go
through the same code. Everything is vectorised (pyarrow compute; log records in
:mod:`~tools.telemetry.datasets.nezha_logs`); per-row Python runs only to name the first bad
row of a broken file.

Metric names (``nezha_metric_name``): a column ``Name(unit)`` becomes
``<prefix><snake_case(Name)>_<unit>`` with the value converted to the Prometheus base unit:
``(m)`` millicores -> ``_cores`` (x 0.001), ``(Mi)`` MiB -> ``_bytes`` (x 1,048,576),
``(%)`` -> ``_percent``, ``(s)`` -> ``_seconds``, ``(Ops)`` -> ``_ops``; a column without a unit
keeps its name (``SyscallRead`` -> ``pod_syscall_read``; the repository states no unit). Pod
files use prefix ``pod_`` (columns already starting with ``Pod``/``Node`` keep theirs),
``front_service.csv`` uses ``entry_``. See ``POD_METRIC_NAMES`` for the full table.
"""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from tools.core.errors import InputError
from tools.telemetry.datasets.columnar import (
    check_metric_name,
    const,
    labels_json,
    map_distinct,
    plain_strings,
    wide_to_long,
)
from tools.telemetry.datasets.files import read_csv, read_header
from tools.telemetry.datasets.nezha_logs import decode_logs
from tools.telemetry.datasets.timeparse import wallclock_ns
from tools.telemetry.model import LOG_SCHEMA, METRIC_SCHEMA, SPAN_SCHEMA, service_from_pod

#: few distinct values per file: read dictionary-encoded, which also makes the pod -> service
#: mapping a lookup in the dictionary instead of a hash of every row
_NAMES = pa.dictionary(pa.int32(), pa.string())
TRACE_COLUMNS: dict[str, pa.DataType] = {
    "TraceID": pa.string(),
    "SpanID": pa.string(),
    "ParentID": pa.string(),
    "PodName": _NAMES,
    "OperationName": _NAMES,
    "StartTimeUnixNano": pa.int64(),
    "EndTimeUnixNano": pa.int64(),
}
LOG_COLUMNS: dict[str, pa.DataType] = {
    "Timestamp": pa.string(),
    "TimeUnixNano": pa.int64(),
    "Node": pa.string(),
    "PodName": pa.string(),
    "Container": pa.string(),
    "TraceID": pa.string(),
    "SpanID": pa.string(),
    "Log": pa.string(),
}
POD_METRIC_COLUMNS = (
    "CpuUsage(m)",
    "CpuUsageRate(%)",
    "MemoryUsage(Mi)",
    "MemoryUsageRate(%)",
    "SyscallRead",
    "SyscallWrite",
    "NetworkReceiveBytes",
    "NetworkTransmitBytes",
    "PodClientLatencyP90(s)",
    "PodServerLatencyP90(s)",
    "PodClientLatencyP95(s)",
    "PodServerLatencyP95(s)",
    "PodClientLatencyP99(s)",
    "PodServerLatencyP99(s)",
    "PodWorkload(Ops)",
    "PodSuccessRate(%)",
    "NodeCpuUsageRate(%)",
    "NodeMemoryUsageRate(%)",
    "NodeNetworkReceiveBytes",
)
ENTRY_METRIC_COLUMNS = (
    "SuccessRate(%)",
    "LatencyP50(s)",
    "LatencyP90(s)",
    "LatencyP95(s)",
    "LatencyP99(s)",
)
#: metric name of the OB per-edge latency series (source_50.csv / destination_50.csv)
EDGE_LATENCY_METRIC = "edge_latency_p50_seconds"

_UNITS: dict[str, tuple[str, float]] = {
    "m": ("cores", 0.001),
    "Mi": ("bytes", 1024.0 * 1024.0),
    "%": ("percent", 1.0),
    "s": ("seconds", 1.0),
    "ms": ("seconds", 0.001),
    "Ops": ("ops", 1.0),
}
_COLUMN_RE = re.compile(r"^(?P<base>[A-Za-z][A-Za-z0-9]*)(?:\((?P<unit>[^()]+)\))?$")
_CAMEL_RE = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def nezha_metric_name(column: str, *, prefix: str, source: str = "<column>") -> tuple[str, float]:
    """``CpuUsageRate(%)`` -> (``pod_cpu_usage_rate_percent``, 1.0); see the module docstring."""
    m = _COLUMN_RE.match(column.strip())
    if m is None or (m["unit"] is not None and m["unit"] not in _UNITS):
        raise InputError(f"unexpected metric column {column!r}", path=source)
    snake = _CAMEL_RE.sub("_", m["base"]).lower()
    if not snake.startswith(("pod_", "node_")):
        snake = prefix + snake
    scale = 1.0
    if m["unit"] is not None:
        suffix, scale = _UNITS[m["unit"]]
        if not snake.endswith("_" + suffix):
            snake = f"{snake}_{suffix}"
    return check_metric_name(snake, source=source), scale


POD_METRIC_NAMES: dict[str, str] = {
    c: nezha_metric_name(c, prefix="pod_")[0] for c in POD_METRIC_COLUMNS
}
ENTRY_METRIC_NAMES: dict[str, str] = {
    c: nezha_metric_name(c, prefix="entry_")[0] for c in ENTRY_METRIC_COLUMNS
}


# ---------------------------------------------------------------------------------------------
# traces
# ---------------------------------------------------------------------------------------------


def read_spans(path: Path) -> pa.Table:
    """``HH_MM_trace.csv[.gz]`` -> ``SPAN_SCHEMA``: ``ParentID`` ``root`` -> null, service from
    the pod name, status ``unset`` (the files have no status column), kind/error_code null."""
    raw = read_csv(path, TRACE_COLUMNS)
    n = raw.num_rows
    pods = raw["PodName"]
    parent = raw["ParentID"]
    parent = pc.if_else(
        pc.or_(pc.equal(parent, "root"), pc.equal(parent, "")), const(None, n), parent
    )
    start, end = raw["StartTimeUnixNano"], raw["EndTimeUnixNano"]
    if raw.num_rows and (start.null_count or end.null_count):
        raise InputError("span without start or end time", path=str(path))
    return pa.table(
        [
            raw["TraceID"],
            raw["SpanID"],
            parent,
            map_distinct(pods, service_from_pod),
            plain_strings(pods),
            plain_strings(raw["OperationName"]),
            const(None, n),
            start,
            end,
            pc.subtract(end, start),
            const("unset", n),
            const(None, n),
            const(None, n),
        ],
        schema=SPAN_SCHEMA,
    )


def read_trace_ids(path: Path) -> pa.Array:
    """``HH_MM_traceid.csv`` (no header, one id per line) -> string array."""
    return read_csv(path, {"trace_id": pa.string()}, header=False)["trace_id"].combine_chunks()


# ---------------------------------------------------------------------------------------------
# logs
# ---------------------------------------------------------------------------------------------


def read_logs(path: Path) -> pa.Table:
    """``HH_MM_log.csv[.gz]`` -> ``LOG_SCHEMA``. Time is ``TimeUnixNano``, or ``Timestamp``
    (UTC) where ``TimeUnixNano`` is missing or <= 0 (45 TT rows carry a garbage value)."""
    raw = read_csv(path, LOG_COLUMNS)
    if raw.num_rows == 0:
        return LOG_SCHEMA.empty_table()
    ts = raw["TimeUnixNano"].combine_chunks()
    bad = pc.fill_null(pc.less_equal(ts, 0), True)
    if pc.any(bad).as_py():
        stamps = pc.filter(raw["Timestamp"].combine_chunks(), bad)
        try:
            fixed = wallclock_ns(stamps, source=str(path), first_line=0)
        except InputError as exc:  # name the file line of the bad row, not its subset index
            row = pc.indices_nonzero(bad)[exc.line or 0].as_py()
            raise InputError(f"Timestamp: {exc.message}", path=str(path), line=row + 2) from None
        ts = pc.replace_with_mask(ts, bad, fixed)
    table = raw.append_column("ts_ns", ts).append_column(
        "service", map_distinct(raw["PodName"], lambda p: service_from_pod(p) if p else None)
    )
    try:
        out = decode_logs(table)
    except duckdb.Error as exc:
        raise InputError(f"cannot decode log records: {exc}", path=str(path)) from None
    return out.cast(LOG_SCHEMA)


# ---------------------------------------------------------------------------------------------
# metrics
# ---------------------------------------------------------------------------------------------


def _time_column(raw: pa.Table, name: str, path: Path) -> pa.Array:
    return wallclock_ns(raw[name], source=str(path), first_line=2)


def _labels_for(pods: pa.ChunkedArray | pa.Array) -> tuple[pa.Array, pa.Array]:
    services = map_distinct(pods, service_from_pod)
    labels = map_distinct(pods, lambda p: labels_json({"pod": p, "service": service_from_pod(p)}))
    return services, labels


def read_pod_metrics(path: Path) -> pa.Table:
    """``<pod>_metric.csv`` -> long ``METRIC_SCHEMA`` (one row per minute x column; NaN dropped).

    Time is the Go ``Time`` column; ``TimeStamp`` is ignored (wrong in OB's adservice file).
    Labels: ``{"pod", "service"}`` (node-level columns are as seen from this pod's node).
    """
    types = {"Time": pa.string(), "PodName": pa.string()} | dict.fromkeys(
        POD_METRIC_COLUMNS, pa.float64()
    )
    raw = read_csv(path, types)
    ts = _time_column(raw, "Time", path)
    services, labels = _labels_for(raw["PodName"])
    cols = [
        (POD_METRIC_NAMES[c], raw[c].combine_chunks(), nezha_metric_name(c, prefix="pod_")[1])
        for c in POD_METRIC_COLUMNS
    ]
    return wide_to_long(
        ts, cols, service=services, pod=raw["PodName"].combine_chunks(), labels=labels
    )


def read_entry_metrics(path: Path, service: str) -> pa.Table:
    """``front_service.csv`` -> ``entry_*`` series of the system's entry ``service``.

    A success-rate column that is 0 in every row is dropped: it is a broken collector (the TT
    file), not a day-long total outage, and would teach every model that 0 % is normal.
    """
    types = {"Time": pa.string()} | dict.fromkeys(ENTRY_METRIC_COLUMNS, pa.float64())
    raw = read_csv(path, types)
    ts = _time_column(raw, "Time", path)
    cols = []
    for c in ENTRY_METRIC_COLUMNS:
        values = raw[c].combine_chunks()
        if c.startswith("SuccessRate") and len(values) and pc.all(pc.equal(values, 0)).as_py():
            continue
        name, scale = nezha_metric_name(c, prefix="entry_", source=str(path))
        cols.append((name, values, scale))
    n = raw.num_rows
    return wide_to_long(
        ts,
        cols,
        service=const(service, n),
        pod=const(None, n),
        labels=const(labels_json({"service": service}), n),
    )


def read_edge_metrics(path: Path, reported_by: str) -> pa.Table:
    """OB ``source_50.csv``/``destination_50.csv`` -> ``edge_latency_p50_seconds`` with labels
    ``{"source", "target", "reported_by"}``; the row's ``service`` is the reporting side
    (``source`` -> caller, ``destination`` -> callee). Columns are ``<caller>_<callee>``."""
    raw = _read_edge_table(path)
    ts = _time_column(raw, "time", path)
    parts = []
    for column in raw.column_names:
        if column in ("time", "timestamp"):
            continue
        source, _, target = column.partition("_")
        if not source or not target or "_" in target:
            raise InputError(f"edge column {column!r} is not <caller>_<callee>", path=str(path))
        service = source if reported_by == "source" else target
        n = len(ts)
        labels = labels_json({"reported_by": reported_by, "source": source, "target": target})
        parts.append(
            wide_to_long(
                ts,
                [(EDGE_LATENCY_METRIC, raw[column].combine_chunks(), 1.0)],
                service=const(service, n),
                pod=const(None, n),
                labels=const(labels, n),
            )
        )
    return pa.concat_tables(parts) if parts else METRIC_SCHEMA.empty_table()


def _read_edge_table(path: Path) -> pa.Table:
    """All columns of an edge file, values as float64 (column names are data here)."""
    names = read_header(path)
    if names[:2] != ["time", "timestamp"]:
        raise InputError("expected header time,timestamp,<edges...>", path=str(path), line=1)
    types = {"time": pa.string(), "timestamp": pa.string()} | dict.fromkeys(names[2:], pa.float64())
    return read_csv(path, types)


def read_dependencies(path: Path) -> list[tuple[str, str, float]]:
    """OB ``dependency.csv`` (``Source,Target,Weight``) -> call edges (caller, callee, weight)."""
    raw = read_csv(path, {"Source": pa.string(), "Target": pa.string(), "Weight": pa.float64()})
    return list(
        zip(
            raw["Source"].to_pylist(),
            raw["Target"].to_pylist(),
            raw["Weight"].to_pylist(),
            strict=True,
        )
    )
