"""OTLP/HTTP export bodies to tables, in the receiver's process or in a pool of worker processes.

Why a process pool: parsing is the receiver's one per-span Python cost (~8 µs a span, all of it
under the interpreter lock). In ``tamo serve`` the same process answers MCP and runs diagnoses,
which are Python too; parsed in threads, 50k spans/s would hold the lock most of the time and a
diagnosis would wait for it. Worker processes parse on the other cores and hand back Arrow IPC
(a copy of a few hundred KB per export, no Python per row), so the serving process only moves
bytes, commits and answers. A bad body is reported by the worker as the same one-line message
the in-process parser raises, so the client's 400 names the same field either way.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing as mp
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2 as logs_pb
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2 as metrics_pb
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as trace_pb

from tools.core.errors import InputError
from tools.telemetry.ingest.common import Fail
from tools.telemetry.ingest.otlp_json import IdEncoding, OtlpAccumulator, add_document
from tools.telemetry.otlp_protobuf import span_table

PROTOBUF = "application/x-protobuf"
JSON = "application/json"


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
        if isinstance(msg, trace_pb.ExportTraceServiceRequest):
            spans, _ = span_table(msg, Fail(where))
            return {"spans": spans} if spans.num_rows else {}
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


def _ipc(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def _parse_in_worker(body: bytes, content_type: str, signal_at: int) -> tuple[bool, Any]:
    """A worker's answer: ``(True, {kind: Arrow IPC})`` or ``(False, the InputError's text)``.

    Plain values only: a result that pickles the same in every version, and no exception class
    to rebuild on the other side."""
    try:
        tables = parse_body(body, content_type, SIGNALS[signal_at])
    except InputError as exc:
        return False, str(exc)
    return True, {kind: _ipc(t) for kind, t in tables.items()}


def _ready() -> None:
    """A worker's first job: it has imported this module (the parser) by the time it runs."""


class BadBody(Exception):
    """A body a worker refused; the message is the parser's one line (it names the field)."""


class ParsePool:
    """Parses export bodies in ``workers`` processes; ``workers=0`` parses in a thread here.

    Workers are started by ``spawn`` (the serving process has threads and a DuckDB connection,
    which a fork would copy mid-flight). If a worker dies, the pool is replaced and the export is
    answered as a server error the client retries; no export is half-parsed into the store.
    """

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._pool = self._new_pool() if workers else None

    def _new_pool(self) -> ProcessPoolExecutor:
        pool = ProcessPoolExecutor(self.workers, mp_context=mp.get_context("spawn"))
        for _ in range(self.workers):  # start every worker now, not on the first exports
            pool.submit(_ready)
        return pool

    async def parse(self, body: bytes, content_type: str, signal: Signal) -> dict[str, pa.Table]:
        """Tables of one export; ``InputError``/``BadBody`` when malformed."""
        if self._pool is None:
            return await asyncio.to_thread(parse_body, body, content_type, signal)
        loop = asyncio.get_running_loop()
        pool = self._pool
        try:
            ok, result = await loop.run_in_executor(
                pool, _parse_in_worker, body, content_type, SIGNALS.index(signal)
            )
        except BrokenProcessPool:
            if self._pool is pool:
                self._pool = self._new_pool()
            raise
        if not ok:
            raise BadBody(result)
        return {kind: pa.ipc.open_stream(pa.py_buffer(b)).read_all() for kind, b in result.items()}

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
