"""Shared pieces of the file parsers: column builders, caps, id and label normalisation.

Why: every parser turns nested documents into the same three columnar schemas and must treat
hostile input the same way (huge attributes capped, duplicate spans dropped, every error one
``InputError`` naming file, line and field). Keeping that here keeps each parser about its format.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import msgspec
import pyarrow as pa

from tools.core.errors import InputError
from tools.telemetry.model import LOG_SCHEMA, METRIC_SCHEMA, SPAN_SCHEMA, service_from_pod

MAX_VALUE_CHARS = 4096  # one attribute value
MAX_ATTRIBUTES_CHARS = 32_768  # the JSON text of one row's attributes
MAX_BODY_CHARS = 65_536  # one log body
_HEX = re.compile(r"^[0-9a-fA-F]+$")
_METRIC_BAD = re.compile(r"[^a-zA-Z0-9_:]")
_LABEL_BAD = re.compile(r"[^a-zA-Z0-9_]")
TRUNCATED = "…[truncated]"
# Where a span's error code comes from, most specific first: an application error code (what an
# SRE searches for, e.g. MODEL_TIMEOUT), then the protocol status (HTTP, gRPC).
ERROR_CODE_KEYS = (
    "error_code",
    "error.type",
    "http.response.status_code",
    "http.status_code",
    "rpc.grpc.status_code",
)


class Fail:
    """Raises ``InputError`` at one place of one file: ``path:line: field: message``."""

    def __init__(self, path: str, line: int | None = None) -> None:
        self.path = path
        self.line = line

    def __call__(self, message: str, field_path: str | None = None) -> InputError:
        text = f"{field_path}: {message}" if field_path else message
        return InputError(text, path=self.path, line=self.line)


def cap(text: str, limit: int, counter: Counter | None = None) -> str:
    if len(text) <= limit:
        return text
    if counter is not None:
        counter.truncated += 1
    return text[: limit - len(TRUNCATED)] + TRUNCATED


@dataclass
class Counter:
    """What a parser had to change to make hostile input storable; becomes warnings."""

    truncated: int = 0
    duplicates: int = 0

    def warnings(self) -> list[str]:
        out = []
        if self.truncated:
            out.append(f"{self.truncated} oversized value(s) truncated")
        if self.duplicates:
            out.append(f"{self.duplicates} duplicate span(s) dropped (same trace and span id)")
        return out


# json.dumps with arguments builds an encoder per call; attributes are encoded once per span
_ATTRIBUTES_ENCODER = json.JSONEncoder(ensure_ascii=False, default=str, allow_nan=True)


def attributes_json(attrs: dict[str, Any], counter: Counter) -> str | None:
    """Attributes as JSON text, string values and the whole object capped; ``None`` if empty."""
    if not attrs:
        return None
    capped = {
        k: cap(v, MAX_VALUE_CHARS, counter) if isinstance(v, str) else v for k, v in attrs.items()
    }
    text = _ATTRIBUTES_ENCODER.encode(capped)
    if len(text) > MAX_ATTRIBUTES_CHARS:
        counter.truncated += 1
        kept: dict[str, Any] = {}
        size = 2
        for k, v in capped.items():
            item = len(json.dumps({k: v}, ensure_ascii=False, default=str)) - 1
            if size + item > MAX_ATTRIBUTES_CHARS - 40:
                break
            kept[k] = v
            size += item
        kept["tamo.truncated"] = True
        text = json.dumps(kept, ensure_ascii=False, default=str)
    return text


def labels_json(labels: dict[str, str]) -> str:
    """Canonical label JSON (sorted keys), as ``METRIC_SCHEMA`` wants it."""
    return json.dumps(dict(sorted(labels.items())), ensure_ascii=False, separators=(",", ":"))


def metric_name(name: str) -> str:
    """A Prometheus-valid metric name (``http.server.duration`` -> ``http_server_duration``)."""
    out = _METRIC_BAD.sub("_", name)
    return "_" + out if out[:1].isdigit() else out


def label_name(name: str) -> str:
    out = _LABEL_BAD.sub("_", name)
    return "_" + out if out[:1].isdigit() else out


def hex_id(value: Any, width: int, fail: Fail, field_path: str) -> str | None:
    """A lower-case hex id left-padded to ``width``; ``None`` for empty/absent/all-zero ids."""
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not _HEX.match(value) or len(value) > width:
        raise fail(f"expected a hex id of at most {width} digits, got {value!r:.60}", field_path)
    out = value.lower().zfill(width)
    return None if set(out) == {"0"} else out


def as_int(value: Any, fail: Fail, field_path: str) -> int:
    """An int from a JSON number or a decimal string (OTLP encodes int64 as strings)."""
    if isinstance(value, bool):
        raise fail(f"expected an integer, got {value!r}", field_path)
    out: int | None = None
    if isinstance(value, int):
        out = value
    elif (isinstance(value, float) and value.is_integer()) or (
        isinstance(value, str) and value.strip().lstrip("-").isdigit()
    ):
        out = int(value)
    if out is None:
        raise fail(f"expected an integer, got {value!r:.60}", field_path)
    if not -(2**63) <= out < 2**64:  # int64 and uint64 (fixed64) fields
        raise fail(f"integer out of range: {value!r:.40}", field_path)
    return out


INT64_MAX = 2**63 - 1


def as_time_ns(value: Any, fail: Fail, field_path: str, scale: int = 1) -> int:
    """Epoch nanoseconds from an integer field in units of ``scale`` ns; 0 <= t < 2**63."""
    t = as_int(value, fail, field_path)
    if not 0 <= t * scale <= INT64_MAX:
        raise fail(f"time out of range: {value!r:.40}", field_path)
    return t * scale


def as_float(value: Any, fail: Fail, field_path: str) -> float:
    if isinstance(value, bool):
        raise fail(f"expected a number, got {value!r}", field_path)
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    raise fail(f"expected a number, got {value!r:.60}", field_path)


def as_str(value: Any, fail: Fail, field_path: str) -> str:
    if not isinstance(value, str):
        raise fail(f"expected a string, got {type(value).__name__}", field_path)
    return value


def as_dict(value: Any, fail: Fail, field_path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise fail(f"expected an object, got {type(value).__name__}", field_path)
    return value


def as_list(value: Any, fail: Fail, field_path: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise fail(f"expected an array, got {type(value).__name__}", field_path)
    return value


@dataclass
class Rows:
    """Row-wise accumulator for one schema; ``table()`` builds the Arrow table once."""

    schema: pa.Schema
    cols: dict[str, list[Any]] = field(init=False)

    def __post_init__(self) -> None:
        self.cols = {f.name: [] for f in self.schema}

    def add(self, **values: Any) -> None:
        for name, col in self.cols.items():
            col.append(values.get(name))

    def table(self) -> pa.Table:
        try:
            return pa.Table.from_pydict(self.cols, schema=self.schema)
        except UnicodeEncodeError:  # JSON may escape lone surrogates ("\ud800"): not UTF-8
            for f in self.schema:
                if pa.types.is_string(f.type):
                    self.cols[f.name] = [_valid_utf8(v) for v in self.cols[f.name]]
            return pa.Table.from_pydict(self.cols, schema=self.schema)


def _valid_utf8(v: str | None) -> str | None:
    """``v`` with surrogate pairs joined and lone surrogates replaced by U+FFFD."""
    if v is None:
        return None
    return v.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def span_rows() -> Rows:
    return Rows(SPAN_SCHEMA)


def log_rows() -> Rows:
    return Rows(LOG_SCHEMA)


def metric_rows() -> Rows:
    return Rows(METRIC_SCHEMA)


def add_span(rows: Rows, seen: set[tuple[str, str]], counter: Counter, **span: Any) -> None:
    """Append a span unless its (trace, span) id pair was already seen in this input."""
    key = (span["trace_id"], span["span_id"])
    if key in seen:
        counter.duplicates += 1
        return
    seen.add(key)
    end = span.get("end_ns")
    span["duration_ns"] = None if end is None else end - span["start_ns"]
    rows.add(**span)


def service_and_pod(labels: dict[str, str]) -> tuple[str | None, str | None]:
    """Service and pod of a labelled series: ``service``/``job`` labels, else the pod's service."""
    pod = labels.get("pod") or labels.get("pod_name") or labels.get("k8s_pod_name")
    service = labels.get("service") or labels.get("service_name") or labels.get("job")
    if service is None and pod:
        service = service_from_pod(pod)
    return service, pod


