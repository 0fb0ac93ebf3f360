"""File ingest: OTLP JSON, Jaeger JSON, Prometheus text and JSONL logs -> columnar telemetry.

Why one entry point: ``parse_file`` detects the format from the content (the extension is not
trusted; ``fmt`` overrides), parses the whole file before anything is stored, and raises one
``InputError`` naming ``file:line`` and the field on bad input, so the store's atomic per-file
insert never sees half a file.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
from pydantic import BaseModel

from tools.core.errors import InputError
from tools.telemetry.ingest import (
    jaeger_fast,
    jaeger_json,
    jsonl_fast,
    jsonl_logs,
    otlp_fast,
    otlp_json,
    prom_text,
)
from tools.telemetry.ingest.common import (
    Counter,
    Fail,
    Undecoded,
    json_documents,
    log_rows,
    span_rows,
)
from tools.telemetry.model import LOG_SCHEMA, METRIC_SCHEMA, SPAN_SCHEMA

FORMATS = ("otlp-json", "jaeger-json", "prom-text", "jsonl-logs")


@dataclass
class ParsedTelemetry:
    """What one input held, in the store's schemas, plus what had to be changed to store it."""

    format: str
    spans: pa.Table = field(default_factory=SPAN_SCHEMA.empty_table)
    logs: pa.Table = field(default_factory=LOG_SCHEMA.empty_table)
    metrics: pa.Table = field(default_factory=METRIC_SCHEMA.empty_table)
    warnings: list[str] = field(default_factory=list)


class IngestResult(BaseModel):
    """One ingested source: what it was and how many rows of each kind it gave."""

    source: str
    format: str
    spans: int = 0
    logs: int = 0
    metrics: int = 0
    warnings: list[str] = []

    @property
    def rows(self) -> int:
        return self.spans + self.logs + self.metrics

    @classmethod
    def of(cls, source: str, parsed: ParsedTelemetry) -> IngestResult:
        """What storing ``parsed`` under ``source`` added (store and client say the same)."""
        return cls(
            source=source,
            format=parsed.format,
            spans=parsed.spans.num_rows,
            logs=parsed.logs.num_rows,
            metrics=parsed.metrics.num_rows,
            warnings=parsed.warnings,
        )


_PROM_LINE = re.compile(
    r"^(# (HELP|TYPE) [a-zA-Z_:]"
    r"|[a-zA-Z_:][a-zA-Z0-9_:]*(\{.*\})?\s+[-+]?(\d|\.\d|NaN|Inf)[^\s]*(\s+-?\d+)?\s*$)"
)


_FIRST_NON_BLANK = re.compile(r"\S")  # no copy of a large text just to skip its leading blanks


def detect_format(text: str) -> str | None:
    """The format of ``text`` from its content, or ``None`` when it is none of ours."""
    start = _FIRST_NON_BLANK.search(text)
    head = "" if start is None else text[start.start() : start.start() + 65536]
    if not head:
        return None
    if head[0] in "{[":
        first = head.splitlines()[0]
        try:
            doc = json.loads(first)
        except json.JSONDecodeError:
            doc = None
        if isinstance(doc, dict):
            if {"resourceSpans", "resourceLogs", "resourceMetrics"} & doc.keys():
                return "otlp-json"
            if "data" in doc or ("spans" in doc and "traceID" in doc):
                return "jaeger-json"
            if any(k in doc for k in jsonl_logs.TIME_KEYS):
                return "jsonl-logs"
            return None
        for marker, fmt in (
            ('"resourceSpans"', "otlp-json"),
            ('"resourceLogs"', "otlp-json"),
            ('"resourceMetrics"', "otlp-json"),
            ('"traceID"', "jaeger-json"),
        ):
            if marker in head:
                return fmt
        return None
    if _PROM_LINE.match(head.splitlines()[0]):
        return "prom-text"
    return None


