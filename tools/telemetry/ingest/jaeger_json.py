"""Jaeger JSON: the query API's trace format (``/api/traces`` and the UI's "Download JSON").

Why: teams that already run Jaeger can hand us an exported trace directly. The envelope is
``{"data": [trace, ...]}``; a trace is ``{"traceID", "spans": [...], "processes": {id: {...}}}``;
a span has ``spanID``, ``operationName``, ``references`` (``CHILD_OF``/``FOLLOWS_FROM``),
``startTime`` and ``duration`` in microseconds, ``tags`` and a ``processID``. A bare trace or a list
of traces is accepted too. Jaeger drops leading zeros of ids; we pad them back (32/16 hex digits)
so they join with OTLP logs and spans.
"""

from __future__ import annotations

from typing import Any

from tools.telemetry.ingest.common import (
    ERROR_CODE_KEYS,
    INT64_MAX,
    Counter,
    Fail,
    Rows,
    add_span,
    as_dict,
    as_list,
    as_str,
    as_time_ns,
    attributes_json,
    hex_id,
)

KINDS = {"server", "client", "producer", "consumer", "internal"}


def _tags(items: Any, fail: Fail, fp: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for i, tag in enumerate(as_list(items, fail, fp)):
        tag = as_dict(tag, fail, f"{fp}[{i}]")
        out[as_str(tag.get("key"), fail, f"{fp}[{i}].key")] = tag.get("value")
    return out


def traces_of(doc: Any, fail: Fail) -> list[tuple[str, dict[str, Any]]]:
    """``(field path, trace)`` for each trace in an envelope, a list or a bare trace."""
    if isinstance(doc, dict) and "data" in doc:
        items, base = as_list(doc["data"], fail, "data"), "data"
    elif isinstance(doc, list):
        items, base = doc, "$"
    elif isinstance(doc, dict) and "spans" in doc:
        return [("$", doc)]
    else:
        raise fail('not a Jaeger trace document (expected {"data": [...]})')
    return [(f"{base}[{i}]", as_dict(t, fail, f"{base}[{i}]")) for i, t in enumerate(items)]


def add_document(
    doc: Any, rows: Rows, seen: set[tuple[str, str]], counter: Counter, fail: Fail
) -> None:
    for tp, trace in traces_of(doc, fail):
        processes = as_dict(trace.get("processes") or {}, fail, f"{tp}.processes")
        for j, sp in enumerate(as_list(trace.get("spans"), fail, f"{tp}.spans")):
            p = f"{tp}.spans[{j}]"
            sp = as_dict(sp, fail, p)
            trace_id = hex_id(sp.get("traceID", trace.get("traceID")), 32, fail, f"{p}.traceID")
            span_id = hex_id(sp.get("spanID"), 16, fail, f"{p}.spanID")
            if trace_id is None or span_id is None:
                raise fail("a span needs a traceID and a spanID", p)
            pid = sp.get("processID")
            if pid is not None and not isinstance(pid, str):
                raise fail(f"expected a string, got {type(pid).__name__}", f"{p}.processID")
            process = as_dict(
                sp.get("process") or processes.get(pid or "", {}), fail, f"{p}.processID"
            )
            ptags = _tags(process.get("tags"), fail, f"{p}.process.tags")
            tags = _tags(sp.get("tags"), fail, f"{p}.tags")
            start = as_time_ns(sp.get("startTime"), fail, f"{p}.startTime", scale=1000)
            end = start + as_time_ns(sp.get("duration", 0), fail, f"{p}.duration", scale=1000)
            if end > INT64_MAX:
                raise fail("startTime + duration out of range", p)
            kind = tags.pop("span.kind", None)
            code = next((tags[k] for k in ERROR_CODE_KEYS if k in tags), None)
            is_error = (
                tags.get("error") in (True, "true")
                or str(tags.get("otel.status_code", "")).upper() == "ERROR"
            )
            add_span(
                rows,
                seen,
                counter,
                trace_id=trace_id,
                span_id=span_id,
                parent_id=_parent(sp.get("references"), fail, f"{p}.references"),
                service=str(process.get("serviceName") or "unknown_service"),
                pod=_pod(ptags),
                operation=as_str(sp.get("operationName", ""), fail, f"{p}.operationName"),
                kind=kind if isinstance(kind, str) and kind in KINDS else None,
                start_ns=start,
                end_ns=end,
                status="error" if is_error else "unset",
                error_code=None if code is None else str(code),
                attributes=attributes_json(tags, counter),
            )


def _parent(refs: Any, fail: Fail, fp: str) -> str | None:
    """The CHILD_OF reference's span, else the first FOLLOWS_FROM one."""
    parents: dict[str, str | None] = {}
    for i, ref in enumerate(as_list(refs, fail, fp)):
        ref = as_dict(ref, fail, f"{fp}[{i}]")
        kind = str(ref.get("refType", "CHILD_OF")).upper()
        parents.setdefault(kind, hex_id(ref.get("spanID"), 16, fail, f"{fp}[{i}].spanID"))
    return parents.get("CHILD_OF") or parents.get("FOLLOWS_FROM")


def _pod(ptags: dict[str, Any]) -> str | None:
    pod = ptags.get("k8s.pod.name") or ptags.get("hostname")
    return None if pod is None else str(pod)
