"""A span exporter writing OTLP/HTTP JSON (one ``ExportTraceServiceRequest`` per line).

Why: a file that ``tamo ingest`` (format ``otlp-json``) reads without a running receiver, in the
same encoding an OTLP/HTTP JSON client would POST. The protobuf encoder of the official OTLP
exporter builds the request; protobuf's JSON mapping gives the camelCase field names, and the
ids are rewritten from base64 to lowercase hex as the OTLP JSON encoding requires.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from google.protobuf.json_format import MessageToDict
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

_ID_FIELDS = frozenset({"traceId", "spanId", "parentSpanId"})


def _hex_ids(node: Any) -> Any:
    if isinstance(node, dict):
        return {
            k: base64.b64decode(v).hex() if k in _ID_FIELDS and isinstance(v, str) else _hex_ids(v)
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_hex_ids(v) for v in node]
    return node


def spans_to_otlp_json(spans: Sequence[ReadableSpan]) -> dict[str, Any]:
    """The OTLP JSON object for ``spans`` (``{"resourceSpans": [...]}``)."""
    request = encode_spans(spans)
    return _hex_ids(MessageToDict(request, use_integers_for_enums=True))


class OtlpJsonFileExporter(SpanExporter):
    """Appends one OTLP JSON line per export batch to ``path``."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = path.open("a", encoding="utf-8")
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        line = json.dumps(spans_to_otlp_json(spans), separators=(",", ":"))
        with self._lock:
            if self._file.closed:
                return SpanExportResult.FAILURE
            self._file.write(line + "\n")
            self._file.flush()
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        with self._lock:
            self._file.close()
