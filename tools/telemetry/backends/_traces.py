"""What the two trace backends share: fetching one trace, merging fetched traces, the service
call graph and the synchronous facade.

Why: Jaeger and Tempo search by *trace* (a trace matches if one of its spans does), while
``TraceSource.spans`` promises *spans* that start in the window and match every filter. Both
clients therefore fetch whole traces and narrow them with ``TraceQuery.narrow``, and both build
the call graph by loading the window's spans into an in-memory embedded store, whose SQL is the
one definition of caller -> callee statistics (calls, errors, p50/p95) in the project.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any

import networkx as nx
import pyarrow as pa

from tools.core.errors import BackendError, InputError, NotFoundError
from tools.telemetry.backends._http import BackendClient, synchronous
from tools.telemetry.model import TimeWindow
from tools.telemetry.sources import TraceQuery


def dedupe_spans(tables: list[pa.Table], schema: pa.Schema) -> pa.Table:
    """Concatenate span tables, keeping the first row of each (trace_id, span_id)."""
    if not tables:
        return schema.empty_table()
    table = pa.concat_tables(tables)
    seen: set[tuple[str, str]] = set()
    keep = []
    for key in zip(table["trace_id"].to_pylist(), table["span_id"].to_pylist(), strict=True):
        keep.append(key not in seen)
        seen.add(key)
    return table.filter(pa.array(keep, pa.bool_()))


def call_graph_from_spans(spans: pa.Table, window: TimeWindow) -> nx.DiGraph:
    """The ``TraceSource.call_graph`` of ``spans`` (computed by an in-memory embedded store)."""
    from tools.telemetry.store import TelemetryStore

    with TelemetryStore(None) as store:
        if spans.num_rows:
            store.insert("spans", spans, "backend")
        return store.call_graph(window)


class TraceClient(BackendClient, ABC):
    """Base of the Jaeger and Tempo clients: the trace-by-id fetch and the sync facade of
    :class:`tools.telemetry.sources.TraceSource`; a subclass supplies ``to_table`` (its trace
    JSON -> ``SPAN_SCHEMA``), ``aspans`` and ``acall_graph``."""

    @abstractmethod
    def to_table(self, body: Any, source: str) -> pa.Table:
        """The backend's trace document ``body`` (read from ``source``) -> ``SPAN_SCHEMA``."""

    async def _spans(self, path: str, params: Mapping[str, Any] | None = None) -> pa.Table:
        body = await self.get_json(path, params)
        try:
            return self.to_table(body, self._url(path, params))
        except InputError as exc:
            raise self.malformed(exc.message, path, params) from None

    async def atrace(self, trace_id: str) -> pa.Table:
        """All spans of one trace; ``NotFoundError`` when the backend does not know it."""
        path = f"/api/traces/{trace_id}"
        try:
            table = await self._spans(path)
        except BackendError as exc:
            if exc.status == 404:
                raise NotFoundError(f"no trace {trace_id}", source=exc.url) from None
            raise
        if table.num_rows == 0:
            raise NotFoundError(f"no trace {trace_id}", source=self._url(path, None))
        return table

    @abstractmethod
    async def aspans(self, query: TraceQuery) -> pa.Table:
        """``TraceSource.spans``, asynchronously: search, fetch, then ``query.narrow``."""

    @abstractmethod
    async def acall_graph(self, window: TimeWindow) -> nx.DiGraph:
        """``TraceSource.call_graph``, asynchronously."""

    # -- sync facade ---------------------------------------------------------------------------

    spans = synchronous(aspans)
    trace = synchronous(atrace)
    call_graph = synchronous(acall_graph)
