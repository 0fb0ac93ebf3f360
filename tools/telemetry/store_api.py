"""The store's read (and bulk-write) API over HTTP, served by the process that owns the store.

Why: DuckDB lets one process write a database file, and no other process may even read it
meanwhile. ``tamo serve`` owns the file; every other command reaches the same data through these
routes (:class:`tools.telemetry.store_client.RemoteStore` is the client), so receiving and
answering never collide on the lock. The API is the store's own methods, one route each, with
JSON arguments in and Arrow IPC (tables) or JSON (everything else) out: no second query language
to keep in step. ``POST /api/store/insert`` takes framed Arrow IPC tables and writes them in one
transaction, so ``tamo ingest FILE`` is as atomic through the server as it is on the file.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import networkx as nx
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tools.core.errors import InputError, NotFoundError, TamoError
from tools.telemetry.model import TimeWindow
from tools.telemetry.sources import LogQuery, MetricQuery, TraceQuery
from tools.telemetry.store import TelemetryStore
from tools.telemetry.store_schema import KINDS

ARROW_STREAM = "application/vnd.apache.arrow.stream"
MAX_INSERT_BYTES = 512 * 1024 * 1024


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SpansArgs(_Args):
    query: TraceQuery


class TraceArgs(_Args):
    trace_id: str


class WindowArgs(_Args):
    window: TimeWindow


class LogsArgs(_Args):
    query: LogQuery


class SeriesArgs(_Args):
    query: MetricQuery


class ExtentArgs(_Args):
    kind: str | None = None


class ServicesArgs(_Args):
    window: TimeWindow | None = None


class NoArgs(_Args):
    pass


# method -> the arguments it takes; every read method of the store, nothing else
METHODS: dict[str, type[_Args]] = {
    "spans": SpansArgs,
    "trace": TraceArgs,
    "call_graph": WindowArgs,
    "logs": LogsArgs,
    "series": SeriesArgs,
    "extent": ExtentArgs,
    "counts": NoArgs,
    "sources": NoArgs,
    "services": ServicesArgs,
    "metric_names": NoArgs,
}


def table_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def read_table(data: bytes) -> pa.Table:
    return pa.ipc.open_stream(pa.py_buffer(data)).read_all()


def encode_result(result: Any) -> Response:
    """A store method's result on the wire: tables as Arrow IPC, graphs as node-link JSON."""
    if isinstance(result, pa.Table):
        return Response(table_bytes(result), media_type=ARROW_STREAM)
    if isinstance(result, nx.DiGraph):
        return JSONResponse({"graph": nx.node_link_data(result, edges="edges")})
    if isinstance(result, TimeWindow):
        return JSONResponse({"window": result.model_dump(mode="json")})
    return JSONResponse({"value": result})


def _error(status: int, exc: TamoError | str) -> JSONResponse:
    return JSONResponse({"error": str(exc)}, status_code=status)


def store_routes(store: TelemetryStore, *, server_info: dict[str, Any]) -> list[Route]:
    """The ``/api`` routes over ``store``; ``server_info`` is what ``GET /api/health`` says."""

    def call(method: str) -> Callable[[Request], Any]:
        model = METHODS[method]

        async def endpoint(request: Request) -> Response:
            try:
                raw = await request.body()
                args = model.model_validate_json(raw or b"{}")
            except ValidationError as exc:
                err = exc.errors()[0]
                where = ".".join(str(p) for p in err["loc"]) or "body"
                return _error(400, f"POST /api/store/{method}: {where}: {err['msg']}")
            kwargs = {k: getattr(args, k) for k in type(args).model_fields}
            try:
                result = await run_in_threadpool(getattr(store, method), **kwargs)
            except NotFoundError as exc:
                return _error(404, exc)
            except TamoError as exc:
                return _error(400, exc)
            return encode_result(result)

        return endpoint

    async def insert(request: Request) -> Response:
        try:
            items = json.loads(request.headers.get("x-tamo-items", "[]"))
            body = await request.body()
            if len(body) > MAX_INSERT_BYTES:
                raise InputError(f"body over {MAX_INSERT_BYTES} bytes", path="request body")
            batch = _unframe(items, body)
        except (json.JSONDecodeError, KeyError, TypeError, ValueError, pa.ArrowInvalid) as exc:
            return _error(400, f"POST /api/store/insert: bad framing: {exc}")
        except TamoError as exc:
            return _error(400, exc)
        try:
            totals = await run_in_threadpool(store.insert_many, batch)
        except TamoError as exc:
            return _error(400, exc)
        return JSONResponse({"value": totals})

    async def health(_: Request) -> Response:
        return JSONResponse(server_info)

    routes = [Route(f"/api/store/{m}", call(m), methods=["POST"]) for m in METHODS]
    routes.append(Route("/api/store/insert", insert, methods=["POST"]))
    routes.append(Route("/api/health", health, methods=["GET"]))
    return routes


def frame(items: list[tuple[str, pa.Table, str]]) -> tuple[list[dict[str, Any]], bytes]:
    """``(kind, table, source_id)`` items as a header list and one body (for ``insert``)."""
    header, parts = [], []
    for kind, table, source_id in items:
        data = table_bytes(table)
        header.append({"kind": kind, "source_id": source_id, "bytes": len(data)})
        parts.append(data)
    return header, b"".join(parts)


def _unframe(header: list[dict[str, Any]], body: bytes) -> list[tuple[str, pa.Table, str]]:
    out, at = [], 0
    for item in header:
        kind, source_id, n = str(item["kind"]), str(item["source_id"]), int(item["bytes"])
        if kind not in KINDS:
            raise InputError(f"unknown kind {kind!r}", path="x-tamo-items")
        if n < 0 or at + n > len(body):
            raise ValueError("item lengths exceed the body")
        out.append((kind, read_table(body[at : at + n]), source_id))
        at += n
    if at != len(body):
        raise ValueError("bytes after the last item")
    return out
