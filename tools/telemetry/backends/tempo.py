"""Grafana Tempo HTTP API client: TraceQL/tag search and trace by id -> ``SPAN_SCHEMA``.

Why: Tempo stores traces cheaply and finds them by TraceQL; the RCA tools read an incident
window through :class:`TraceSource`. A trace comes back as OTLP (``batches`` of resource spans;
``resourceSpans`` in the v2 API), which the OTLP JSON parser of file ingest reads
(:mod:`tools.telemetry.ingest.otlp_json`); Tempo's protobuf-JSON mapping may write ids in base64
rather than OTLP/JSON's hex, so the encoding is detected per trace.

API reference: https://grafana.com/docs/tempo/latest/api_docs/
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import networkx as nx
import pyarrow as pa

from tools.core.errors import InputError, NotFoundError
from tools.telemetry.backends._http import synchronous
from tools.telemetry.backends._traces import TraceClient, call_graph_from_spans, dedupe_spans
from tools.telemetry.ingest import otlp_json
from tools.telemetry.ingest.common import Fail
from tools.telemetry.model import SPAN_SCHEMA, TimeWindow
from tools.telemetry.sources import TraceQuery

TimeLike = datetime | int  # datetime or epoch nanoseconds
_HEX_TRACE_ID = re.compile(r"^[0-9a-fA-F]{1,32}$")


def _seconds(t: TimeLike, *, up: bool = False) -> int:
    """Epoch seconds (Tempo's search resolution), rounded up for the end of a range."""
    s = t.timestamp() if isinstance(t, datetime) else int(t) / 1e9
    return math.ceil(s) if up else math.floor(s)


def _string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def build_traceql(query: TraceQuery) -> str:
    """One spanset filter: a trace matches when a single span satisfies every condition."""
    conds = []
    if query.services:
        alternatives = " || ".join(f"resource.service.name = {_string(s)}" for s in query.services)
        conds.append(f"({alternatives})" if len(query.services) > 1 else alternatives)
    if query.operation is not None:
        conds.append(f"name = {_string(query.operation)}")
    if query.min_duration_ms is not None:
        conds.append(f"duration >= {query.min_duration_ms:g}ms")
    if query.errors_only:
        conds.append("status = error")
    return "{ " + " && ".join(conds) + " }" if conds else "{}"


def _resource_spans(doc: Any) -> list[Any]:
    if isinstance(doc, dict) and isinstance(doc.get("trace"), dict):  # /api/v2/traces
        doc = doc["trace"]
    if not isinstance(doc, dict):
        raise InputError("a trace is not a JSON object", path="$")
    for key in ("batches", "resourceSpans"):
        if key in doc:
            return list(doc[key] or [])
    raise InputError("no 'batches' or 'resourceSpans' in the trace", path="$")


def _id_encoding(resource_spans: list[Any]) -> otlp_json.IdEncoding:
    for rs in resource_spans:
        for scope in rs.get("scopeSpans") or rs.get("instrumentationLibrarySpans") or []:
            for span in scope.get("spans") or []:
                tid = span.get("traceId") or ""
                return "hex" if len(tid) == 32 and _HEX_TRACE_ID.match(tid) else "base64"
    return "hex"


def trace_to_table(doc: Any, source: str) -> pa.Table:
    """A Tempo trace document (v1 ``batches`` or v2 ``trace.resourceSpans``) -> ``SPAN_SCHEMA``."""
    resource_spans = _resource_spans(doc)
    acc = otlp_json.OtlpAccumulator()
    otlp_json.add_document(
        {"resourceSpans": resource_spans}, acc, Fail(source), ids=_id_encoding(resource_spans)
    )
    return acc.spans.table()


class TempoClient(TraceClient):
    """Tempo HTTP API; implements :class:`tools.telemetry.sources.TraceSource`.

    ``spans`` runs one TraceQL search over the window (at most ``max_traces`` traces) and fetches
    the matching traces, ``concurrency`` at a time.
    """

    kind = "tempo"

    def __init__(
        self, base_url: str, *, max_traces: int = 200, concurrency: int = 8, **options: Any
    ) -> None:
        super().__init__(base_url, **options)
        self.max_traces = max_traces
        self.concurrency = concurrency

    # -- async API -----------------------------------------------------------------------------

    async def asearch(
        self,
        start: TimeLike,
        end: TimeLike,
        q: str | None = None,
        tags: Mapping[str, str] | None = None,
        min_duration_ms: float | None = None,
        limit: int = 20,
    ) -> list[dict[str, Any]]:
        """Trace summaries (``traceID``, ``rootServiceName``, ``rootTraceName``,
        ``startTimeUnixNano``, ``durationMs`` ...) matching TraceQL ``q`` or logfmt ``tags``."""
        params: dict[str, Any] = {
            "start": _seconds(start),
            "end": _seconds(end, up=True),
            "limit": limit,
        }
        if q is not None:
            params["q"] = q
        if tags:
            params["tags"] = " ".join(f"{k}={_string(v)}" for k, v in tags.items())
        if min_duration_ms is not None:
            params["minDuration"] = f"{min_duration_ms:g}ms"
        body = await self.get_json("/api/search", params)
        traces = body.get("traces") if isinstance(body, dict) else None
        if traces is None and isinstance(body, dict) and "metrics" in body:
            traces = []  # Tempo omits "traces" when nothing matched
        if not isinstance(traces, list) or not all(
            isinstance(t, dict) and "traceID" in t for t in traces
        ):
            raise self.malformed(
                "no 'traces' list of objects with 'traceID'", "/api/search", params
            )
        return traces

    async def atags(self) -> list[str]:
        body = await self.get_json("/api/search/tags")
        if not isinstance(body, dict) or not isinstance(body.get("tagNames"), list):
            raise self.malformed("no 'tagNames' list", "/api/search/tags")
        return [str(t) for t in body["tagNames"]]

    async def atag_values(self, tag: str) -> list[str]:
        path = f"/api/search/tag/{tag}/values"
        body = await self.get_json(path)
        if not isinstance(body, dict) or not isinstance(body.get("tagValues"), list):
            raise self.malformed("no 'tagValues' list", path)
        return [str(v) for v in body["tagValues"]]

    def to_table(self, body: Any, source: str) -> pa.Table:
        return trace_to_table(body, source)

    async def aspans(self, query: TraceQuery) -> pa.Table:
        """``TraceSource.spans``: TraceQL search, fetch each trace, narrow to matching spans."""
        if query.trace_id is not None:
            ids = [query.trace_id]
        else:
            w = query.window
            found = await self.asearch(
                w.start, w.end, q=build_traceql(query), limit=self.max_traces
            )
            ids = [str(t["traceID"]) for t in found]
        gate = asyncio.Semaphore(self.concurrency)

        async def one(tid: str) -> pa.Table:
            async with gate:
                try:
                    return await self.atrace(tid)
                except NotFoundError:  # expired between search and fetch
                    return SPAN_SCHEMA.empty_table()

        tables = list(await asyncio.gather(*(one(t) for t in ids)))
        return query.narrow(dedupe_spans(tables, SPAN_SCHEMA))

    async def acall_graph(self, window: TimeWindow) -> nx.DiGraph:
        return call_graph_from_spans(await self.aspans(TraceQuery(window)), window)

    # -- sync facade ---------------------------------------------------------------------------

    search = synchronous(asearch)
    tags = synchronous(atags)
    tag_values = synchronous(atag_values)