def parse_text(
    text: str, path: str, fmt: str | None = None, default_ts_ns: int | None = None
) -> ParsedTelemetry:
    """Parse ``text`` (named ``path`` in errors); ``default_ts_ns`` stamps timeless samples."""
    fmt = fmt or detect_format(text)
    if fmt is None:
        raise InputError(
            f"unrecognised telemetry format (give one of {', '.join(FORMATS)})", path=path
        )
    return _parser(fmt, path)(text, path, default_ts_ns)


def _parser(fmt: str, path: str) -> Callable[[str, str, int | None], ParsedTelemetry]:
    parser = _PARSERS.get(fmt)
    if parser is None:
        raise InputError(f"unknown format {fmt!r} (one of {', '.join(FORMATS)})", path=path)
    return parser


def parse_file(
    path: Path, fmt: str | None = None, default_ts_ns: int | None = None
) -> ParsedTelemetry:
    """Parse one file; samples without a time get ``default_ts_ns`` or the file's mtime."""
    p = Path(path)
    if fmt is not None:
        _parser(fmt, str(p))
    try:
        raw = p.read_bytes()
        mtime_ns = p.stat().st_mtime_ns
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror or exc}", path=str(p)) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise InputError("not UTF-8 text", path=str(p), line=line) from None
    return parse_text(text, str(p), fmt, default_ts_ns if default_ts_ns is not None else mtime_ns)


def _each_document(
    text: str,
    path: str,
    typed: Callable[[str, Fail], bool],
    walk: Callable[[Any, Fail], None],
) -> None:
    """Each JSON document of a file through its format's typed reader, or — for a variant it
    leaves alone, and for every error — through the walker, which names the field."""
    for line, doc in json_documents(path, text):
        fail = Fail(path, line)
        if not isinstance(doc, Undecoded):
            walk(doc, fail)
        elif not typed(doc.text, fail):
            walk(json.loads(doc.text), fail)


def _otlp(text: str, path: str, _ts: int | None) -> ParsedTelemetry:
    acc = otlp_json.OtlpAccumulator()
    _each_document(
        text,
        path,
        lambda raw, fail: otlp_fast.add_document(raw, acc, fail),
        lambda doc, fail: otlp_json.add_document(doc, acc, fail),
    )
    return ParsedTelemetry(
        "otlp-json",
        acc.spans.table(),
        acc.logs.table(),
        acc.metrics.table(),
        acc.counter.warnings(),
    )


def _jaeger(text: str, path: str, _ts: int | None) -> ParsedTelemetry:
    rows, seen, counter = span_rows(), set(), Counter()
    _each_document(
        text,
        path,
        lambda raw, _fail: jaeger_fast.add_document(raw, rows, seen, counter),
        lambda doc, fail: jaeger_json.add_document(doc, rows, seen, counter, fail),
    )
    return ParsedTelemetry("jaeger-json", spans=rows.table(), warnings=counter.warnings())


def _prom(text: str, path: str, ts: int | None) -> ParsedTelemetry:
    if ts is None:
        raise InputError("samples without timestamps need a snapshot time", path=path)
    return ParsedTelemetry("prom-text", metrics=prom_text.parse(path, text, ts))


def _jsonl(text: str, path: str, _ts: int | None) -> ParsedTelemetry:
    rows, counter = log_rows(), Counter()
    lines = [(i, line) for i, line in enumerate(text.splitlines(), start=1) if line.strip()]
    if jsonl_fast.add_lines([line for _, line in lines], rows, counter):
        return ParsedTelemetry("jsonl-logs", logs=rows.table(), warnings=counter.warnings())
    for i, line in lines:
        fail = Fail(path, i)
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise fail(f"invalid JSON: {exc.msg}") from None
        jsonl_logs.add_line(obj, rows, counter, fail)
    return ParsedTelemetry("jsonl-logs", logs=rows.table(), warnings=counter.warnings())


_PARSERS: dict[str, Callable[[str, str, int | None], ParsedTelemetry]] = {
    "otlp-json": _otlp,
    "jaeger-json": _jaeger,
    "prom-text": _prom,
    "jsonl-logs": _jsonl,
}

__all__ = [
    "FORMATS",
    "IngestResult",
    "ParsedTelemetry",
    "detect_format",
    "parse_file",
    "parse_text",
]
