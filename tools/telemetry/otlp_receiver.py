"""An OTLP/HTTP receiver that writes what it is sent into a ``TelemetryStore``.

Why: any OpenTelemetry SDK or Collector can export to it with the standard OTLP/HTTP exporter
(``POST /v1/traces``, ``/v1/logs``, ``/v1/metrics``; protobuf or JSON, optionally gzip), so the
testbed and a laptop cluster need no Jaeger/Loki/Prometheus to be diagnosed. Bodies are parsed in
a worker thread by the same walker as OTLP JSON files (protobuf goes through the generic
protobuf-JSON mapping, whose ids are base64); parsed tables are buffered and written in batches by
one writer thread, so many small exports become few store transactions. It binds loopback unless
told otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import logging
import socket
import threading
import time
import uuid
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Self

import pyarrow as pa
import uvicorn
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import DecodeError, Message
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2 as logs_pb
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2 as metrics_pb
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as trace_pb
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tools.core.errors import InputError
from tools.telemetry.ingest.common import Fail
from tools.telemetry.ingest.otlp_json import IdEncoding, OtlpAccumulator, add_document
from tools.telemetry.store import TelemetryStore

log = logging.getLogger(__name__)

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
MAX_BODY_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class Signal:
    path: str
    request: type[Message]
    response: type[Message]


SIGNALS = (
    Signal("/v1/traces", trace_pb.ExportTraceServiceRequest, trace_pb.ExportTraceServiceResponse),
    Signal("/v1/logs", logs_pb.ExportLogsServiceRequest, logs_pb.ExportLogsServiceResponse),
    Signal(
        "/v1/metrics",
        metrics_pb.ExportMetricsServiceRequest,
        metrics_pb.ExportMetricsServiceResponse,
    ),
)


def parse_body(body: bytes, content_type: str, signal: Signal) -> dict[str, pa.Table]:
    """Tables of one export request; ``InputError`` (source ``POST <path>``) when malformed."""
    where = f"POST {signal.path}"
    doc: Any
    ids: IdEncoding
    if content_type == PROTOBUF:
        try:
            msg = signal.request.FromString(body)
        except DecodeError as exc:
            raise InputError(f"invalid protobuf: {exc}", path=where) from None
        doc, ids = MessageToDict(msg, use_integers_for_enums=True), "base64"
    else:
        try:
            doc, ids = json.loads(body), "hex"
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InputError(f"invalid JSON: {exc}", path=where) from None
    if doc == {}:  # an empty export request is valid
        return {}
    acc = OtlpAccumulator()
    add_document(doc, acc, Fail(where), ids=ids)
    tables = {"spans": acc.spans.table(), "logs": acc.logs.table(), "metrics": acc.metrics.table()}
    return {k: t for k, t in tables.items() if t.num_rows}


class _Batcher:
    """Buffers parsed tables and writes them to the store from one thread, in batches."""

    def __init__(self, store: TelemetryStore, interval_s: float, max_rows: int) -> None:
        self.store = store
        self.interval_s = interval_s
        self.max_rows = max_rows
        self.session = uuid.uuid4().hex[:12]
        self._buffer: list[tuple[str, pa.Table]] = []
        self._rows = 0
        self._seq = 0
        self._cond = threading.Condition()
        self._write_lock = threading.Lock()
        self._stop = False
        self.written = {"spans": 0, "logs": 0, "metrics": 0}
        self.failed_batches = 0
        self._thread = threading.Thread(target=self._loop, name="otlp-batcher", daemon=True)
        self._thread.start()

    def add(self, tables: dict[str, pa.Table]) -> None:
        with self._cond:
            for kind, table in tables.items():
                self._buffer.append((kind, table))
                self._rows += table.num_rows
            if self._rows >= self.max_rows:
                self._cond.notify()

    def flush(self) -> None:
        """Write everything buffered now (the caller waits for it)."""
        with self._write_lock:
            with self._cond:
                batch, self._buffer, self._rows = self._buffer, [], 0
                self._seq += 1
                seq = self._seq
            if not batch:
                return
            by_kind: dict[str, list[pa.Table]] = {}
            for kind, table in batch:
                by_kind.setdefault(kind, []).append(table)
            source = f"otlp-receiver:{self.session}:{seq}"
            try:
                totals = self.store.insert_many(
                    [(k, pa.concat_tables(ts), source) for k, ts in by_kind.items()]
                )
            except Exception:  # the receiver must keep serving; the loss is logged and counted
                self.failed_batches += 1
                log.exception("OTLP receiver: writing batch %s to the store failed", source)
                return
            for kind, n in totals.items():
                self.written[kind] += n

    def _loop(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(
                    lambda: self._stop or self._rows >= self.max_rows, self.interval_s
                )
                stop = self._stop
            self.flush()
            if stop:
                return

    def close(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify()
        self._thread.join()


class OtlpReceiver:
    """OTLP/HTTP on ``http://host:port`` into ``store``; ``port=0`` picks a free port.

    Use as a context manager (or ``start()``/``stop()``); ``flush()`` makes everything received so
    far visible in the store. ``serve_forever()`` blocks (for a CLI).
    """

    def __init__(
        self,
        store: TelemetryStore,
        host: str = "127.0.0.1",
        port: int = 4318,
        *,
        flush_interval_s: float = 0.5,
        max_batch_rows: int = 50_000,
    ) -> None:
        self.store = store
        self.host = host
        self._sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, port))
        self.port = int(self._sock.getsockname()[1])
        self._batcher = _Batcher(store, flush_interval_s, max_batch_rows)
        self.rejected = 0
        routes = [Route(s.path, self._endpoint(s), methods=["POST"]) for s in SIGNALS]
        self.app = Starlette(routes=routes)
        config = uvicorn.Config(self.app, log_level="warning", lifespan="off", access_log=False)
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def written(self) -> dict[str, int]:
        """Rows written to the store so far, per kind."""
        return dict(self._batcher.written)

    def _endpoint(self, signal: Signal) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Response:
            ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
            if ctype not in (PROTOBUF, JSON):
                self.rejected += 1
                return _error(415, f"unsupported content type {ctype!r}", JSON)
            body = await request.body()
            try:
                body = _decompress(body, request.headers.get("content-encoding", ""))
                if len(body) > MAX_BODY_BYTES:
                    raise InputError(f"body over {MAX_BODY_BYTES} bytes", path="request body")
                tables = await run_in_threadpool(parse_body, body, ctype, signal)
            except InputError as exc:
                self.rejected += 1
                return _error(400, str(exc), ctype)
            self._batcher.add(tables)
            if ctype == PROTOBUF:
                return Response(signal.response().SerializeToString(), media_type=PROTOBUF)
            return Response("{}", media_type=JSON)

        return endpoint

    def flush(self) -> None:
        self._batcher.flush()

    def start(self) -> Self:
        self._thread = threading.Thread(target=self._run, name="otlp-receiver", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"OTLP receiver did not start on {self.url}")
            time.sleep(0.01)
        return self

    def _run(self) -> None:
        asyncio.run(self._server.serve(sockets=[self._sock]))

    def serve_forever(self) -> None:
        try:
            self._run()
        finally:
            self._batcher.close()

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._batcher.close()
        with contextlib.suppress(OSError):
            self._sock.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _decompress(body: bytes, encoding: str) -> bytes:
    encoding = encoding.strip().lower()
    try:
        if encoding == "gzip":
            return gzip.decompress(body)
        if encoding == "deflate":
            return zlib.decompress(body)
    except (OSError, EOFError, zlib.error) as exc:
        raise InputError(f"invalid {encoding} body: {exc}", path="request body") from None
    if encoding not in ("", "identity"):
        raise InputError(f"unsupported content encoding {encoding!r}", path="request body")
    return body


def _error(status: int, message: str, ctype: str) -> Response:
    """An OTLP error response: a ``google.rpc.Status`` in the request's encoding."""
    if ctype == PROTOBUF:
        return Response(
            Status(code=3, message=message).SerializeToString(), status, media_type=PROTOBUF
        )
    return Response(json.dumps({"code": 3, "message": message}), status, media_type=JSON)
