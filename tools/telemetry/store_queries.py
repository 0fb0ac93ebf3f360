"""SQL for the store's read side: one small builder per question the sources protocols ask.

Why builders that return ``(sql, params)``: every filter is a bound parameter (no string
interpolation of user input), each question is testable without a store, and the store class
stays a thin transaction and locking shell around DuckDB.

Every query is bounded by a time window on the sorted time column first, so DuckDB's zone maps
prune the row groups outside it; results come back ordered by time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from tools.core.errors import TamoError
from tools.telemetry.model import LOG_SCHEMA, METRIC_SCHEMA, SPAN_SCHEMA, TimeWindow
from tools.telemetry.sources import LogQuery, MetricQuery, TraceQuery
from tools.telemetry.trace_model import ERROR_SQL

# A parent span may start before the window of its child; how far back the call graph looks
# for it, and how far past the end (clock skew between hosts).
PARENT_LOOKBACK_NS = 15 * 60 * 1_000_000_000
PARENT_SKEW_NS = 60 * 1_000_000_000

_METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_.\-/]*$")

SPAN_COLS = ", ".join(f'"{f.name}"' for f in SPAN_SCHEMA)
LOG_COLS = ", ".join(f'"{f.name}"' for f in LOG_SCHEMA)
METRIC_COLS = ", ".join(f'"{f.name}"' for f in METRIC_SCHEMA)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def covering_window(start_ns: int, end_ns: int) -> TimeWindow:
    """The smallest microsecond-aligned window holding ``[start_ns, end_ns)``, without floats."""
    lo = _EPOCH + timedelta(microseconds=start_ns // 1000)
    hi = _EPOCH + timedelta(microseconds=-(-end_ns // 1000))
    return TimeWindow(start=lo, end=max(hi, lo + timedelta(microseconds=1)))


@dataclass
class Where:
    """Conjunction of bound-parameter conditions."""

    parts: list[str] = field(default_factory=list)
    params: list[object] = field(default_factory=list)

    def add(self, cond: str, *params: object) -> Where:
        self.parts.append(cond)
        self.params.extend(params)
        return self

    def window(self, column: str, window: TimeWindow) -> Where:
        return self.add(f"{column} >= ? AND {column} < ?", window.start_ns, window.end_ns)

    def any_of(self, column: str, values: list[str] | None) -> Where:
        if values:
            marks = ", ".join("?" for _ in values)
            self.add(f"{column} IN ({marks})", *values)
        return self

    @property
    def sql(self) -> str:
        return " AND ".join(self.parts) if self.parts else "TRUE"


def _limit(limit: int | None) -> str:
    if limit is None:
        return ""
    if limit < 0:
        raise TamoError(f"limit must be >= 0, got {limit}", source="limit")
    return f" LIMIT {int(limit)}"


def spans_sql(q: TraceQuery) -> tuple[str, list[object]]:
    w = Where().window("start_ns", q.window).any_of("service", q.services)
    if q.operation is not None:
        w.add("operation = ?", q.operation)
    if q.min_duration_ms is not None:
        w.add("duration_ns >= ?", round(q.min_duration_ms * 1_000_000))
    if q.errors_only:
        w.add(ERROR_SQL)
    if q.trace_id is not None:
        w.add("trace_id = ?", q.trace_id.lower())
    sql = f"SELECT {SPAN_COLS} FROM spans WHERE {w.sql} ORDER BY start_ns{_limit(q.limit)}"
    return sql, w.params


def trace_sql(trace_id: str) -> tuple[str, list[object]]:
    return f"SELECT {SPAN_COLS} FROM spans WHERE trace_id = ? ORDER BY start_ns", [trace_id.lower()]


def logs_sql(q: LogQuery) -> tuple[str, list[object]]:
    w = Where().window("ts_ns", q.window).any_of("service", q.services)
    if q.query is not None:
        w.add("regexp_matches(body, ?)" if q.regex else "contains(body, ?)", q.query)
    if q.trace_id is not None:
        w.add("trace_id = ?", q.trace_id.lower())
    return f"SELECT {LOG_COLS} FROM logs WHERE {w.sql} ORDER BY ts_ns{_limit(q.limit)}", w.params


def series_sql(q: MetricQuery) -> tuple[str, list[object]]:
    """Samples of one metric name with exact label matches.

    With ``step_s`` the samples are resampled the way a Prometheus range query sees them: for
    each series and each step bucket, the last sample in the bucket, stamped at the bucket start.
    """
    name, step_s = q.name_or_promql, q.step_s
    if not _METRIC_NAME.match(name):
        raise TamoError(
            f"the embedded store answers metric names, not PromQL ({name!r}); "
            "configure TAMO_PROMETHEUS_URL for PromQL",
            source="metric name",
        )
    w = Where().window("ts_ns", q.window).add("name = ?", name)
    for key, value in sorted((q.labels or {}).items()):
        if not _LABEL_NAME.match(key):
            raise TamoError(f"invalid label name {key!r}", source="labels")
        w.add(f"json_extract_string(labels, '$.\"{key}\"') = ?", value)
    if step_s is None:
        sql = f"SELECT {METRIC_COLS} FROM metrics WHERE {w.sql} ORDER BY labels, ts_ns"
        return sql, w.params
    if step_s <= 0:
        raise TamoError(f"step must be positive, got {step_s}", source="step")
    step = round(step_s * 1_000_000_000)
    sql = (
        "SELECT name, any_value(service) AS service, any_value(pod) AS pod, labels, "
        f"(ts_ns // {step}) * {step} AS ts_ns, arg_max(value, ts_ns) AS value "
        f"FROM metrics WHERE {w.sql} GROUP BY name, labels, ts_ns // {step} ORDER BY labels, ts_ns"
    )
    return sql, w.params


def call_graph_sql(window: TimeWindow) -> tuple[str, list[object]]:
    """Caller -> callee service edges from child spans in ``window`` joined to their parents."""
    sql = f"""
        WITH c AS (
            SELECT trace_id, parent_id, service, duration_ns, status, error_code, kind FROM spans
            WHERE start_ns >= ? AND start_ns < ? AND parent_id IS NOT NULL
        ), p AS (
            SELECT trace_id, span_id, service FROM spans WHERE start_ns >= ? AND start_ns < ?
        )
        SELECT p.service AS caller, c.service AS callee, count(*) AS calls,
               count(*) FILTER (WHERE {ERROR_SQL}) AS errors,
               quantile_cont(c.duration_ns, 0.5) / 1e6 AS p50_ms,
               quantile_cont(c.duration_ns, 0.95) / 1e6 AS p95_ms
        FROM c JOIN p ON c.trace_id = p.trace_id AND c.parent_id = p.span_id
        WHERE p.service IS DISTINCT FROM c.service
        GROUP BY ALL ORDER BY caller, callee
    """
    s, e = window.start_ns, window.end_ns
    return sql, [s, e, s - PARENT_LOOKBACK_NS, e + PARENT_SKEW_NS]


def service_stats_sql(window: TimeWindow) -> tuple[str, list[object]]:
    sql = (
        f"SELECT service, count(*) AS spans, count(*) FILTER (WHERE {ERROR_SQL}) AS errors "
        "FROM spans WHERE start_ns >= ? AND start_ns < ? AND service IS NOT NULL "
        "GROUP BY service ORDER BY service"
    )
    return sql, [window.start_ns, window.end_ns]
