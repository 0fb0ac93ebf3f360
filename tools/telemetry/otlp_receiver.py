"""An OTLP/HTTP receiver that writes what it is sent into a ``TelemetryStore``.

Why: any OpenTelemetry SDK or Collector can export to it with the standard OTLP/HTTP exporter
(``POST /v1/traces``, ``/v1/logs``, ``/v1/metrics``; protobuf or JSON, optionally gzip), so the
testbed and a laptop cluster need no Jaeger/Loki/Prometheus to be diagnosed. Protobuf trace
bodies are read column by column (:mod:`tools.telemetry.otlp_protobuf`); JSON bodies, logs and
metrics go through the same walker as OTLP JSON files. Bodies are parsed in a thread, or with
``parse_workers`` in worker processes (:mod:`tools.telemetry.otlp_parse`), so that a busy
receiver leaves the interpreter to the diagnoses served beside it.

An export is acknowledged only once its rows are committed: requests wait on a group commit (one
writer thread writes everything that arrived while the previous transaction ran, so many small
exports become few transactions: the writer never waits for more, it commits what queued while
the previous commit ran), and a failed write answers 503, which the OTLP exporters retry.
So a client that disconnects, or a server that is stopped, never loses an acknowledged export, and
what the clients were told was stored is what the store holds. When more rows wait for the writer
than ``max_pending_rows`` the receiver answers 429 (retryable): memory stays bounded under any
load. A bad body is a 400 naming the field, and nothing of it is stored. It binds loopback unless
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
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Self

import pyarrow as pa
import uvicorn
from google.rpc.status_pb2 import Status
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from tools.core.errors import InputError
from tools.telemetry.otlp_parse import (
    JSON,
    PROTOBUF,
    SIGNALS,
    BadBody,
    ParsePool,
    Signal,
    parse_body,
)
from tools.telemetry.store import TelemetryStore

__all__ = ["SIGNALS", "OtlpReceiver", "parse_body"]

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024 * 1024


class Backlog(Exception):
    """More rows wait for the writer than the receiver may hold: the client should retry."""


class GroupCommit:
    """Writes parsed exports to the store from one thread; each export's future resolves when
    the transaction holding it committed (or failed).

    The writer takes everything queued and, while exports it was told of (:meth:`expecting`)
    are still being parsed and the queue holds less than ``batch_rows``, waits up to
    ``linger_s`` for them; then it writes all of it as one transaction and resolves the futures.
    So a lone exporter is never delayed, and concurrent ones share a transaction instead of
    paying its fixed cost (~10 ms of CPU) each. Rows queued beyond ``max_pending_rows`` are
    refused with :class:`Backlog`.
    """

    def __init__(
        self, store: TelemetryStore, linger_s: float, batch_rows: int, max_pending_rows: int
    ) -> None:
        self.store = store
        self.linger_s = linger_s
        self.batch_rows = batch_rows
        self.max_pending_rows = max_pending_rows
        self.session = uuid.uuid4().hex[:12]
        self._queue: list[tuple[dict[str, pa.Table], Future[None]]] = []
        self._rows = 0
        self._arriving = 0
        self._seq = 0
        self._cond = threading.Condition()
        self._stop = False
        self.written = {"spans": 0, "logs": 0, "metrics": 0}
        self.failed_batches = 0
        self._thread = threading.Thread(target=self._loop, name="otlp-writer", daemon=True)
        self._thread.start()

    @contextlib.contextmanager
    def expecting(self) -> Iterator[None]:
        """An export is on its way (being parsed); submit it inside the block."""
        with self._cond:
            self._arriving += 1
        try:
            yield
        finally:
            with self._cond:
                self._arriving -= 1
                self._cond.notify()

    def submit(self, tables: dict[str, pa.Table]) -> Future[None]:
        """Queue one export; the future is done once it is committed."""
        fut: Future[None] = Future()
        rows = sum(t.num_rows for t in tables.values())
        if rows == 0:
            fut.set_result(None)
            return fut
        with self._cond:
            if self._stop:
                raise Backlog("the receiver is stopping")
            if self._rows and self._rows + rows > self.max_pending_rows:
                raise Backlog(f"{self._rows} rows wait for the store writer")
            self._queue.append((tables, fut))
            self._rows += rows
            self._cond.notify()
        return fut

    def flush(self) -> None:
        """Wait until everything submitted so far is committed."""
        with self._cond:
            waiting = [f for _, f in self._queue]
        for f in waiting:
            with contextlib.suppress(Exception):
                f.result()

    def _take(self) -> list[tuple[dict[str, pa.Table], Future[None]]] | None:
        with self._cond:
            self._cond.wait_for(lambda: self._stop or self._queue)
            if not self._queue:
                return None
            if not self._stop and self._rows < self.batch_rows and self._arriving:
                self._cond.wait_for(
                    lambda: self._stop or self._rows >= self.batch_rows or not self._arriving,
                    self.linger_s,
                )
            batch, self._queue, self._rows = self._queue, [], 0
            return batch

    def _loop(self) -> None:
        while (batch := self._take()) is not None:
            self._commit(batch)

    def _commit(self, batch: list[tuple[dict[str, pa.Table], Future[None]]]) -> None:
        by_kind: dict[str, list[pa.Table]] = {}
        for tables, _ in batch:
            for kind, table in tables.items():
                by_kind.setdefault(kind, []).append(table)
        self._seq += 1
        source = f"otlp-receiver:{self.session}:{self._seq}"
        try:
            totals = self.store.insert_many(
                [(k, pa.concat_tables(ts), source) for k, ts in by_kind.items()]
            )
        except Exception as exc:  # the receiver keeps serving; the clients are told to retry
            self.failed_batches += 1
            log.exception("OTLP receiver: writing batch %s to the store failed", source)
            for _, fut in batch:
                fut.set_exception(exc)
            return
        for kind, n in totals.items():
            self.written[kind] += n
        for _, fut in batch:
            fut.set_result(None)

    def close(self) -> None:
        """Commit what is queued, then stop the writer."""
        with self._cond:
            self._stop = True
            self._cond.notify()
        self._thread.join()


class OtlpReceiver:
    """OTLP/HTTP on ``http://host:port`` into ``store``; ``port=0`` picks a free port.

    Use as a context manager (or ``start()``/``stop()``); ``flush()`` waits until everything
    received so far is in the store. ``serve_forever()`` blocks (for a CLI). ``routes`` are the
    three endpoints, for a server that serves more than OTLP on the same port (``tamo serve``).
    """

    def __init__(
        self,
        store: TelemetryStore,
        host: str = "127.0.0.1",
        port: int = 4318,
        *,
        flush_interval_s: float = 0.02,
        max_batch_rows: int = 50_000,
        max_pending_rows: int = 500_000,
        parse_workers: int = 0,
        bind: bool = True,
    ) -> None:
        self.store = store
        self.host = host
        self._sock: socket.socket | None = None
        self.port = port
        if bind:
            self._sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._sock.bind((host, port))
            self.port = int(self._sock.getsockname()[1])
        self._writer = GroupCommit(store, flush_interval_s, max_batch_rows, max_pending_rows)
        self._parser = ParsePool(parse_workers)
        self.rejected = 0
        self.routes = [Route(s.path, self._endpoint(s), methods=["POST"]) for s in SIGNALS]
        self.app = Starlette(routes=self.routes)
        config = uvicorn.Config(self.app, log_level="warning", lifespan="off", access_log=False)
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def written(self) -> dict[str, int]:
        """Rows committed to the store so far, per kind."""
        return dict(self._writer.written)

    def _endpoint(self, signal: Signal) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Response:
            ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
            if ctype not in (PROTOBUF, JSON):
                self.rejected += 1
                return _error(415, f"unsupported content type {ctype!r}", JSON)
            try:
                body = await request.body()
            except ClientDisconnect:  # nothing of it was parsed, nothing is stored
                return Response(status_code=499)
            try:
                body = _decompress(body, request.headers.get("content-encoding", ""))
                if len(body) > MAX_BODY_BYTES:
                    raise InputError(f"body over {MAX_BODY_BYTES} bytes", path="request body")
                with self._writer.expecting():
                    tables = await self._parser.parse(body, ctype, signal)
                    committed = self._writer.submit(tables)
            except (InputError, BadBody) as exc:
                self.rejected += 1
                return _error(400, str(exc), ctype)
            except BrokenProcessPool:  # a parse worker died: nothing of it reached the store
                return _error(503, "parser restarting; retry", ctype)
            except Backlog as exc:
                return _error(429, f"busy: {exc}; retry", ctype, retry_after="1")
            try:
                await asyncio.wrap_future(committed)
            except Exception as exc:  # the write failed: nothing was acknowledged
                return _error(503, f"store write failed: {type(exc).__name__}; retry", ctype)
            if ctype == PROTOBUF:
                return Response(signal.response().SerializeToString(), media_type=PROTOBUF)
            return Response("{}", media_type=JSON)

        return endpoint

    def flush(self) -> None:
        self._writer.flush()

    def close(self) -> None:
        """Commit what is queued and stop the writer and the parsers (after the HTTP server
        stopped)."""
        self._writer.close()
        self._parser.close()

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
        assert self._sock is not None, "a receiver built with bind=False is served by its host"
        asyncio.run(self._server.serve(sockets=[self._sock]))

    def serve_forever(self) -> None:
        try:
            self._run()
        finally:
            self.close()

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.close()
        if self._sock is not None:
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


def _error(status: int, message: str, ctype: str, retry_after: str | None = None) -> Response:
    """An OTLP error response: a ``google.rpc.Status`` in the request's encoding."""
    code = {400: 3, 415: 3, 429: 8, 503: 14}[status]  # INVALID_ARGUMENT, RESOURCE_EXHAUSTED, ...
    headers = {"retry-after": retry_after} if retry_after else None
    if ctype == PROTOBUF:
        body = Status(code=code, message=message).SerializeToString()
        return Response(body, status, headers=headers, media_type=PROTOBUF)
    return Response(
        json.dumps({"code": code, "message": message}), status, headers=headers, media_type=JSON
    )
