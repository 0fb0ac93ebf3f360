"""The one trace model: a span table (``SPAN_SCHEMA``) -> trees, call graph, self and wire time,
and the one definition of an error span.

Why one model: trace analytics, the learned alignment (T1's trace channels and the call graph
T2 walks), repair verification and the agent's ``query_traces`` tool all ask the same questions
of the same spans -- who is whose parent, how long did a span work itself, how long was spent on
the wire, did it fail. Answered in four places they silently disagreed (one counted an HTTP 500
as a failure, the others did not); answered here they cannot.

Why columnar: a per-span Python object cannot reach 100k spans/s, so a :class:`SpanForest` is a
handful of numpy arrays with one entry per row of the table, in the table's own row order.

Definitions (the rest of the project relies on them):

- **identity**: a span is its ``(trace_id, span_id)``. A span exported twice (two rows) is one
  span: its parent is looked up by id, and both rows see the same children. Cleaning duplicate
  rows away is the caller's choice (:func:`first_rows`); trace analytics does, alignment counts
  every exported row as today.
- **parent**: the first row of ``(trace_id, parent_id)``. A parent id that is absent from the
  table (never exported), points at the span itself or closes a cycle makes the span an
  *orphan*: a root of its own tree, flagged. Empty and all-zero parent ids mean "no parent".
- **duration**: ``end - start`` (``start + duration_ns`` when only a duration is known). A span
  that never ended runs to the last moment its trace was seen; an end before the start is 0.
- **self time**: a span's duration minus the time in which at least one of its children ran
  (the union of the children's intervals, clipped to the span): children running in parallel
  are counted once, so a supervisor that waits 2 s on three parallel 1 s workers has 1 s of its
  own, not none. A child running outside its parent (clock skew) only counts inside it.
- **wire time**: a *client span* is nested in its own service (its parent is in the same
  service) and has exactly one child, in another service: the time between the two is spent on
  the network and in queues, so it is charged to the callee's edge as wire time
  (client duration - callee duration, at least 0), and the client span has no self time.
- **error**: see :func:`error_spans` -- ``status`` ERROR, or, unless the status says OK, an
  error code that means failure (HTTP >= 500, HTTP 4xx on a client span, a non-zero gRPC code,
  any other non-empty code that is not an OK word). The same rule as SQL: :data:`ERROR_SQL`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tools.telemetry.model import service_from_pod

NO_PARENT = ("", "root", "0", "0000000000000000", "00000000000000000000000000000000")
OK_CODE_WORDS = frozenset(
    {"", "ok", "unset", "none", "null", "success", "status_code_ok", "status_code_unset"}
)

_NUMBER = r"[+-]?[0-9]{1,18}"  # a status number; anything else is a word
# The same rule as :func:`error_spans`, for SQL stores (DuckDB): status ERROR, or a failing code
# on a span whose status is not OK.
ERROR_SQL = f"""(
    lower(coalesce(status, '')) = 'error'
    OR (
        lower(coalesce(status, '')) <> 'ok'
        AND CASE
            WHEN regexp_full_match(trim(coalesce(error_code, '')), '{_NUMBER}') THEN
                CASE
                    WHEN CAST(trim(error_code) AS BIGINT) < 100
                        THEN CAST(trim(error_code) AS BIGINT) <> 0
                    WHEN CAST(trim(error_code) AS BIGINT) >= 500 THEN TRUE
                    WHEN CAST(trim(error_code) AS BIGINT) >= 400
                        THEN lower(coalesce(kind, '')) = 'client'
                    ELSE FALSE
                END
            ELSE lower(trim(coalesce(error_code, ''))) NOT IN
                ({", ".join(f"'{w}'" for w in sorted(OK_CODE_WORDS))})
        END
    )
)"""


def code_is_failure(code: str, client: bool) -> bool:
    """Whether an error code (HTTP status, gRPC code or an application's code) means failure.

    Numbers below 100 are gRPC codes (0 = OK); HTTP 5xx is the server's failure and 4xx the
    caller's, so OpenTelemetry marks 4xx as an error only on the client's span; 1xx-3xx succeed.
    Any other text (``error.type``, ``TIMEOUT``, ``EMBEDDING_FAILED``) names a failure unless it
    is an OK word.
    """
    text = code.strip(" ")
    if not re.fullmatch(_NUMBER, text):
        return text.lower() not in OK_CODE_WORDS
    number = int(text)
    if number < 100:
        return number != 0
    if number >= 500:
        return True
    return number >= 400 and client


def _bool(mask: pa.ChunkedArray | pa.Array) -> np.ndarray:
    if isinstance(mask, pa.ChunkedArray):
        mask = mask.combine_chunks()
    return np.asarray(pc.fill_null(mask, False), dtype=bool)


def error_spans(spans: pa.Table) -> np.ndarray:
    """The one error definition: a bool per row of a ``SPAN_SCHEMA`` table.

    A span failed when its status is ERROR, or when its status is not OK and its error code
    means failure (:func:`code_is_failure`). Why both: OpenTelemetry instrumentations set the
    status, but Zipkin-style exporters and many datasets only carry an HTTP or gRPC code; an
    explicit OK status is the application's own word and wins over a code.
    """
    n = spans.num_rows
    if n == 0:
        return np.zeros(0, dtype=bool)
    status = pc.utf8_lower(pc.fill_null(spans["status"], ""))
    failed = _bool(pc.equal(status, "error"))
    if "error_code" not in spans.column_names or spans["error_code"].null_count == n:
        return failed
    code = pc.dictionary_encode(pc.fill_null(spans["error_code"], "")).combine_chunks()
    words = code.dictionary.to_pylist()
    plain = np.array([code_is_failure(w, client=False) for w in words] or [False])
    client = np.array([code_is_failure(w, client=True) for w in words] or [False])
    idx = np.asarray(code.indices, dtype=np.int64)
    kind = spans["kind"] if "kind" in spans.column_names else pa.nulls(n, pa.string())
    is_client = _bool(pc.equal(pc.utf8_lower(pc.fill_null(kind, "")), "client"))
    by_code = np.where(is_client, client[idx], plain[idx])
    not_ok = ~_bool(pc.equal(status, "ok"))
    return failed | (not_ok & by_code)


def has_parent_id(spans: pa.Table) -> np.ndarray:
    """Whether each row names a parent (empty and all-zero ids do not): a root has none."""
    if spans.num_rows == 0:
        return np.zeros(0, dtype=bool)
    pid = spans["parent_id"]
    named = pc.and_(
        pc.is_valid(pid), pc.invert(pc.is_in(pc.fill_null(pid, ""), pa.array(NO_PARENT)))
    )
    return _bool(named)


def span_services(spans: pa.Table) -> pa.ChunkedArray:
    """The service of each span: ``service``, else the service of its pod, else null."""
    svc = spans["service"]
    missing = pc.fill_null(pc.equal(pc.utf8_length(pc.fill_null(svc, "")), 0), True)
    if not pc.any(missing).as_py():
        return svc
    pods = pc.dictionary_encode(spans["pod"]).combine_chunks()
    names = pa.array(
        [service_from_pod(p) if p else None for p in pods.dictionary.to_pylist()], pa.string()
    )
    from_pod = pc.take(names, pods.indices) if len(names) else pa.nulls(spans.num_rows, pa.string())
    return pc.if_else(missing, pa.chunked_array([from_pod]), svc)


def first_rows(spans: pa.Table) -> np.ndarray:
    """Row numbers of the first row of each ``(trace_id, span_id)``, in table order."""
    if spans.num_rows == 0:
        return np.zeros(0, np.int64)
    key = _span_keys(spans)[0]
    _, first = np.unique(key, return_index=True)
    return np.sort(first)


def _codes(col: pa.ChunkedArray) -> tuple[np.ndarray, pa.Array]:
    enc = pc.dictionary_encode(col).combine_chunks()
    return np.asarray(enc.indices.fill_null(-1), dtype=np.int64), enc.dictionary


def _span_keys(spans: pa.Table) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """(span key, parent key or -1, trace code, trace ids): integer keys per row."""
    trace_of, trace_dict = _codes(spans["trace_id"])
    sid, sid_dict = _codes(spans["span_id"])
    n_ids = len(sid_dict) + 1
    skey = (trace_of + 1) * n_ids + sid
    pcode = pc.fill_null(pc.index_in(spans["parent_id"], value_set=sid_dict), -1).combine_chunks()
    pcode = np.asarray(pcode, dtype=np.int64)
    pkey = np.where(pcode >= 0, (trace_of + 1) * n_ids + pcode, -1)
    return skey, pkey, trace_of, trace_dict.to_pylist()


def sibling_sweep(
    parent: np.ndarray, start: np.ndarray, end: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Children of each parent in start order, with the latest end of their earlier siblings.

    ``start``/``end``: int64 times per row (only rows with ``parent >= 0`` are used). Returns
    ``(kids, first, prev_end, cum_end)`` over the kids sorted by (parent, start): ``first`` marks
    a parent's first child, ``prev_end`` is the latest end among its earlier siblings (the
    child's own start for a first child) and ``cum_end`` the latest end up to and including it.
    Why one sweep: the union of the children's intervals (self time) and the longest stretch
    with none running (idle time) both come from this running maximum, exactly, in int64.
    """
    kids = np.nonzero(parent >= 0)[0]
    kids = kids[np.lexsort((start[kids], parent[kids]))]
    p = parent[kids]
    first = np.ones(len(kids), dtype=bool)
    first[1:] = p[1:] != p[:-1]
    k_start, k_end = start[kids], np.maximum(end[kids], start[kids])
    # a running max restarted per parent: lift each parent's segment above the previous ones
    # (relative to its first child's start, so the lift stays far inside int64)
    seg = np.cumsum(first) - 1
    base = k_start[first][seg] if len(kids) else k_start
    rel_end = k_end - base
    step = int(rel_end.max(initial=0)) + 1
    cum_end = np.empty(len(kids), dtype=np.int64)
    per_chunk = max(1, (1 << 62) // step)  # segments per chunk that cannot overflow
    seg_first = np.nonzero(first)[0]
    for lo in range(0, len(seg_first), per_chunk):
        a = int(seg_first[lo])
        b = int(seg_first[lo + per_chunk]) if lo + per_chunk < len(seg_first) else len(kids)
        lift = (seg[a:b] - seg[a]) * step
        cum_end[a:b] = np.maximum.accumulate(rel_end[a:b] + lift) - lift + base[a:b]
    prev_end = np.empty(len(kids), dtype=np.int64)
    prev_end[1:] = cum_end[:-1]
    prev_end[first] = k_start[first]
    return kids, first, prev_end, cum_end


def covered_by_children(parent: np.ndarray, start: np.ndarray, duration: np.ndarray) -> np.ndarray:
    """Per row, how long at least one of its children ran inside it (ns, float64).

    Children are clipped to the parent's interval, and overlapping children count once.
    """
    n = len(parent)
    end = start + duration.astype(np.int64)
    p = np.where(parent >= 0, parent, 0)
    c_start = np.where(parent >= 0, np.maximum(start, start[p]), 0)
    c_end = np.where(parent >= 0, np.maximum(np.minimum(end, end[p]), c_start), 0)
    kids, _, prev_end, cum_end = sibling_sweep(parent, c_start, c_end)
    new = np.maximum(cum_end - np.maximum(prev_end, c_start[kids]), 0)
    return np.bincount(parent[kids], weights=new.astype(np.float64), minlength=n)


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


@dataclass
class SpanForest:
    """Every trace of a span table as a forest; all arrays have one entry per table row."""

    table: pa.Table
    trace_ids: list[str]  # one per trace code
    trace_of: np.ndarray  # int64 trace code per row
    first: np.ndarray  # int64 first row of the same (trace_id, span_id): itself unless duplicated
    parent: np.ndarray  # int64 row of the parent, -1 for a root (or an orphan)
    named_parent: np.ndarray  # bool: the row names a parent id
    orphan: np.ndarray  # bool: named a parent that is absent, itself, or part of a cycle
    cyclic: np.ndarray  # bool: its parent chain closed a cycle (cut here)
    depth: np.ndarray  # int64, 0 for a root
    child_count: np.ndarray  # int64 child rows of this span
    service: np.ndarray  # int64 code into service_names, -1 when unknown
    service_names: list[str]
    start_ns: np.ndarray  # int64
    duration_ns: np.ndarray  # float64 effective duration
    unfinished: np.ndarray  # bool: never ended
    negative: np.ndarray  # bool: ended before it started
    self_ns: np.ndarray  # float64 duration minus the union of the children's intervals, >= 0
    client: np.ndarray  # bool: a client span (its time is wire time, see the module docstring)
    wire_ns: np.ndarray  # float64 wire time charged to this callee; NaN when not behind a client
    is_error: np.ndarray  # bool: the one error definition

    @property
    def n_spans(self) -> int:
        return len(self.parent)

    @property
    def n_traces(self) -> int:
        return len(self.trace_ids)

    @property
    def roots(self) -> np.ndarray:
        """Rows that start a tree and named no parent (orphans are roots only by necessity)."""
        return (self.parent < 0) & ~self.orphan

    @classmethod
    def build(cls, spans: pa.Table) -> SpanForest:
        """Link the spans of ``spans`` (any row order; ``SPAN_SCHEMA`` columns) into trees."""
        n = spans.num_rows
        skey, pkey, trace_of, trace_ids = _span_keys(spans)
        named = has_parent_id(spans)
        order = np.argsort(skey, kind="stable")
        sorted_keys = skey[order]
        run_start = np.ones(n, dtype=bool)
        run_start[1:] = sorted_keys[1:] != sorted_keys[:-1]
        first = np.empty(n, dtype=np.int64)
        first[order] = order[np.maximum.accumulate(np.where(run_start, np.arange(n), 0))]
        pos = np.minimum(np.searchsorted(sorted_keys, pkey), max(n - 1, 0))
        found = named & (pkey >= 0) & (sorted_keys[pos] == pkey) if n else named
        parent = np.where(found, order[pos], -1).astype(np.int64) if n else np.zeros(0, np.int64)
        self_loop = parent == first
        parent[self_loop] = -1
        orphan = named & (parent < 0)
        depth, cyclic = _depths(parent)
        if cyclic.any():
            parent[cyclic] = -1
            orphan |= cyclic
            depth, _ = _depths(parent)

        start = np.asarray(pc.fill_null(spans["start_ns"], 0).combine_chunks(), dtype=np.int64)
        end = np.asarray(pc.fill_null(spans["end_ns"], 0).combine_chunks(), dtype=np.int64)
        if "duration_ns" in spans.column_names:
            dur = spans["duration_ns"]
            from_dur = pc.and_(pc.is_null(spans["end_ns"]), pc.is_valid(dur))
            if pc.any(from_dur).as_py():
                given = np.asarray(pc.fill_null(dur, 0).combine_chunks(), dtype=np.int64)
                end = np.where(_bool(from_dur), start + given, end)
        unfinished = end <= 0
        negative = ~unfinished & (end < start)
        latest = np.where(unfinished, start, np.maximum(end, start))
        trace_end = np.full(len(trace_ids) + 1, np.iinfo(np.int64).min)
        np.maximum.at(trace_end, trace_of, latest)
        eff_end = np.where(unfinished, trace_end[trace_of], np.maximum(end, start))
        duration = (eff_end - start).astype(np.float64)

        kids = parent >= 0
        child_count = np.bincount(parent[kids], minlength=n).astype(np.int64)[first]
        self_ns = np.maximum(duration - covered_by_children(parent, start, duration)[first], 0.0)

        service, service_dict = _codes(span_services(spans)) if n else (np.zeros(0, np.int64), [])
        service_names = list(service_dict.to_pylist()) if n else []
        p = np.where(kids, parent, 0)
        known = kids & (service >= 0) & (service[p] >= 0)
        cross = known & (service[p] != service)
        nested = known & (service[p] == service)
        cross_kids = np.bincount(parent[cross], minlength=n).astype(np.int64)[first]
        client = nested & (child_count == 1) & (cross_kids == 1)
        behind_client = cross & client[p]
        wire_ns = np.where(behind_client, np.maximum(duration[p] - duration, 0.0), np.nan)
        return cls(
            table=spans,
            trace_ids=trace_ids,
            trace_of=trace_of,
            first=first,
            parent=parent,
            named_parent=named,
            orphan=orphan,
            cyclic=cyclic,
            depth=depth,
            child_count=child_count,
            service=service,
            service_names=service_names,
            start_ns=start,
            duration_ns=duration,
            unfinished=unfinished,
            negative=negative,
            self_ns=self_ns,
            client=client,
            wire_ns=wire_ns,
            is_error=error_spans(spans),
        )

    def parent_service(self) -> np.ndarray:
        """Service code of each span's parent (-1 for roots and unknown services)."""
        p = np.where(self.parent >= 0, self.parent, 0)
        return np.where(self.parent >= 0, self.service[p] if self.n_spans else -1, -1)


@dataclass(frozen=True)
class ServiceCall:
    """One caller -> callee service edge of the call graph, with its volume and failures."""

    caller: str
    callee: str
    calls: int
    errors: int


def service_calls(forest: SpanForest) -> list[ServiceCall]:
    """Caller -> callee service edges: child spans whose parent runs in another service,
    sorted by (caller, callee)."""
    if forest.n_spans == 0:
        return []
    caller = forest.parent_service()
    cross = (caller >= 0) & (forest.service >= 0) & (caller != forest.service)
    m = len(forest.service_names)
    pair = caller[cross] * m + forest.service[cross]
    pairs, calls = np.unique(pair, return_counts=True)
    errors = np.bincount(
        np.searchsorted(pairs, pair),
        weights=forest.is_error[cross].astype(float),
        minlength=len(pairs),
    )
    names = forest.service_names
    edges = [
        ServiceCall(names[int(p // m)], names[int(p % m)], int(c), int(e))
        for p, c, e in zip(pairs.tolist(), calls.tolist(), errors.tolist(), strict=True)
    ]
    return sorted(edges, key=lambda e: (e.caller, e.callee))
