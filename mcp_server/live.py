"""Live mode's one process: OTLP/HTTP receiver, MCP over streamable HTTP and the store API on one
port, over one embedded store.

Why one process: DuckDB allows one writer per file and no reader beside it, so the process that
receives telemetry must also be the one that answers about it. Here the receiver commits exports
while MCP tools and ``/api`` readers query the same store through their own cursors (MVCC), and
every other ``tamo`` command reaches it through the server file
(:mod:`tools.telemetry.store_client`). Retention runs in the same process for the same reason.

Auth: MCP and ``/api`` need the bearer token when one is configured, and a token is mandatory off
loopback (:func:`mcp_server.auth.http_auth`); OTLP ingest is open on loopback like a Collector's.
"""

from __future__ import annotations

import hmac
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from mcp_server.auth import http_auth
from mcp_server.server import build_server
from tools.telemetry.otlp_receiver import OtlpReceiver
from tools.telemetry.store import TelemetryStore
from tools.telemetry.store_api import store_routes
from tools.toolbox.context import ToolContext

log = logging.getLogger(__name__)


@dataclass
class Retention:
    """Keep ``keep_s`` seconds of telemetry; prune (and checkpoint) every ``every_s``."""

    keep_s: float | None
    every_s: float = 60.0
    pruned_rows: int = 0
    _halt: threading.Event = field(default_factory=threading.Event)

    def run(self, store: TelemetryStore) -> threading.Thread | None:
        if self.keep_s is None:
            return None

        def loop() -> None:
            while not self._halt.wait(self.every_s):
                cutoff = time.time_ns() - int(self.keep_s * 1e9)  # type: ignore[operator]
                try:
                    self.pruned_rows += store.prune(cutoff)
                except Exception:  # retention must never stop the server; it retries next round
                    log.exception("retention: pruning the store failed")

        t = threading.Thread(target=loop, name="tamo-retention", daemon=True)
        t.start()
        return t

    def stop(self) -> None:
        self._halt.set()


class BearerGuard:
    """ASGI wrapper: requests under ``prefixes`` need ``Authorization: Bearer <token>``."""

    def __init__(self, app: ASGIApp, token: str | None, prefixes: tuple[str, ...]) -> None:
        self.app = app
        self._expected = token.encode() if token else None
        self.prefixes = prefixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            self._expected is not None
            and scope["type"] == "http"
            and str(scope["path"]).startswith(self.prefixes)
        ):
            headers = dict(scope.get("headers") or [])
            given = headers.get(b"authorization", b"").removeprefix(b"Bearer ")
            if not hmac.compare_digest(given, self._expected):
                deny = JSONResponse({"error": "missing or wrong bearer token"}, status_code=401)
                await deny(scope, receive, send)
                return
        await self.app(scope, receive, send)


class OtlpFirst:
    """ASGI: OTLP exports go straight to the receiver's own small app, the rest to ``rest``.

    Why: an export is the one request that comes tens of times a second; the MCP app's
    middleware stack (session context, error pages, a router of every route) cost about a third
    of the serving process's time per export, for nothing an export needs."""

    def __init__(self, otlp: ASGIApp, paths: frozenset[str], rest: ASGIApp) -> None:
        self.otlp, self.paths, self.rest = otlp, paths, rest

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] in self.paths:
            await self.otlp(scope, receive, send)
        else:
            await self.rest(scope, receive, send)


@dataclass
class LiveServer:
    """The composed ASGI app and the parts it owns (the caller runs it with uvicorn)."""

    app: ASGIApp
    receiver: OtlpReceiver
    retention: Retention

    def close(self) -> None:
        """After the HTTP server stopped: commit what was acknowledged, stop retention."""
        self.retention.stop()
        self.receiver.close()


def build_live_server(
    store: TelemetryStore,
    ctx: ToolContext,
    *,
    host: str,
    port: int,
    token: str | None,
    retention: Retention,
    parse_workers: int = 0,
) -> LiveServer:
    """The app serving ``/v1/{traces,logs,metrics}``, ``/mcp`` and ``/api`` over ``store``;
    ``parse_workers`` processes parse OTLP bodies (0: a thread of this process)."""
    auth = http_auth(host, token)  # refuses off loopback without a token
    receiver = OtlpReceiver(store, host, port, parse_workers=parse_workers, bind=False)
    mcp_app = build_server(ctx, auth).http_app(path="/mcp")
    info: dict[str, Any] = {"service": "tamo serve", "store": str(store.path)}
    mcp_app.router.routes[:0] = store_routes(store, server_info=info)
    retention.run(store)
    guarded = BearerGuard(mcp_app, token, ("/api/store",))
    otlp_paths = frozenset(str(r.path) for r in receiver.routes)
    return LiveServer(OtlpFirst(receiver.app, otlp_paths, guarded), receiver, retention)
