"""Test support: an in-test OTLP/HTTP collector and readers of metrics and logs.

The collector decodes the protobuf the official OTLP exporter sends, so the tests check what
really went over the wire.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from prometheus_client.parser import text_string_to_metric_families

from testbed import SKIPPABLE, Testbed


@dataclass
class Span:
    trace_id: str
    span_id: str
    parent_id: str
    module: str
    attributes: dict[str, Any]
    error: bool
    duration_s: float


def _value(v: Any) -> Any:
    return getattr(v, v.WhichOneof("value")) if v.WhichOneof("value") else None


class Collector:
    """An OTLP/HTTP protobuf trace receiver on a free loopback port."""

    def __init__(self) -> None:
        self.spans: list[Span] = []
        self.lock = threading.Lock()
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                request = ExportTraceServiceRequest.FromString(body)
                collector.add(request)
                payload = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def add(self, request: ExportTraceServiceRequest) -> None:
        with self.lock:
            for rs in request.resource_spans:
                for ss in rs.scope_spans:
                    for sp in ss.spans:
                        attrs = {a.key: _value(a.value) for a in sp.attributes}
                        self.spans.append(
                            Span(
                                trace_id=sp.trace_id.hex(),
                                span_id=sp.span_id.hex(),
                                parent_id=sp.parent_span_id.hex(),
                                module=str(attrs.get("module", sp.name)),
                                attributes=attrs,
                                error=sp.status.code == 2,
                                duration_s=(sp.end_time_unix_nano - sp.start_time_unix_nano) / 1e9,
                            )
                        )

    def task_spans(self, task_id: str) -> list[Span]:
        with self.lock:
            return [s for s in self.spans if s.attributes.get("task_id") == task_id]

    def trace(self, trace_id: str) -> list[Span]:
        with self.lock:
            return [s for s in self.spans if s.trace_id == trace_id]

    def wait(
        self, select: Callable[[], list[Span]], at_least: int = 1, timeout_s: float = 10.0
    ) -> list[Span]:
        """Poll ``select`` until it returns ``at_least`` spans (spans arrive in batches)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            spans = select()
            if len(spans) >= at_least:
                return spans
            time.sleep(0.05)
        return select()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def reset(tb: Testbed) -> None:
    tb.client.clear()
    tb.client.switch_model("primary")
    for module in SKIPPABLE:
        tb.client.set_skip(module, False)


def metric_value(tb: Testbed, module: str, name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` on ``module``'s /metrics matching ``labels``."""
    text = httpx.get(tb.urls[module] + "/metrics", timeout=5).text
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


def read_logs(tb: Testbed, module: str) -> list[dict[str, Any]]:
    path: Path = tb.log_dir / f"{module}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
