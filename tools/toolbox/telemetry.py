"""Evidence tools: traces, logs and metrics of a window, summarised for a model to read.

Why summaries: a window holds thousands of spans and log lines; a model needs the shape (which
service errs, which is slow, which log pattern is new) plus ids to drill into. Each result is a
few hundred tokens at most, with links so a person can open the raw data; telemetry text stays
in string fields of its own (cut with ``clip``), lines worth a person's attention are listed as
``flagged`` data.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, Field

from tools.core.severity import severity_of, spellings_at_least
from tools.telemetry.model import TimeWindow
from tools.telemetry.sources import LogQuery, MetricQuery, TraceQuery
from tools.telemetry.trace_model import error_spans, has_parent_id
from tools.telemetry.untrusted import FlaggedText, clip, flagged
from tools.toolbox.context import ToolContext
from tools.toolbox.spec import WindowInput, tool

SPAN_LIMIT = 200_000
LOG_LIMIT = 50_000


def _ms(ns: float | None) -> float | None:
    return None if ns is None or (isinstance(ns, float) and math.isnan(ns)) else round(ns / 1e6, 2)


def _quantiles(values: pa.ChunkedArray) -> tuple[float | None, float | None]:
    clean = pc.drop_null(values)
    if len(clean) == 0:
        return None, None
    q = pc.quantile(clean, q=[0.5, 0.95]).to_pylist()
    return _ms(q[0]), _ms(q[1])


# ----------------------------------------------------------------------------------------------
# query_traces
# ----------------------------------------------------------------------------------------------


class QueryTracesInput(WindowInput):
    operation: str | None = Field(None, description="exact operation name")
    errors_only: bool = False
    min_duration_ms: float | None = None
    trace_id: str | None = Field(None, description="one trace: its slowest spans")


class ServiceStat(BaseModel):
    service: str
    spans: int
    errors: int
    p95_ms: float | None


class TraceRef(BaseModel):
    trace_id: str
    root: str = Field(description="root span: service and operation")
    duration_ms: float | None
    error: bool
    link: str


class SpanRef(BaseModel):
    service: str
    operation: str
    duration_ms: float | None
    status: str
    error_code: str | None = None


class QueryTracesResult(BaseModel):
    query: str
    window: TimeWindow
    spans: int
    traces: int
    error_spans: int
    error_rate: float
    p50_ms: float | None
    p95_ms: float | None
    by_service: list[ServiceStat]
    slowest_traces: list[TraceRef] = Field(default_factory=list)
    trace_spans: list[SpanRef] = Field(default_factory=list)
    truncated: bool = False


def _service_stats(spans: pa.Table, top_k: int) -> list[ServiceStat]:
    if spans.num_rows == 0:
        return []
    is_err = pa.array(error_spans(spans).astype(np.int64))
    t = spans.select(["service", "duration_ns"]).append_column("err", is_err)
    agg = t.group_by("service").aggregate(
        [("err", "count"), ("err", "sum"), ("duration_ns", "tdigest", pc.TDigestOptions(q=0.95))]
    )
    rows = [
        ServiceStat(
            service=r["service"] or "?",
            spans=r["err_count"],
            errors=r["err_sum"] or 0,
            p95_ms=_ms((r["duration_ns_tdigest"] or [None])[0]),
        )
        for r in agg.to_pylist()
    ]
    rows.sort(key=lambda s: (-s.errors / max(s.spans, 1), -(s.p95_ms or 0.0)))
    return rows[:top_k]


def _slowest_traces(ctx: ToolContext, spans: pa.Table, top_k: int) -> list[TraceRef]:
    roots = spans.filter(pa.array(~has_parent_id(spans)))
    if roots.num_rows == 0:
        roots = spans
    order = pc.sort_indices(roots, sort_keys=[("duration_ns", "descending")])
    top = roots.take(order[: top_k * 4]).to_pylist()
    err_traces = set(spans.filter(pa.array(error_spans(spans)))["trace_id"].to_pylist())
    out: list[TraceRef] = []
    seen: set[str] = set()
    for r in top:
        if r["trace_id"] in seen:
            continue
        seen.add(r["trace_id"])
        out.append(
            TraceRef(
                trace_id=r["trace_id"],
                root=clip(f"{r['service']} {r['operation']}", 80),
                duration_ms=_ms(r["duration_ns"]),
                error=r["trace_id"] in err_traces,
                link=ctx.links.trace(r["trace_id"]),
            )
        )
        if len(out) == top_k:
            break
    return out


@tool()
def query_traces(inp: QueryTracesInput, ctx: ToolContext) -> QueryTracesResult:
    """Summarise the spans of a window: error rate, p50/p95 latency, the worst services and the
    slowest traces (ids + links). Cheap (one bounded query). Call it first for request-path
    symptoms; pass trace_id to see the slowest spans of one trace. Default: incident window."""
    window = ctx.window(inp.start, inp.end)
    services = ctx.services(inp.services)
    if inp.trace_id:
        spans = ctx.traces.trace(inp.trace_id)
    else:
        spans = ctx.traces.spans(
            TraceQuery(
                window,
                services=services,
                operation=inp.operation,
                min_duration_ms=inp.min_duration_ms,
                errors_only=inp.errors_only,
                limit=SPAN_LIMIT,
            )
        )
    query = json.dumps(
        {
            k: v
            for k, v in {
                "services": services,
                "operation": inp.operation,
                "errors_only": inp.errors_only or None,
                "min_duration_ms": inp.min_duration_ms,
                "trace_id": inp.trace_id,
            }.items()
            if v
        },
        sort_keys=True,
    )
    n = spans.num_rows
    errors = int(error_spans(spans).sum())
    p50, p95 = _quantiles(spans["duration_ns"]) if n else (None, None)
    result = QueryTracesResult(
        query=f"spans {query} in [{window.start:%H:%M:%S}, {window.end:%H:%M:%S})",
        window=window,
        spans=n,
        traces=len(pc.unique(spans["trace_id"])) if n else 0,
        error_spans=errors,
        error_rate=round(errors / n, 4) if n else 0.0,
        p50_ms=p50,
        p95_ms=p95,
        by_service=_service_stats(spans, inp.top_k),
        truncated=n >= SPAN_LIMIT,
    )
    if inp.trace_id and n:
        order = pc.sort_indices(spans, sort_keys=[("duration_ns", "descending")])
        result.trace_spans = [
            SpanRef(
                service=clip(r["service"] or "?", 80),
                operation=clip(r["operation"], 80),
                duration_ms=_ms(r["duration_ns"]),
                status=clip(r["status"] or "unset", 20),
                error_code=clip(r["error_code"], 40) if r["error_code"] else None,
            )
            for r in spans.take(order[: inp.top_k]).to_pylist()
        ]
    elif n:
        result.slowest_traces = _slowest_traces(ctx, spans, inp.top_k)
    return result


# ----------------------------------------------------------------------------------------------
# search_logs
# ----------------------------------------------------------------------------------------------


class SearchLogsInput(WindowInput):
    query: str | None = Field(None, description="substring of the message")
    min_severity: str | None = Field(None, description="e.g. WARN (and above)")


class LogPattern(BaseModel):
    template: str
    count: int
    services: list[str]
    example: str
    link: str


class SearchLogsResult(BaseModel):
    query: str
    window: TimeWindow
    lines: int
    by_service: dict[str, int]
    by_severity: dict[str, int]
    patterns: list[LogPattern]
    flagged: list[FlaggedText] = Field(
        default_factory=list, description="lines a person should see as suspicious data"
    )
    truncated: bool = False


_VARIABLE = r"[0-9a-fA-F]{6,}|\d+"


def _distinct_lines(logs: pa.Table) -> list[dict]:
    """Lines that differ only in numbers and hex ids, grouped (count, services, one example).

    Logs are repetitive: mining each shape once turns thousands of template-miner calls into a
    few dozen. The grouping key is one vectorised regex over the column; the miner still sees
    (and masks) the full line of each group.
    """
    if logs.num_rows == 0:
        return []
    keys = pc.replace_substring_regex(pc.fill_null(logs["body"], ""), _VARIABLE, "#")
    t = pa.table(
        {
            "key": keys,
            "service": pc.fill_null(logs["service"], "?"),
            "i": pa.array(range(logs.num_rows)),
        }
    )
    agg = t.group_by("key").aggregate([("i", "min"), ("i", "count"), ("service", "distinct")])
    rows = logs.select(["ts_ns", "service", "body"]).take(agg["i_min"]).to_pylist()
    return [
        {"count": n, "services": set(svcs), "row": row}
        for row, n, svcs in zip(
            rows, agg["i_count"].to_pylist(), agg["service_distinct"].to_pylist(), strict=True
        )
    ]


def _at_least(severity: str) -> list[str]:
    """The stored spellings of ``severity`` or worse; an unknown name matches only itself."""
    level = severity_of(severity)
    return [severity.upper()] if level is None else spellings_at_least(level)


def _counts(column: pa.ChunkedArray, top_k: int) -> dict[str, int]:
    vc = pc.value_counts(pc.fill_null(column, "?")).to_pylist()
    vc.sort(key=lambda d: -d["counts"])
    return {d["values"]: d["counts"] for d in vc[:top_k]}


@tool()
def search_logs(inp: SearchLogsInput, ctx: ToolContext) -> SearchLogsResult:
    """Group the log lines of a window into message patterns (Drain templates) with counts, the
    services that emit them and one example each; never returns raw dumps. Costs one bounded
    log query plus template mining. Use after query_traces to explain an erroring service."""
    from tools.telemetry.log_templates import TemplateMiner

    window = ctx.window(inp.start, inp.end)
    services = ctx.services(inp.services)
    logs = ctx.logs.logs(LogQuery(window, services=services, query=inp.query, limit=LOG_LIMIT))
    if inp.min_severity and logs.num_rows:
        keep = pc.is_in(pc.utf8_upper(logs["severity"]), pa.array(_at_least(inp.min_severity)))
        logs = logs.filter(pc.fill_null(keep, False))
    flags: list[FlaggedText] = []
    miner = TemplateMiner()
    groups: dict[int, dict] = {}
    for d in _distinct_lines(logs):
        f = flagged(f"log of {d['row']['service']}", d["row"]["body"])
        if f is not None and len(flags) < 5:
            flags.append(f)
        tid = miner.add(d["row"]["body"] or "").template_id
        g = groups.setdefault(tid, {"count": 0, "services": set(), "row": d["row"]})
        g["count"] += d["count"]
        g["services"] |= d["services"]
    text = {t.template_id: t.template for t in miner.templates()}
    ranked = sorted(groups.items(), key=lambda kv: -kv[1]["count"])[: inp.top_k]
    return SearchLogsResult(
        query="logs "
        + json.dumps({"services": services, "query": inp.query, "min_severity": inp.min_severity}),
        window=window,
        lines=logs.num_rows,
        by_service=_counts(logs["service"], inp.top_k) if logs.num_rows else {},
        by_severity=_counts(logs["severity"], inp.top_k) if logs.num_rows else {},
        patterns=[
            LogPattern(
                template=clip(text[tid], 120),
                count=g["count"],
                services=[clip(x, 80) for x in sorted(g["services"])[:5]],
                example=clip(g["row"]["body"], 160),
                link=ctx.links.logs(g["row"]["service"], g["row"]["ts_ns"], inp.query),
            )
            for tid, g in ranked
        ],
        flagged=flags,
        truncated=logs.num_rows >= LOG_LIMIT,
    )


# ----------------------------------------------------------------------------------------------
# query_promql
# ----------------------------------------------------------------------------------------------


class QueryPromqlInput(WindowInput):
    query: str = Field(description="metric name, or PromQL when Prometheus is configured")
    step_s: float | None = None


class SeriesSummary(BaseModel):
    labels: str
    points: int
    first: float | None
    last: float | None
    min: float | None
    max: float | None
    change_pct: float | None = Field(description="last vs first, percent")


class QueryPromqlResult(BaseModel):
    query: str
    window: TimeWindow
    series: int
    top: list[SeriesSummary] = Field(description="series that moved most")
    link: str


def _r(v: float | None) -> float | None:
    return None if v is None or math.isnan(v) else round(v, 4)


def _series_summary(labels: str, service: str | None, values: list[float]) -> SeriesSummary:
    first, last = values[0], values[-1]
    change = None if first == 0 else round((last - first) / abs(first) * 100, 1)
    try:
        lab = json.loads(labels or "{}")
    except ValueError:
        lab = {}
    if service and "service" not in lab:
        lab["service"] = service
    short = ",".join(f"{k}={v}" for k, v in sorted(lab.items()) if k != "__name__")
    return SeriesSummary(
        labels=clip(short, 100),
        points=len(values),
        first=_r(first),
        last=_r(last),
        min=_r(min(values)),
        max=_r(max(values)),
        change_pct=change,
    )


@tool()
def query_promql(inp: QueryPromqlInput, ctx: ToolContext) -> QueryPromqlResult:
    """Evaluate a metric name (embedded store) or a PromQL expression (Prometheus) over the window;
    returns how many series matched and the top_k that changed most (first/last/min/max, % change).
    Cheap. Use for saturation (CPU, memory, network) of the services traces point at."""
    window = ctx.window(inp.start, inp.end)
    services = ctx.services(inp.services)
    table = ctx.metrics.series(MetricQuery(inp.query, window, step_s=inp.step_s))
    if services and table.num_rows:
        table = table.filter(pc.fill_null(pc.is_in(table["service"], pa.array(services)), False))
    groups: dict[tuple[str, str | None], list[float]] = {}
    if table.num_rows:
        order = pc.sort_indices(table, sort_keys=[("ts_ns", "ascending")])
        cols = table.take(order).select(["labels", "service", "value"]).to_pydict()
        for lab, svc, v in zip(cols["labels"], cols["service"], cols["value"], strict=True):
            if v is not None and not math.isnan(v):
                groups.setdefault((lab, svc), []).append(v)
    summaries = [_series_summary(lab, svc, vals) for (lab, svc), vals in groups.items() if vals]
    summaries.sort(key=lambda s: -abs(s.change_pct or 0.0))
    return QueryPromqlResult(
        query=inp.query,
        window=window,
        series=len(summaries),
        top=summaries[: inp.top_k],
        link=ctx.links.promql(inp.query, window),
    )
