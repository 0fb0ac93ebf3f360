"""The three small source protocols every tool reads telemetry through, and the query each takes.

Why: a tool takes sources, never a backend, so it runs unchanged on a laptop file (the embedded
DuckDB store) or in production (Prometheus, Loki, Jaeger, Tempo). Bulk results are
``pyarrow.Table`` in the schemas of :mod:`tools.telemetry.model`. The methods are synchronous:
backends that are async inside offer a synchronous facade that is safe to call from a thread
while an event loop runs elsewhere (the MCP server calls tools from worker threads).

Why one query model per source (:class:`TraceQuery`, :class:`LogQuery`, :class:`MetricQuery`):
every implementation (the store's SQL, its HTTP API and client, each backend's pushdown) takes
the same validated object, so a filter is declared once, here, and travels unchanged from a tool
to the store server and back; a misspelt filter is an error, not a silently ignored keyword.
Backends that can only search coarsely (a trace matches when one of its spans does) narrow what
they fetched with :meth:`TraceQuery.narrow`, the one in-memory definition of the filters.
"""

from __future__ import annotations

from dataclasses import KW_ONLY
from typing import Protocol, runtime_checkable

import networkx as nx
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import ConfigDict
from pydantic.dataclasses import dataclass

from tools.telemetry.model import TimeWindow
from tools.telemetry.trace_model import error_spans

_STRICT = ConfigDict(extra="forbid")


@dataclass(frozen=True, config=_STRICT)
class TraceQuery:
    """Spans that start inside ``window`` and match every filter given, oldest first."""

    window: TimeWindow
    _: KW_ONLY
    services: list[str] | None = None
    operation: str | None = None  # exact span name
    min_duration_ms: float | None = None
    errors_only: bool = False  # the error definition of :mod:`tools.telemetry.trace_model`
    trace_id: str | None = None  # case-insensitive
    limit: int | None = None

    def narrow(self, spans: pa.Table) -> pa.Table:
        """The spans of ``spans`` (``SPAN_SCHEMA``) this query asks for, in start-time order."""
        start = spans["start_ns"]
        w = self.window
        mask = pc.and_(pc.greater_equal(start, w.start_ns), pc.less(start, w.end_ns))
        if self.services:
            mask = pc.and_(mask, pc.is_in(spans["service"], pa.array(self.services, pa.string())))
        if self.operation is not None:
            mask = pc.and_(mask, pc.equal(spans["operation"], self.operation))
        if self.min_duration_ms is not None:
            mask = pc.and_(mask, pc.greater_equal(spans["duration_ns"], self.min_duration_ms * 1e6))
        if self.errors_only:
            mask = pc.and_(mask, pa.array(error_spans(spans)))
        if self.trace_id is not None:
            mask = pc.and_(mask, pc.equal(spans["trace_id"], self.trace_id.lower().zfill(32)))
        out = spans.filter(pc.fill_null(mask, False))
        out = out.sort_by([("start_ns", "ascending"), ("trace_id", "ascending")])
        return out.slice(0, self.limit) if self.limit is not None else out


@dataclass(frozen=True, config=_STRICT)
class LogQuery:
    """Log records in ``window``; ``query`` is a substring (a regex with ``regex=True``; a LogQL
    expression on Loki) matched against the body."""

    window: TimeWindow
    _: KW_ONLY
    services: list[str] | None = None
    query: str | None = None
    regex: bool = False
    trace_id: str | None = None
    limit: int | None = None


@dataclass(frozen=True, config=_STRICT)
class MetricQuery:
    """Samples of a metric name (exact ``labels`` filter) or, on Prometheus, of a PromQL
    expression evaluated over ``window`` at ``step_s`` (default: the source's own)."""

    name_or_promql: str
    window: TimeWindow
    _: KW_ONLY
    step_s: float | None = None
    labels: dict[str, str] | None = None


@runtime_checkable
class TraceSource(Protocol):
    def spans(self, query: TraceQuery) -> pa.Table:
        """Spans (``SPAN_SCHEMA``) that :class:`TraceQuery` asks for."""
        ...

    def trace(self, trace_id: str) -> pa.Table:
        """All spans of one trace (``SPAN_SCHEMA``); raises ``NotFoundError`` when unknown."""
        ...

    def call_graph(self, window: TimeWindow) -> nx.DiGraph:
        """Service call graph from parent/child spans: an edge caller -> callee with attributes
        ``calls`` (int), ``errors`` (int) and ``p50_ms``/``p95_ms`` (float) of the callee spans."""
        ...


@runtime_checkable
class LogSource(Protocol):
    def logs(self, query: LogQuery) -> pa.Table:
        """Log records (``LOG_SCHEMA``) that :class:`LogQuery` asks for, oldest first."""
        ...


@runtime_checkable
class MetricSource(Protocol):
    def series(self, query: MetricQuery) -> pa.Table:
        """Samples (``METRIC_SCHEMA``) that :class:`MetricQuery` asks for."""
        ...
