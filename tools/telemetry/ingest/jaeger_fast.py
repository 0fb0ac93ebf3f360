"""Jaeger JSON spans at the decoder's speed: typed msgspec decoding of what the query API writes.

Why a second reader beside :mod:`jaeger_json`: the walker checks every field of every span in
Python, dict by dict. The files an SRE downloads from Jaeger (``/api/traces``, the UI's "Download
JSON") are one shape: lower-case hex ids (leading zeros maybe dropped), integer microsecond
times, a ``processes`` table, ``tags`` of scalars. msgspec decodes that shape in C straight into
slotted structs, and this module turns them into the columns the walker would build, with
:mod:`otlp_fast`'s column helpers (the same id, int64, error-code and duplicate rules).

Anything else — upper-case or all-zero ids, times as floats or padded strings, an inline
``process``, a field of another type, invalid input — makes :func:`add_document` return
``False`` before anything was added, and the caller hands the document to the walker. So the
walker stays the one definition of each field and of every error message (a property test holds
the two equal).
"""

from __future__ import annotations

from typing import Any

import msgspec
from msgspec import UNSET, UnsetType

from tools.telemetry.ingest.common import INT64_MAX, Counter, Rows
from tools.telemetry.ingest.jaeger_json import KINDS
from tools.telemetry.ingest.otlp_fast import (
    NotCanonical,
    add_span_columns,
    error_code,
    hex_id_column,
    int64_column,
)
from tools.telemetry.model import SPAN_SCHEMA


class _Tag(msgspec.Struct, gc=False):
    key: str
    value: Any = None


class _Reference(msgspec.Struct, gc=False):
    refType: str = "CHILD_OF"
    spanID: str | None = None


class _Process(msgspec.Struct, gc=False):
    serviceName: str | None = None
    tags: list[_Tag] | None = None


class _Span(msgspec.Struct, gc=False):
    traceID: str | UnsetType | None = UNSET  # absent: the trace's; null: none (the walker's get)
    spanID: str | None = None
    operationName: str = ""
    references: list[_Reference] | None = None
    startTime: int | str | None = None
    duration: int | str = 0
    tags: list[_Tag] | None = None
    processID: str | None = None
    process: msgspec.Raw | UnsetType = UNSET


class _Trace(msgspec.Struct, gc=False):
    traceID: str | None = None
    spans: list[_Span] | UnsetType | None = UNSET
    processes: dict[str, _Process] | None = None


class _Envelope(_Trace, gc=False):
    data: list[_Trace] | UnsetType | None = UNSET


_DECODER = msgspec.json.Decoder(_Envelope | list[_Trace])


def _traces(doc: _Envelope | list[_Trace]) -> list[_Trace]:
    """The walker's ``traces_of``: an envelope's traces, a list of traces, or a bare trace."""
    if isinstance(doc, list):
        return doc
    if doc.data is not UNSET:
        return doc.data or []
    if doc.spans is not UNSET:
        return [doc]
    raise NotCanonical  # not a Jaeger document: the walker says so


def _tags(items: list[_Tag] | None) -> dict[str, Any]:
    return {} if not items else {t.key: t.value for t in items}


def _process(process: _Process | None) -> tuple[str, str | None]:
    """Service and pod of a process, as the walker reads them."""
    if process is None:
        return "unknown_service", None
    ptags = _tags(process.tags)
    pod = ptags.get("k8s.pod.name") or ptags.get("hostname")
    return process.serviceName or "unknown_service", None if pod is None else str(pod)


def _parent(refs: list[_Reference] | None) -> str | None:
    """The CHILD_OF reference's span, else the first FOLLOWS_FROM one (ids checked apart)."""
    parents: dict[str, str | None] = {}
    for ref in refs or ():
        parents.setdefault(ref.refType.upper(), ref.spanID or None)
    return parents.get("CHILD_OF") or parents.get("FOLLOWS_FROM")


def _micros(col: list[int | str | None]) -> list[int]:
    """Epoch ns of a column of microsecond fields (0 <= t < 2**63 ns), or not canonical."""
    out = int64_column(col)
    if out and max(out) > INT64_MAX // 1000:
        raise NotCanonical
    return [t * 1000 for t in out]


def _add_trace(trace: _Trace, cols: dict[str, list]) -> None:
    """The columns of one trace's spans, built a column at a time where the walker's rule allows."""
    spans = trace.spans or []
    if any(s.process is not UNSET for s in spans):
        raise NotCanonical
    trace_ids = hex_id_column(
        [trace.traceID if s.traceID is UNSET else s.traceID for s in spans], 32, padded=True
    )
    span_ids = hex_id_column([s.spanID for s in spans], 16, padded=True)
    if None in trace_ids or None in span_ids:
        raise NotCanonical
    hex_id_column([r.spanID for s in spans for r in s.references or ()], 16, padded=True)
    processes = {pid: _process(p) for pid, p in (trace.processes or {}).items()}
    unknown = ("unknown_service", None)
    where = [processes.get(s.processID or "", unknown) for s in spans]
    starts = _micros([s.startTime for s in spans])
    ends = [s + d for s, d in zip(starts, _micros([s.duration for s in spans]), strict=True)]
    if ends and max(ends) > INT64_MAX:
        raise NotCanonical
    tags = [_tags(s.tags) for s in spans]
    kinds = [t.pop("span.kind", None) for t in tags]
    cols["trace_id"] += trace_ids
    cols["span_id"] += span_ids
    cols["parent_id"] += hex_id_column([_parent(s.references) for s in spans], 16, padded=True)
    cols["service"] += [service for service, _ in where]
    cols["pod"] += [pod for _, pod in where]
    cols["operation"] += [s.operationName for s in spans]
    cols["kind"] += [k if isinstance(k, str) and k in KINDS else None for k in kinds]
    cols["start_ns"] += starts
    cols["end_ns"] += ends
    cols["duration_ns"] += [e - s for s, e in zip(starts, ends, strict=True)]
    cols["status"] += [
        "error"
        if t.get("error") in (True, "true") or str(t.get("otel.status_code", "")).upper() == "ERROR"
        else "unset"
        for t in tags
    ]
    cols["error_code"] += [error_code(t) for t in tags]
    cols["attributes"] += tags


def add_document(
    raw: str | bytes, rows: Rows, seen: set[tuple[str, str]], counter: Counter
) -> bool:
    """Add one Jaeger document's spans; ``False`` — with nothing added — when it is not the
    query API's shape or not valid (the walker then reads it, or says what is wrong)."""
    try:
        cols: dict[str, list] = {name: [] for name in SPAN_SCHEMA.names}
        for trace in _traces(_DECODER.decode(raw)):
            _add_trace(trace, cols)
    except (msgspec.DecodeError, NotCanonical):
        return False
    add_span_columns(rows, seen, counter, cols)
    return True
