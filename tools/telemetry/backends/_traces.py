"""What the two trace backends share: the ``TraceSource`` filters and the service call graph.

Why: Jaeger and Tempo search by *trace* (a trace matches if one of its spans does), while
``TraceSource.spans`` promises *spans* that start in the window and match every filter. Both
clients therefore fetch whole traces and narrow them here, and both build the call graph by
loading the window's spans into an in-memory embedded store, whose SQL is the one definition of
caller -> callee statistics (calls, errors, p50/p95) in the project.
"""

from __future__ import annotations

import networkx as nx
import pyarrow as pa
import pyarrow.compute as pc

from tools.telemetry.model import TimeWindow


def filter_spans(
    spans: pa.Table,
    window: TimeWindow,
    services: list[str] | None = None,
    operation: str | None = None,
    min_duration_ms: float | None = None,
    errors_only: bool = False,
    trace_id: str | None = None,
    limit: int | None = None,
) -> pa.Table:
    """Spans starting in [start, end) that match every filter, ordered by start time."""
    start = spans["start_ns"]
    mask = pc.and_(pc.greater_equal(start, window.start_ns), pc.less(start, window.end_ns))
    if services:
        mask = pc.and_(mask, pc.is_in(spans["service"], pa.array(services, pa.string())))
    if operation is not None:
        mask = pc.and_(mask, pc.equal(spans["operation"], operation))
    if min_duration_ms is not None:
        mask = pc.and_(mask, pc.greater_equal(spans["duration_ns"], min_duration_ms * 1e6))
    if errors_only:
        mask = pc.and_(mask, pc.equal(spans["status"], "error"))
    if trace_id is not None:
        mask = pc.and_(mask, pc.equal(spans["trace_id"], trace_id.lower().zfill(32)))
    out = spans.filter(pc.fill_null(mask, False))
    out = out.sort_by([("start_ns", "ascending"), ("trace_id", "ascending")])
    return out.slice(0, limit) if limit is not None else out


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
