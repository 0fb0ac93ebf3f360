"""Jaeger query service client (HTTP JSON API of ``jaeger-query``) -> ``SPAN_SCHEMA``.

Why: many teams keep traces in Jaeger; the RCA tools read an incident window's spans and the
service dependency graph from it through :class:`TraceSource`. The trace JSON is parsed by the
same code that ingests exported Jaeger files (:mod:`tools.telemetry.ingest.jaeger_json`), so a
trace reads the same whether it came from a file or from the API.

API reference (the ``/api/*`` endpoints the Jaeger UI uses):
https://www.jaegertracing.io/docs/1.62/apis/#http-json-internal
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import networkx as nx
import pyarrow as pa

from tools.core.errors import BackendError, NotFoundError
from tools.telemetry.backends._http import synchronous
from tools.telemetry.backends._traces import TraceClient, call_graph_from_spans, dedupe_spans
from tools.telemetry.ingest import jaeger_json
from tools.telemetry.ingest.common import Counter, Fail, span_rows
from tools.telemetry.model import SPAN_SCHEMA, TimeWindow
from tools.telemetry.sources import TraceQuery

TimeLike = datetime | int  # datetime or epoch nanoseconds


def _us(t: TimeLike) -> int:
    return int(t.timestamp() * 1_000_000) if isinstance(t, datetime) else int(t) // 1000


def traces_to_table(doc: Any, source: str) -> pa.Table:
    """A ``{"data": [trace, ...]}`` document -> ``SPAN_SCHEMA`` (ids padded to 32/16 hex)."""
    rows = span_rows()
    jaeger_json.add_document(doc, rows, set(), Counter(), Fail(source))
    return rows.table()


class JaegerClient(TraceClient):
    """Jaeger query HTTP API; implements :class:`tools.telemetry.sources.TraceSource`.

    Jaeger searches traces per service, so ``spans`` without ``services`` searches every
    service Jaeger knows, at most ``traces_per_service`` traces each, ``concurrency`` at a time.
    """

    kind = "jaeger"

    def __init__(
        self,
        base_url: str,
        *,
        traces_per_service: int = 200,
        concurrency: int = 8,
        **options: Any,
    ) -> None:
        super().__init__(base_url, **options)
        self.traces_per_service = traces_per_service
        self.concurrency = concurrency

    async def _data(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        body = await self.get_json(path, params)
        if not isinstance(body, dict) or "data" not in body:
            raise self.malformed("no {'data': ...} envelope", path, params)
        if body.get("errors") and not body["data"]:
            detail = "; ".join(str(e.get("msg", e)) for e in body["errors"])
            raise BackendError(
                f"jaeger answered with errors: {detail}", url=self._url(path, params)
            )
        return body["data"]

    def to_table(self, body: Any, source: str) -> pa.Table:
        return traces_to_table(body, source)

    # -- async API -----------------------------------------------------------------------------

    async def aservices(self) -> list[str]:
        return sorted(str(s) for s in await self._data("/api/services") or [])

    async def aoperations(self, service: str) -> list[str]:
        data = await self._data(f"/api/services/{service}/operations")
        return sorted(str(s) for s in data or [])

    async def asearch(
        self,
        service: str,
        start: TimeLike,
        end: TimeLike,
        operation: str | None = None,
        tags: Mapping[str, str] | None = None,
        min_duration_ms: float | None = None,
        limit: int = 20,
    ) -> pa.Table:
        """Spans of up to ``limit`` traces that have a span of ``service`` in [start, end]."""
        params: dict[str, Any] = {
            "service": service,
            "start": _us(start),
            "end": _us(end),
            "limit": limit,
        }
        if operation:
            params["operation"] = operation
        if tags:
            params["tags"] = json.dumps(dict(tags))
        if min_duration_ms is not None:
            params["minDuration"] = f"{min_duration_ms:g}ms"
        return await self._spans("/api/traces", params)

    async def adependencies(self, window: TimeWindow) -> list[dict[str, Any]]:
        """``[{"parent", "child", "callCount"}]`` for the window (Jaeger aggregates these)."""
        params = {
            "endTs": window.end_ns // 1_000_000,
            "lookback": (window.end_ns - window.start_ns) // 1_000_000,
        }
        data = await self._data("/api/dependencies", params)
        if not isinstance(data, list):
            raise self.malformed("dependencies data is not a list", "/api/dependencies", params)
        return [dict(d) for d in data]

    async def aspans(self, query: TraceQuery) -> pa.Table:
        """``TraceSource.spans``: searches each service, then narrows to matching spans."""
        if query.trace_id is not None:
            try:
                found = await self.atrace(query.trace_id)
            except NotFoundError:
                found = SPAN_SCHEMA.empty_table()
        else:
            gate = asyncio.Semaphore(self.concurrency)
            tags = {"error": "true"} if query.errors_only else None
            w = query.window

            async def one(service: str) -> pa.Table:
                async with gate:
                    return await self.asearch(
                        service,
                        w.start,
                        w.end,
                        query.operation,
                        tags,
                        query.min_duration_ms,
                        self.traces_per_service,
                    )

            names = query.services or await self.aservices()
            found = dedupe_spans(list(await asyncio.gather(*(one(s) for s in names))), SPAN_SCHEMA)
        return query.narrow(found)

    async def acall_graph(self, window: TimeWindow) -> nx.DiGraph:
        """Caller -> callee graph from the window's spans (calls, errors, p50/p95); edges that
        only ``/api/dependencies`` knows (spans beyond the search limits) are added with their
        ``calls``."""
        spans, deps = await asyncio.gather(
            self.aspans(TraceQuery(window)), self.adependencies(window)
        )
        graph = call_graph_from_spans(spans, window)
        for dep in deps:
            parent, child = str(dep.get("parent")), str(dep.get("child"))
            if parent != child and not graph.has_edge(parent, child):
                graph.add_edge(
                    parent,
                    child,
                    calls=int(dep.get("callCount", 0)),
                    errors=0,
                    p50_ms=None,
                    p95_ms=None,
                )
        return graph

    # -- sync facade ---------------------------------------------------------------------------

    services = synchronous(aservices)
    operations = synchronous(aoperations)
    search = synchronous(asearch)
    dependencies = synchronous(adependencies)
