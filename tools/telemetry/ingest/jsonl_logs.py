"""JSON Lines logs: one JSON object per line, the way most structured loggers write.

Why tolerant field names: loggers disagree (``ts``/``time``/``timestamp``/``@timestamp``,
``level``/``severity``, ``msg``/``message``/``body``/``log``), so the first present of each
alias list wins; every other field is kept as an attribute. Times may be ISO 8601 strings (UTC
when no offset is given; nanosecond fractions kept) or epoch numbers in s, ms, µs or ns (told
apart by magnitude).
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

from tools.telemetry.ingest.common import (
    MAX_BODY_CHARS,
    Counter,
    Fail,
    Rows,
    as_dict,
    attributes_json,
    cap,
)
from tools.telemetry.model import service_from_pod

TIME_KEYS = ("ts", "time", "timestamp", "@timestamp", "ts_ns", "time_unix_nano")
LEVEL_KEYS = ("level", "severity", "lvl", "severity_text", "levelname")
BODY_KEYS = ("msg", "message", "body", "log")
SERVICE_KEYS = ("service", "service.name", "service_name", "app")
POD_KEYS = ("pod", "pod_name", "k8s.pod.name", "kubernetes.pod_name")
TRACE_KEYS = ("trace_id", "traceId", "traceID", "trace.id")
SPAN_KEYS = ("span_id", "spanId", "spanID", "span.id")

_HEX = re.compile(r"^[0-9a-fA-F]+$")
_FRACTION = re.compile(r"(\d{2}:\d{2}:\d{2})\.(\d+)")


def _first(obj: dict[str, Any], keys: tuple[str, ...]) -> tuple[str | None, Any]:
    for k in keys:
        if k in obj and obj[k] is not None:
            return k, obj[k]
    return None, None


def parse_time(value: Any, fail: Fail, fp: str) -> int:
    """Epoch nanoseconds from an ISO 8601 string or an epoch number of any common unit."""
    if isinstance(value, bool):
        raise fail(f"expected a time, got {value!r}", fp)
    if isinstance(value, int | float):
        x = float(value)
        if x != x or abs(x) > 9.2e18:
            raise fail(f"time out of range: {value!r}", fp)
        scale = (
            10**9 if abs(x) < 1e11 else 10**6 if abs(x) < 1e14 else 10**3 if abs(x) < 1e17 else 1
        )
        ns = value * scale if isinstance(value, int) else round(x * scale)
        if abs(ns) >= 2**63:
            raise fail(f"time out of range: {value!r}", fp)
        return ns
    if isinstance(value, str):
        text = value.strip()
        if re.fullmatch(r"-?\d+(\.\d+)?", text):
            return parse_time(float(text) if "." in text else int(text), fail, fp)
        m = _FRACTION.search(text)
        frac_ns = int(m.group(2)[:9].ljust(9, "0")) if m else 0
        plain = _FRACTION.sub(r"\1", text, count=1)
        try:
            dt = datetime.fromisoformat(plain)
        except ValueError:
            raise fail(f"not an ISO 8601 time: {value!r:.60}", fp) from None
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)
        ns = int(dt.timestamp()) * 1_000_000_000 + frac_ns
        if abs(ns) >= 2**63:
            raise fail(f"time out of range: {value!r:.60}", fp)
        return ns
    raise fail(f"expected a time, got {type(value).__name__}", fp)


def log_id(value: Any, width: int) -> str | None:
    """Hex ids normalised like spans' (so logs join traces); other ids kept verbatim."""
    if value is None or value == "":
        return None
    text = str(value)
    if _HEX.match(text) and len(text) <= width:
        return text.lower().zfill(width)
    return text


def add_line(obj: Any, rows: Rows, counter: Counter, fail: Fail) -> None:
    obj = dict(as_dict(obj, fail, "$"))
    tkey, tval = _first(obj, TIME_KEYS)
    if tkey is None:
        raise fail(f"no time field (one of {', '.join(TIME_KEYS)})")
    ts = parse_time(tval, fail, tkey)
    obj.pop(tkey)
    fields = {}
    for name, keys in (
        ("level", LEVEL_KEYS),
        ("body", BODY_KEYS),
        ("service", SERVICE_KEYS),
        ("pod", POD_KEYS),
        ("trace", TRACE_KEYS),
        ("span", SPAN_KEYS),
    ):
        key, val = _first(obj, keys)
        fields[name] = (key, val)
        if key is not None:
            obj.pop(key)
    body = fields["body"][1]
    if body is None:
        raise fail(f"no message field (one of {', '.join(BODY_KEYS)})")
    text = body if isinstance(body, str) else json.dumps(body, default=str)
    pod = fields["pod"][1]
    service = fields["service"][1]
    if service is None and pod is not None:
        service = service_from_pod(str(pod))
    level = fields["level"][1]
    rows.add(
        ts_ns=ts,
        service=None if service is None else str(service),
        pod=None if pod is None else str(pod),
        severity=None if level is None else str(level).upper(),
        body=cap(text, MAX_BODY_CHARS, counter),
        trace_id=log_id(fields["trace"][1], 32),
        span_id=log_id(fields["span"][1], 16),
        attributes=attributes_json(obj, counter),
    )
