"""The three small source protocols every tool reads telemetry through.

Why: a tool takes sources, never a backend, so it runs unchanged on a laptop file (the embedded
DuckDB store) or in production (Prometheus, Loki, Jaeger, Tempo). Bulk results are
``pyarrow.Table`` in the schemas of :mod:`tools.telemetry.model`. The methods are synchronous:
backends that are async inside offer a synchronous facade that is safe to call from a thread
while an event loop runs elsewhere (the MCP server calls tools from worker threads).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import networkx as nx
import pyarrow as pa

from tools.telemetry.model import TimeWindow


@runtime_checkable
class TraceSource(Protocol):
    def spans(
        self,
        window: TimeWindow,
        services: list[str] | None = None,
        operation: str | None = None,
        min_duration_ms: float | None = None,
        errors_only: bool = False,
        trace_id: str | None = None,
        limit: int | None = None,
    ) -> pa.Table:
        """Spans (``SPAN_SCHEMA``) that start inside ``window`` and match every filter given."""
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
    def logs(
        self,
        window: TimeWindow,
        services: list[str] | None = None,
        query: str | None = None,
        regex: bool = False,
        trace_id: str | None = None,
        limit: int | None = None,
    ) -> pa.Table:
        """Log records (``LOG_SCHEMA``) in ``window``; ``query`` is a substring (or a regex with
        ``regex=True``; a LogQL expression on Loki) matched against the body."""
        ...


@runtime_checkable
class MetricSource(Protocol):
    def series(
        self,
        name_or_promql: str,
        window: TimeWindow,
        step_s: float | None = None,
        labels: dict[str, str] | None = None,
    ) -> pa.Table:
        """Samples (``METRIC_SCHEMA``) of a metric name (exact labels filter) or, on Prometheus, of
        a PromQL expression evaluated over ``window`` at ``step_s``."""
        ...
