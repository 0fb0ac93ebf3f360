"""Spans -> trace trees, vectorised, with every kind of broken input counted, never fatal.

Why columnar: a per-span Python object cannot reach 100k spans/s, so the forest is a handful of
numpy arrays over the spans sorted by (trace, start): parent index, depth (pointer jumping),
child count, effective duration and self time. Real exporters send spans whose parent was never
exported (orphans), the same span twice, children that start before their parent (clock skew),
spans that never ended (hangs), ids that form cycles and megabyte attribute blobs; each is
repaired where it can be (dropped, re-rooted, clamped) and counted in :class:`InputCounters`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel

from tools.telemetry.model import SPAN_SCHEMA
from tools.traces.config import TraceConfig

_ROOT_MARKERS = ["", "root", "0", "0000000000000000", "00000000000000000000000000000000"]


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
    self_ns: np.ndarray  # float64, duration minus children's, clamped at 0
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


def _parents(table: pa.Table, trace_of: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(parent span index or -1, has a parent id) for every span of the sorted table."""
    n = table.num_rows
    sid = pc.dictionary_encode(table["span_id"]).combine_chunks()
    n_ids = len(sid.dictionary) + 1
    skey = trace_of * n_ids + np.asarray(sid.indices, dtype=np.int64)
    pid = table["parent_id"]
    has_pid = pc.and_(
        pc.is_valid(pid), pc.invert(pc.is_in(pc.fill_null(pid, ""), pa.array(_ROOT_MARKERS)))
    )
    has_pid = np.asarray(pc.fill_null(has_pid, False).combine_chunks(), dtype=bool)
    pcode = pc.fill_null(pc.index_in(pid, value_set=sid.dictionary), -1).combine_chunks()
    pcode = np.asarray(pcode, dtype=np.int64)
    pkey = trace_of * n_ids + pcode
    order = np.argsort(skey, kind="stable")
    sorted_keys = skey[order]
    pos = np.minimum(np.searchsorted(sorted_keys, pkey), max(n - 1, 0))
    hit = has_pid & (pcode >= 0) & (sorted_keys[pos] == pkey)
    return np.where(hit, order[pos], -1).astype(np.int64), has_pid


def _depths(parent: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pointer jumping: every span's depth in O(log depth) vector steps -> (depth, cyclic)."""
    d = (parent >= 0).astype(np.int64)
    p = parent.copy()
    for _ in range(64):
        m = p >= 0
        if not m.any():
            break
        pm = p[m]
        d_new = d.copy()
        d_new[m] = d[m] + d[pm]
        p_new = p.copy()
        p_new[m] = p[pm]
        d, p = d_new, p_new
    return d, p >= 0


def _longest_idle(parent: np.ndarray, start: np.ndarray, duration: np.ndarray) -> np.ndarray:
    """Per span, the longest single stretch in which none of its children ran.

    Why not self time: a parent that backs off between eight retries has a large *total* self
    time made of short waits; a hang is one long wait. Leaves: their duration.
    """
    n = len(parent)
    kids = np.nonzero(parent >= 0)[0]
    if not len(kids):
        return duration.copy()
    kids = kids[np.lexsort((start[kids], parent[kids]))]
    p = parent[kids]
    p_start = start[p].astype(np.float64)
    k_start = start[kids] - p_start  # times relative to the parent's start keep float precision
    k_end = k_start + duration[kids]
    first = np.ones(len(kids), dtype=bool)
    first[1:] = p[1:] != p[:-1]
    last = np.ones(len(kids), dtype=bool)
    last[:-1] = p[1:] != p[:-1]
    # running max of sibling ends, restarted per parent: shift each parent's segment upwards
    seg = (np.cumsum(first) - 1).astype(np.float64)
    lift = seg * (float(np.abs(k_end).max(initial=0.0)) * 2 + 1.0)
    cum_end = np.maximum.accumulate(k_end + lift) - lift
    prev_end = np.empty(len(kids))
    prev_end[1:] = cum_end[:-1]
    prev_end[first] = 0.0
    best = np.zeros(n)
    np.maximum.at(best, p, np.maximum(k_start - prev_end, 0.0))
    tail = np.maximum(duration[p[last]] - cum_end[last], 0.0)
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
    tid_enc = pc.dictionary_encode(table["trace_id"]).combine_chunks()
    trace_of = np.asarray(tid_enc.indices).astype(np.int64)
    trace_ids = tid_enc.dictionary.to_pylist()
    offsets = np.searchsorted(trace_of, np.arange(len(trace_ids) + 1))

    parent, has_pid = _parents(table, trace_of) if n else (np.zeros(0, np.int64), np.zeros(0, bool))
    parent[~has_pid] = -1
    idx = np.arange(n)
    self_loop = parent == idx
    orphan = has_pid & ((parent < 0) | self_loop)
    parent[self_loop] = -1
    c.orphan_spans += int(orphan.sum())

    depth, cyclic = _depths(parent)
    if cyclic.any():
        c.cycles += int(cyclic.sum())
        parent[cyclic] = -1
        orphan |= cyclic
        depth, _ = _depths(parent)
    child_count = np.bincount(parent[parent >= 0], minlength=n).astype(np.int64)

    start = (
        np.asarray(table["start_ns"].combine_chunks(), dtype=np.int64)
        if n
        else np.zeros(0, np.int64)
    )
    end_col = pc.fill_null(table["end_ns"], 0).combine_chunks() if n else pa.array([], pa.int64())
    end = np.asarray(end_col, dtype=np.int64)
    unfinished = end <= 0
    negative = (~unfinished) & (end < start)
    c.unfinished_spans += int(unfinished.sum())
    c.negative_durations += int(negative.sum())
    latest = np.where(unfinished, start, np.maximum(end, start))
    trace_end = np.maximum.reduceat(latest, offsets[:-1]) if n else np.zeros(0, np.int64)
    eff_end = np.where(unfinished, trace_end[trace_of] if n else end, np.maximum(end, start))
    duration = (eff_end - start).astype(np.float64)
    child_sum = np.bincount(parent[parent >= 0], weights=duration[parent >= 0], minlength=n)
    self_ns = np.maximum(duration - child_sum, 0.0)

    idle_ns = _longest_idle(parent, start, duration)
    has_parent = parent >= 0
    tol = int(config.skew_tolerance_ms * 1e6)
    skew = has_parent & (start < start[np.where(has_parent, parent, 0)] - tol)
    c.clock_skew += int(skew.sum())

    roots = (parent < 0) & ~orphan
    roots_per_trace = np.bincount(trace_of[roots], minlength=len(trace_ids))
    c.multi_root_traces += int((roots_per_trace > 1).sum())
    c.broken_traces += int(np.unique(trace_of[orphan]).size)

    module, module_names = _modules(table)
    status = pc.fill_null(pc.utf8_lower(table["status"]), "")
    c.spans_used += n
    c.traces += len(trace_ids)
    forest = TraceForest(
        table=table,
        trace_ids=trace_ids,
        trace_of=trace_of,
        offsets=offsets,
        parent=parent,
        orphan=orphan,
        depth=depth,
        child_count=child_count,
        module=module,
        module_names=module_names,
        start_ns=start,
        duration_ns=duration,
        self_ns=self_ns,
        idle_ns=idle_ns,
        unfinished=unfinished,
        is_error=np.asarray(pc.equal(status, "error").combine_chunks(), dtype=bool)
        if n
        else np.zeros(0, bool),
        error_code=stable_hash(table["error_code"], 64) if n else np.zeros(0, np.int64),
    )
    return forest, c
