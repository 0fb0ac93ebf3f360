"""``tamo serve``: live mode's one long-running process (OTLP in, MCP and the store API out).

Why thin: the app is :func:`mcp_server.live.build_live_server`; this module parses options, owns
the lifecycle (open the store, bind, announce, write the server file other commands discover,
stop cleanly on SIGTERM/Ctrl-C: stop accepting, finish requests, commit every acknowledged export,
remove the server file, close the store).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Annotated

import typer

from tamo.console import console
from tamo.ingest_cmd import one_line_errors, store_option
from tools.core.errors import TamoError


def _bind(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise TamoError(f"cannot listen: {exc.strerror or exc}", source=f"{host}:{port}") from None
    return sock


def _exit_cleanly(signum: int, frame: object) -> None:
    raise SystemExit(0)


def default_parse_workers() -> int:
    """One parse process per core beyond the serving one, at most 4 (each holds ~60 MB)."""
    return max(1, min(4, (os.cpu_count() or 1) - 1))


def serve(
    host: str,
    port: int,
    store_path: Path | None,
    token: str | None,
    retention: str | None,
    parse_workers: int | None = None,
    store_memory: str = "256MB",
) -> None:
    """Serve until SIGTERM/SIGINT; see the module docstring."""
    import uvicorn

    from agent.scope import parse_duration
    from mcp_server.live import Retention, build_live_server
    from tools.core.settings import get_settings
    from tools.telemetry.store_client import ServerFile, open_store
    from tools.toolbox.context import ToolContext

    settings = get_settings()
    path = store_path if store_path is not None else settings.store_file
    running = ServerFile.find(path)
    if running is not None:
        raise TamoError(
            f"already served by process {running.pid} at {running.url}", source=str(path)
        )
    keep = parse_duration(retention).total_seconds() if retention else None
    sock = _bind(host, port)
    store = open_store(path)
    from tools.telemetry.store import TelemetryStore

    assert isinstance(store, TelemetryStore)  # no server runs for it (checked above)
    store.limit_memory(store_memory)  # flat memory however long it runs
    bound_port = int(sock.getsockname()[1])
    ctx = ToolContext.from_settings(settings, store)
    live = build_live_server(
        store,
        ctx,
        host=host,
        port=bound_port,
        token=token,
        retention=Retention(keep),
        parse_workers=default_parse_workers() if parse_workers is None else parse_workers,
    )
    url = f"http://{f'[{host}]' if ':' in host else host}:{bound_port}"
    config = uvicorn.Config(live.app, log_level="warning", access_log=False, lifespan="on")
    server_file: list[ServerFile] = []

    class Announcing(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            server_file.append(ServerFile.write(path, url))
            console.print(
                f"tamo serve: OTLP/HTTP {url}/v1/{{traces,logs,metrics}}, MCP {url}/mcp, "
                f"API {url}/api (store {path}, pid {os.getpid()})",
                highlight=False,
                soft_wrap=True,
            )
            sys.stdout.flush()

    # uvicorn shuts down gracefully on SIGTERM and then re-raises it; exiting 0 from that
    # re-raise lets the clean-up below run (the default action would kill the process first)
    signal.signal(signal.SIGTERM, _exit_cleanly)
    try:
        with contextlib.suppress(KeyboardInterrupt, SystemExit):
            Announcing(config).run(sockets=[sock])
    finally:
        live.close()
        for sf in server_file:
            sf.remove()
        counts = store.counts()
        store.close()
        sock.close()
    console.print(
        f"tamo serve stopped: received {live.receiver.written}; store holds "
        + ", ".join(f"{n:,} {k}" for k, n in counts.items()),
        highlight=False,
    )


def register(app: typer.Typer) -> None:
    @app.command("serve")
    def serve_command(
        port: Annotated[int, typer.Option(help="port for OTLP/HTTP, /mcp and /api")] = 4318,
        host: Annotated[str, typer.Option(help="bind address (a token is needed off loopback)")] = (
            "127.0.0.1"
        ),
        store_path: Path | None = store_option(),
        token: Annotated[
            str | None,
            typer.Option(
                envvar="TAMO_MCP_TOKEN", help="bearer token for /mcp and /api", show_default=False
            ),
        ] = None,
        retention: Annotated[
            str | None,
            typer.Option(
                envvar="TAMO_RETENTION",
                help="keep this much telemetry (e.g. 24h, 7d); older is pruned every minute",
            ),
        ] = None,
        parse_workers: Annotated[
            int | None,
            typer.Option(
                min=0,
                help="processes parsing OTLP bodies (0: in the server; default: cores - 1, ≤ 4)",
                show_default=False,
            ),
        ] = None,
        store_memory: Annotated[
            str,
            typer.Option(envvar="TAMO_STORE_MEMORY", help="cap of the store's cache (e.g. 1GB)"),
        ] = "256MB",
    ) -> None:
        """Receive OTLP, serve MCP and the store to every other command, on one port."""
        with one_line_errors():
            serve(host, port, store_path, token, retention, parse_workers, store_memory)