def iter_json_docs(path: str, text: str) -> list[tuple[int, Any]]:
    """The JSON documents of a file: one document (any layout) or one per line (JSON Lines).

    Returns ``(line, document)`` pairs; a syntax error is an ``InputError`` at its line.
    """
    try:
        return [(1, json.loads(text))]
    except json.JSONDecodeError as whole:
        lines = text.splitlines()
        first = next((i for i, ln in enumerate(lines) if ln.strip()), None)
        if first is None:
            raise InputError("empty file", path=path) from None
        try:
            json.loads(lines[first])
        except json.JSONDecodeError:
            raise InputError(
                f"invalid JSON at column {whole.colno}: {whole.msg}", path=path, line=whole.lineno
            ) from None
        docs = []
        for i, ln in enumerate(lines, start=1):
            if not ln.strip():
                continue
            try:
                docs.append((i, json.loads(ln)))
            except json.JSONDecodeError as exc:
                raise InputError(
                    f"invalid JSON at column {exc.colno}: {exc.msg}", path=path, line=i
                ) from None
        return docs


@dataclass(frozen=True)
class Undecoded:
    """A document's text that passed the strict syntax check but is not decoded yet."""

    text: str


def json_documents(path: str, text: str) -> list[tuple[int, Undecoded | Any]]:
    """The JSON documents of a file: one document (any layout) or one per line (JSON Lines),
    as ``(line, Undecoded(text))`` so a reader can decode each one its own way (typed, or into
    dicts); the strict syntax check here runs in C and builds nothing (~1 GB/s).

    Why the fallback: Python's ``json`` accepts what strict JSON does not (``NaN``,
    ``Infinity``, lone surrogates, which our own writers and other tools emit); a file the strict
    check refuses gets :func:`iter_json_docs`' verdict: decoded documents, or its one error at
    its line.
    """
    try:
        msgspec.json.decode(text, type=msgspec.Raw)
        return [(1, Undecoded(text))]
    except msgspec.DecodeError:
        pass
    docs: list[tuple[int, Undecoded | Any]] = []
    for i, ln in enumerate(text.splitlines(), start=1):
        if not ln.strip():
            continue
        try:
            msgspec.json.decode(ln, type=msgspec.Raw)
        except msgspec.DecodeError:
            return iter_json_docs(path, text)
        docs.append((i, Undecoded(ln)))
    return docs
