"""OTLP JSON: traces, logs and metrics as the OTLP/HTTP JSON encoding defines them.

Why one walker for files and the receiver: a file holds ``ExportTraceServiceRequest``-shaped
objects (``resourceSpans``/``resourceLogs``/``resourceMetrics``) exactly like an OTLP/HTTP JSON
POST body, and the receiver turns protobuf bodies into the same dict shape, so both go through
:func:`add_document`. The only difference is the id encoding: the OTLP JSON encoding writes trace
and span ids as hex, the generic protobuf JSON mapping as base64.

Per the encoding: int64 fields (nanosecond times, ``intValue``, ``asInt``, counts) may be decimal
strings or numbers; enums may be integers or their names; ``service.name`` is a resource attribute.
Histograms and summaries become the Prometheus series ``_bucket{le}``/``_sum``/``_count`` and
``{quantile}``, so every metric answers by a Prometheus-valid name.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from typing import Any, Literal

from tools.core.severity import Severity, severity_from_number
from tools.telemetry.ingest.common import (
    ERROR_CODE_KEYS,
    MAX_BODY_CHARS,
    Counter,
    Fail,
    Rows,
    add_span,
    as_dict,
    as_float,
    as_int,
    as_list,
    as_str,
    as_time_ns,
    attributes_json,
    cap,
    hex_id,
    label_name,
    labels_json,
    log_rows,
    metric_name,
    metric_rows,
    span_rows,
)

IdEncoding = Literal["hex", "base64"]

SPAN_KINDS = {0: None, 1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}
STATUS_CODES = {0: "unset", 1: "ok", 2: "error"}
_ENUM_PREFIX = {"kind": "SPAN_KIND_", "status": "STATUS_CODE_"}


@dataclass
class OtlpAccumulator:
    """Rows collected from any number of OTLP documents."""

    spans: Rows = field(default_factory=span_rows)
    logs: Rows = field(default_factory=log_rows)
    metrics: Rows = field(default_factory=metric_rows)
    seen: set[tuple[str, str]] = field(default_factory=set)
    counter: Counter = field(default_factory=Counter)


def any_value(v: Any, fail: Fail, fp: str) -> Any:
    """An OTLP ``AnyValue`` as a plain Python value."""
    v = as_dict(v, fail, fp)
    if not v:
        return None
    if "stringValue" in v:
        return as_str(v["stringValue"], fail, f"{fp}.stringValue")
    if "boolValue" in v:
        if not isinstance(v["boolValue"], bool):
            raise fail("expected a boolean", f"{fp}.boolValue")
        return v["boolValue"]
    if "intValue" in v:
        return as_int(v["intValue"], fail, f"{fp}.intValue")
    if "doubleValue" in v:
        return as_float(v["doubleValue"], fail, f"{fp}.doubleValue")
    if "arrayValue" in v:
        arr = as_dict(v["arrayValue"], fail, f"{fp}.arrayValue")
        vals = as_list(arr.get("values"), fail, f"{fp}.arrayValue.values")
        return [any_value(x, fail, f"{fp}.arrayValue.values[{i}]") for i, x in enumerate(vals)]
    if "kvlistValue" in v:
        kv = as_dict(v["kvlistValue"], fail, f"{fp}.kvlistValue")
        return key_values(kv.get("values"), fail, f"{fp}.kvlistValue.values")
    if "bytesValue" in v:
        return as_str(v["bytesValue"], fail, f"{fp}.bytesValue")
    raise fail(f"unknown AnyValue field(s) {sorted(v)}", fp)


def key_values(items: Any, fail: Fail, fp: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for i, kv in enumerate(as_list(items, fail, fp)):
        kv = as_dict(kv, fail, f"{fp}[{i}]")
        key = as_str(kv.get("key"), fail, f"{fp}[{i}].key")
        out[key] = any_value(kv.get("value", {}), fail, f"{fp}[{i}].value")
    return out


def _enum(value: Any, table: dict[int, Any], which: str, fail: Fail, fp: str) -> Any:
    if value is None:
        return table[0]
    if isinstance(value, str) and not value.lstrip("-").isdigit():
        name = value.upper().removeprefix(_ENUM_PREFIX[which])
        for label in table.values():
            if (label or "unspecified").upper() == name:
                return label
        raise fail(f"unknown {which} {value!r:.40}", fp)
    code = as_int(value, fail, fp)
    if code not in table:
        raise fail(f"unknown {which} {code}", fp)
    return table[code]


def _id(value: Any, width: int, enc: IdEncoding, fail: Fail, fp: str) -> str | None:
    if enc == "base64" and isinstance(value, str) and value:
        try:
            value = base64.b64decode(value, validate=True).hex()
        except (binascii.Error, ValueError):
            raise fail(f"invalid base64 id {value!r:.40}", fp) from None
    return hex_id(value, width, fail, fp)


def _resource(res: Any, fail: Fail, fp: str) -> tuple[str, str | None, dict[str, Any]]:
    attrs = key_values(as_dict(res or {}, fail, fp).get("attributes"), fail, f"{fp}.attributes")
    service = attrs.get("service.name")
    pod = attrs.get("k8s.pod.name")
    return (
        str(service) if service is not None else "unknown_service",
        None if pod is None else str(pod),
        attrs,
    )


def _scopes(
    rs: dict[str, Any], key: str, legacy: str, fail: Fail, fp: str
) -> list[tuple[str, Any]]:
    name = key if key in rs else legacy
    items = as_list(rs.get(name), fail, f"{fp}.{name}")
    return [
        (f"{fp}.{name}[{i}]", as_dict(s, fail, f"{fp}.{name}[{i}]")) for i, s in enumerate(items)
    ]


def add_document(doc: Any, acc: OtlpAccumulator, fail: Fail, ids: IdEncoding = "hex") -> None:
    """Add every span, log record and metric point of one OTLP export request."""
    doc = as_dict(doc, fail, "$")
    known = {"resourceSpans", "resourceLogs", "resourceMetrics"}
    if not known & doc.keys():
        raise fail("not an OTLP export request (no resourceSpans/resourceLogs/resourceMetrics)")
    for i, rs in enumerate(as_list(doc.get("resourceSpans"), fail, "resourceSpans")):
        _add_spans(as_dict(rs, fail, f"resourceSpans[{i}]"), f"resourceSpans[{i}]", acc, fail, ids)
    for i, rl in enumerate(as_list(doc.get("resourceLogs"), fail, "resourceLogs")):
        _add_logs(as_dict(rl, fail, f"resourceLogs[{i}]"), f"resourceLogs[{i}]", acc, fail, ids)
    for i, rm in enumerate(as_list(doc.get("resourceMetrics"), fail, "resourceMetrics")):
        fp = f"resourceMetrics[{i}]"
        _add_metrics(as_dict(rm, fail, fp), fp, acc, fail)


def _add_spans(
    rs: dict[str, Any], fp: str, acc: OtlpAccumulator, fail: Fail, ids: IdEncoding
) -> None:
    service, pod, _ = _resource(rs.get("resource"), fail, f"{fp}.resource")
    for sfp, scope in _scopes(rs, "scopeSpans", "instrumentationLibrarySpans", fail, fp):
        for j, sp in enumerate(as_list(scope.get("spans"), fail, f"{sfp}.spans")):
            p = f"{sfp}.spans[{j}]"
            sp = as_dict(sp, fail, p)
            trace_id = _id(sp.get("traceId"), 32, ids, fail, f"{p}.traceId")
            span_id = _id(sp.get("spanId"), 16, ids, fail, f"{p}.spanId")
            if trace_id is None or span_id is None:
                raise fail("a span needs a non-zero traceId and spanId", p)
            start = as_time_ns(sp.get("startTimeUnixNano"), fail, f"{p}.startTimeUnixNano")
            end_raw = sp.get("endTimeUnixNano")
            end = (
                None
                if end_raw in (None, "0", 0)
                else as_time_ns(end_raw, fail, f"{p}.endTimeUnixNano")
            )
            attrs = key_values(sp.get("attributes"), fail, f"{p}.attributes")
            status = as_dict(sp.get("status") or {}, fail, f"{p}.status")
            code = next((attrs[k] for k in ERROR_CODE_KEYS if k in attrs), None)
            if status.get("message"):
                attrs["otel.status_description"] = as_str(
                    status["message"], fail, f"{p}.status.message"
                )
            add_span(
                acc.spans,
                acc.seen,
                acc.counter,
                trace_id=trace_id,
                span_id=span_id,
                parent_id=_id(sp.get("parentSpanId"), 16, ids, fail, f"{p}.parentSpanId"),
                service=service,
                pod=pod,
                operation=as_str(sp.get("name", ""), fail, f"{p}.name"),
                kind=_enum(sp.get("kind"), SPAN_KINDS, "kind", fail, f"{p}.kind"),
                start_ns=start,
                end_ns=end,
                status=_enum(status.get("code"), STATUS_CODES, "status", fail, f"{p}.status.code"),
                error_code=None if code is None else str(code),
                attributes=attributes_json(attrs, acc.counter),
            )


def _add_logs(
    rl: dict[str, Any], fp: str, acc: OtlpAccumulator, fail: Fail, ids: IdEncoding
) -> None:
    service, pod, _ = _resource(rl.get("resource"), fail, f"{fp}.resource")
    for sfp, scope in _scopes(rl, "scopeLogs", "instrumentationLibraryLogs", fail, fp):
        for j, rec in enumerate(as_list(scope.get("logRecords"), fail, f"{sfp}.logRecords")):
            p = f"{sfp}.logRecords[{j}]"
            rec = as_dict(rec, fail, p)
            ts = as_time_ns(rec.get("timeUnixNano", 0), fail, f"{p}.timeUnixNano")
            if ts == 0:
                ts = as_time_ns(
                    rec.get("observedTimeUnixNano", 0), fail, f"{p}.observedTimeUnixNano"
                )
            if ts == 0:
                raise fail("a log record needs timeUnixNano or observedTimeUnixNano", p)
            severity = rec.get("severityText") or None
            if severity is None and rec.get("severityNumber") not in (None, 0, "0"):
                number = _severity_number(rec["severityNumber"], fail, f"{p}.severityNumber")
                level = severity_from_number(number)
                severity = None if level is None else level.name
            body = any_value(rec.get("body", {}), fail, f"{p}.body")
            text = body if isinstance(body, str) else json.dumps(body, default=str)
            acc.logs.add(
                ts_ns=ts,
                service=service,
                pod=pod,
                severity=None if severity is None else as_str(severity, fail, p).upper(),
                body=cap(text if body is not None else "", MAX_BODY_CHARS, acc.counter),
                trace_id=_id(rec.get("traceId"), 32, ids, fail, f"{p}.traceId"),
                span_id=_id(rec.get("spanId"), 16, ids, fail, f"{p}.spanId"),
                attributes=attributes_json(
                    key_values(rec.get("attributes"), fail, f"{p}.attributes"), acc.counter
                ),
            )


def _severity_number(value: Any, fail: Fail, fp: str) -> int:
    if isinstance(value, str) and value.startswith("SEVERITY_NUMBER_"):
        name = value.removeprefix("SEVERITY_NUMBER_").rstrip("0123456789")
        return Severity[name].value if name in Severity.__members__ else Severity.INFO.value
    return as_int(value, fail, fp)


def _add_metrics(rm: dict[str, Any], fp: str, acc: OtlpAccumulator, fail: Fail) -> None:
    service, pod, _ = _resource(rm.get("resource"), fail, f"{fp}.resource")
    for sfp, scope in _scopes(rm, "scopeMetrics", "instrumentationLibraryMetrics", fail, fp):
        for j, m in enumerate(as_list(scope.get("metrics"), fail, f"{sfp}.metrics")):
            p = f"{sfp}.metrics[{j}]"
            m = as_dict(m, fail, p)
            name = metric_name(as_str(m.get("name"), fail, f"{p}.name"))
            if not name:
                raise fail("empty metric name", f"{p}.name")
            emit = _Emitter(acc.metrics, name, service, pod)
            if "gauge" in m or "sum" in m:
                key = "gauge" if "gauge" in m else "sum"
                body = as_dict(m[key], fail, f"{p}.{key}")
                for k, dp in enumerate(
                    as_list(body.get("dataPoints"), fail, f"{p}.{key}.dataPoints")
                ):
                    q = f"{p}.{key}.dataPoints[{k}]"
                    dp = as_dict(dp, fail, q)
                    labels, ts = _point(dp, fail, q)
                    if "asDouble" in dp:
                        value = as_float(dp["asDouble"], fail, f"{q}.asDouble")
                    else:
                        value = float(as_int(dp.get("asInt", 0), fail, f"{q}.asInt"))
                    emit("", labels, ts, value)
            elif "histogram" in m:
                _histogram(m["histogram"], f"{p}.histogram", emit, fail)
            elif "summary" in m:
                _summary(m["summary"], f"{p}.summary", emit, fail)
            elif "exponentialHistogram" in m:
                _count_sum(m["exponentialHistogram"], f"{p}.exponentialHistogram", emit, fail)
            else:
                raise fail("metric has no gauge, sum, histogram or summary", p)


@dataclass
class _Emitter:
    rows: Rows
    name: str
    service: str
    pod: str | None

    def __call__(self, suffix: str, labels: dict[str, str], ts: int, value: float) -> None:
        full = dict(labels)
        full.setdefault("service", self.service)
        if self.pod is not None:
            full.setdefault("pod", self.pod)
        self.rows.add(
            name=self.name + suffix,
            service=full["service"],
            pod=full.get("pod"),
            labels=labels_json(full),
            ts_ns=ts,
            value=value,
        )


def _point(dp: dict[str, Any], fail: Fail, fp: str) -> tuple[dict[str, str], int]:
    attrs = key_values(dp.get("attributes"), fail, f"{fp}.attributes")
    labels = {label_name(k): v if isinstance(v, str) else json.dumps(v) for k, v in attrs.items()}
    ts = as_time_ns(dp.get("timeUnixNano"), fail, f"{fp}.timeUnixNano")
    return labels, ts


def _count_sum(
    body: Any, fp: str, emit: _Emitter, fail: Fail
) -> list[tuple[str, dict[str, Any], dict[str, str], int]]:
    out = []
    body = as_dict(body, fail, fp)
    for k, dp in enumerate(as_list(body.get("dataPoints"), fail, f"{fp}.dataPoints")):
        q = f"{fp}.dataPoints[{k}]"
        dp = as_dict(dp, fail, q)
        labels, ts = _point(dp, fail, q)
        emit("_count", labels, ts, float(as_int(dp.get("count", 0), fail, f"{q}.count")))
        if "sum" in dp:
            emit("_sum", labels, ts, as_float(dp["sum"], fail, f"{q}.sum"))
        out.append((q, dp, labels, ts))
    return out


def _histogram(body: Any, fp: str, emit: _Emitter, fail: Fail) -> None:
    for q, dp, labels, ts in _count_sum(body, fp, emit, fail):
        bounds = [
            as_float(b, fail, f"{q}.explicitBounds")
            for b in as_list(dp.get("explicitBounds"), fail, f"{q}.explicitBounds")
        ]
        counts = [
            as_int(c, fail, f"{q}.bucketCounts")
            for c in as_list(dp.get("bucketCounts"), fail, f"{q}.bucketCounts")
        ]
        if counts and len(counts) != len(bounds) + 1:
            raise fail(f"{len(counts)} bucketCounts for {len(bounds)} explicitBounds", q)
        total = 0
        for le, c in zip([*bounds, float("inf")], counts, strict=False):
            total += c
            emit("_bucket", {**labels, "le": _le(le)}, ts, float(total))


def _summary(body: Any, fp: str, emit: _Emitter, fail: Fail) -> None:
    for q, dp, labels, ts in _count_sum(body, fp, emit, fail):
        for i, qv in enumerate(as_list(dp.get("quantileValues"), fail, f"{q}.quantileValues")):
            qq = as_dict(qv, fail, f"{q}.quantileValues[{i}]")
            quant = as_float(qq.get("quantile", 0), fail, f"{q}.quantileValues[{i}].quantile")
            value = as_float(qq.get("value", 0), fail, f"{q}.quantileValues[{i}].value")
            emit("", {**labels, "quantile": _le(quant)}, ts, value)


def _le(x: float) -> str:
    if x == float("inf"):
        return "+Inf"
    return repr(float(x))
