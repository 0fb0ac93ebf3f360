"""Spans -> trace trees, vectorised, with every kind of broken input counted, never fatal.

The trees themselves (parent index, depth, child count, effective duration, self time, the
error definition) are the project's one trace model, :class:`tools.telemetry.trace_model.
SpanForest`; this module cleans the input for call-chain analytics first (duplicate rows and
spans without ids dropped, traces grouped and sorted by start) and adds what only the analytics
need: ``service::operation`` modules, the longest idle stretch, clock skew and the counters.
Real exporters send spans whose parent was never exported (orphans), the same
span twice, children that start before their parent (clock skew), spans that never ended (hangs),
ids that form cycles and megabyte attribute blobs; each is repaired where it can be (dropped,
re-rooted, clamped) and counted in :class:`InputCounters`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel

from tools.telemetry.model import SPAN_SCHEMA
from tools.telemetry.trace_model import SpanForest, sibling_sweep
from tools.traces.config import TraceConfig


class InputCounters(BaseModel):
    """What was wrong with the input and how often; summed over batches."""

    spans_in: int = 0
    spans_used: int = 0
    traces: int = 0
    missing_ids: int = 0  # span without trace id / span id / start time (an empty trace)
    duplicate_spans: int = 0
    orphan_spans: int = 0  # parent id given but never seen: a broken chain
    broken_traces: int = 0
    cycles: int = 0
    clock_skew: int = 0  # child starts before its parent
    negative_durations: int = 0
    unfinished_spans: int = 0
    huge_attributes: int = 0
    multi_root_traces: int = 0

    def add(self, other: InputCounters) -> None:
        for name in type(self).model_fields:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def problems(self) -> dict[str, int]:
        skip = {"spans_in", "spans_used", "traces"}
        return {k: v for k, v in self.model_dump().items() if k not in skip and v}


@dataclass
class TraceForest:
    """Spans of whole traces sorted by (trace, start); all arrays have one entry per span."""

    table: pa.Table  # the cleaned, sorted spans (SPAN_SCHEMA)
    trace_ids: list[str]  # one per trace, in trace-code order
    trace_of: np.ndarray  # int64 trace code per span
    offsets: np.ndarray  # spans of trace t are offsets[t]:offsets[t+1]
    parent: np.ndarray  # int64 span index of the parent, -1 for a root
    orphan: np.ndarray  # bool: had a parent id that is not in the input
    depth: np.ndarray  # int64, 0 for a root
    child_count: np.ndarray  # int64
    module: np.ndarray  # int64 code into module_names
    module_names: list[str]  # "service::operation"
    start_ns: np.ndarray  # int64
    duration_ns: np.ndarray  # float64, effective (unfinished spans run to the trace's end)
    self_ns: np.ndarray  # float64, duration minus the union of the children's intervals
    client: np.ndarray  # bool: a client span (the trace model's definition: its time is wire)
    idle_ns: np.ndarray  # float64, longest stretch with no child running (a leaf: its duration)
    unfinished: np.ndarray  # bool
    is_error: np.ndarray  # bool
    error_code: np.ndarray  # int64 stable hash bucket of error_code (0 when none)

    @property
    def n_spans(self) -> int:
        return len(self.parent)

    @property
    def n_traces(self) -> int:
        return len(self.trace_ids)


def conform(table: pa.Table) -> pa.Table:
    """The SPAN_SCHEMA columns, in order, cast; absent columns become nulls."""
    cols = []
    for field in SPAN_SCHEMA:
        if field.name in table.column_names:
            col = table[field.name]
            cols.append(col if col.type == field.type else pc.cast(col, field.type))
        else:
            cols.append(pa.nulls(table.num_rows, field.type))
    return pa.Table.from_arrays(cols, schema=SPAN_SCHEMA)


def _nonempty(col: pa.ChunkedArray) -> pa.ChunkedArray:
    return pc.fill_null(pc.greater(pc.utf8_length(col), 0), False)


def stable_hash(values: pa.ChunkedArray | pa.Array, buckets: int) -> np.ndarray:
    """A process-independent hash bucket per string (1..buckets-1; 0 for null/empty)."""
    enc = pc.dictionary_encode(pc.fill_null(values, "")).combine_chunks()
    dictionary = enc.dictionary.to_pylist()
    lut = np.array([_fnv(s) % (buckets - 1) + 1 if s else 0 for s in dictionary] or [0])
    return lut[np.asarray(enc.indices.fill_null(0))].astype(np.int64)


@lru_cache(maxsize=65_536)
def _fnv(s: str) -> int:
    h = 0xCBF29CE484222325
    for b in s.encode("utf-8", "replace"):
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def _clean(table: pa.Table, config: TraceConfig, c: InputCounters) -> pa.Table:
    ok = pc.and_(
        pc.and_(_nonempty(table["trace_id"]), _nonempty(table["span_id"])),
        pc.is_valid(table["start_ns"]),
    )
    table = table.filter(ok)
    c.missing_ids += c.spans_in - table.num_rows
    if table.num_rows == 0:
        return table
    attrs = table["attributes"]
    huge = pc.fill_null(pc.greater(pc.binary_length(attrs), config.max_attribute_bytes), False)
    n_huge = pc.sum(huge).as_py() or 0
    if n_huge:
        c.huge_attributes += n_huge
        idx = table.column_names.index("attributes")
        table = table.set_column(
            idx, "attributes", pc.if_else(huge, pa.scalar(None, pa.string()), attrs)
        )
    # integer keys (trace code, span-id code) instead of joined id strings: two hash passes
    tcodes = _codes(table["trace_id"])
    scodes = _codes(table["span_id"])
    key = tcodes * (int(scodes.max(initial=0)) + 1) + scodes
    _, first = np.unique(key, return_index=True)
    if len(first) < table.num_rows:
        c.duplicate_spans += table.num_rows - len(first)
        first = np.sort(first)
        table = table.take(first)
        tcodes = tcodes[first]
    # group by trace (codes in order of first appearance), then by start
    start = np.asarray(table["start_ns"].combine_chunks(), dtype=np.int64)
    return table.take(np.lexsort((start, tcodes)))


def _codes(col: pa.ChunkedArray) -> np.ndarray:
    return np.asarray(pc.dictionary_encode(col).combine_chunks().indices, dtype=np.int64)


def _modules(table: pa.Table) -> tuple[np.ndarray, list[str]]:
    """Module code per span and the ``service::operation`` names, from integer pairs."""
    svc = pc.dictionary_encode(pc.fill_null(table["service"], "unknown")).combine_chunks()
    op = pc.dictionary_encode(pc.fill_null(table["operation"], "unknown")).combine_chunks()
    n_ops = len(op.dictionary)
    pair = np.asarray(svc.indices, dtype=np.int64) * n_ops + np.asarray(op.indices, dtype=np.int64)
    uniq, module = np.unique(pair, return_inverse=True)
    svcs, ops = svc.dictionary.to_pylist(), op.dictionary.to_pylist()
    names = [f"{svcs[u // n_ops]}::{ops[u % n_ops]}" for u in uniq.tolist()]
    return module.astype(np.int64), names


def _longest_idle(parent: np.ndarray, start: np.ndarray, duration: np.ndarray) -> np.ndarray:
    """Per span, the longest single stretch in which none of its children ran.

    Why not self time: a parent that backs off between eight retries has a large *total* self
    time made of short waits; a hang is one long wait. Leaves: their duration.
    """
    n = len(parent)
    if not (parent >= 0).any():
        return duration.copy()
    end = start + duration.astype(np.int64)
    kids, first, prev_end, cum_end = sibling_sweep(parent, start, end)
    p = parent[kids]
    prev_end[first] = start[p[first]]  # a first child's wait starts with its parent
    last = np.ones(len(kids), dtype=bool)
    last[:-1] = p[1:] != p[:-1]
    best = np.zeros(n)
    np.maximum.at(best, p, np.maximum(start[kids] - prev_end, 0).astype(np.float64))
    tail = np.maximum(end[p[last]] - cum_end[last], 0).astype(np.float64)
    np.maximum.at(best, p[last], tail)
    has_kids = np.zeros(n, dtype=bool)
    has_kids[p] = True
    return np.where(has_kids, best, duration)


def reconstruct(
    spans: pa.Table, config: TraceConfig | None = None
) -> tuple[TraceForest, InputCounters]:
    """Build the forest of all traces in ``spans`` and count what was broken."""
    config = config or TraceConfig()
    c = InputCounters(spans_in=spans.num_rows)
    table = _clean(conform(spans), config, c)
    n = table.num_rows
    links = SpanForest.build(table)
    trace_of, parent, orphan = links.trace_of, links.parent, links.orphan
    offsets = np.searchsorted(trace_of, np.arange(links.n_traces + 1))
    c.orphan_spans += int((orphan & ~links.cyclic).sum())
    c.cycles += int(links.cyclic.sum())
    c.unfinished_spans += int(links.unfinished.sum())
    c.negative_durations += int(links.negative.sum())
    start, duration = links.start_ns, links.duration_ns
    idle_ns = _longest_idle(parent, start, duration)
    has_parent = parent >= 0
    tol = int(config.skew_tolerance_ms * 1e6)
    skew = has_parent & (start < start[np.where(has_parent, parent, 0)] - tol)
    c.clock_skew += int(skew.sum())
    roots_per_trace = np.bincount(trace_of[links.roots], minlength=links.n_traces)
    c.multi_root_traces += int((roots_per_trace > 1).sum())
    c.broken_traces += int(np.unique(trace_of[orphan]).size)

    module, module_names = _modules(table)
    c.spans_used += n
    c.traces += links.n_traces
    forest = TraceForest(
        table=table,
        trace_ids=links.trace_ids,
        trace_of=trace_of,
        offsets=offsets,
        parent=parent,
        orphan=orphan,
        depth=links.depth,
        child_count=links.child_count,
        module=module,
        module_names=module_names,
        start_ns=start,
        duration_ns=duration,
        self_ns=links.self_ns,
        client=links.client,
        idle_ns=idle_ns,
        unfinished=links.unfinished,
        is_error=links.is_error,
        error_code=stable_hash(table["error_code"], 64) if n else np.zeros(0, np.int64),
    )
    return forest, c
