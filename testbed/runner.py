"""Process bodies: the controller (``python -m testbed controller``) and a module process.

Why listening sockets are inherited: the parent binds ``127.0.0.1:0`` once and hands the socket
down (an fd in ``TESTBED_FD`` for the controller, the socket object for a module), so there is
no port race with other programs and a restarted module serves the *same* port - connections
made while it restarts wait in the backlog.
Why a watchdog: a module exits when the controller dies and an attached controller exits when
its parent dies, so a killed test run or controller leaves no orphans (``PR_SET_PDEATHSIG`` is
tied to the parent *thread*, which is fragile when the parent spawns from a worker thread).
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import uvicorn
from starlette.applications import Starlette

from testbed.config import FD_ENV, RuntimeConfig, StaticConfig, load_static

WATCH_PARENT_ENV = "TESTBED_WATCH_PARENT"


def alive(pid: int) -> bool:
    """Whether ``pid`` runs; a zombie (exited, not yet reaped) counts as gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:  # no procfs: fall back to a signal-0 probe
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


async def _watch(pid: int) -> None:
    while alive(pid):
        await asyncio.sleep(0.5)
    os.kill(os.getpid(), signal.SIGTERM)  # uvicorn's graceful shutdown flushes telemetry


def with_watchdog(app: Starlette, pid: int) -> Starlette:
    """Wrap ``app``'s lifespan so the process stops when process ``pid`` is gone."""
    inner: Callable = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(a: Starlette) -> AsyncIterator[None]:
        watcher = asyncio.create_task(_watch(pid))
        try:
            async with inner(a):
                yield
        finally:
            watcher.cancel()

    app.router.lifespan_context = lifespan
    return app


def serve(app: Starlette, fd: int, watch_pid: int | None, grace_s: float) -> None:
    """Serve ``app`` on the inherited socket; on SIGTERM, requests still running after
    ``grace_s`` are cancelled (a hung request would otherwise hold a restart for its whole hang)."""
    if watch_pid is not None:
        app = with_watchdog(app, watch_pid)
    config = uvicorn.Config(
        app,
        fd=fd,
        log_level="warning",
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=grace_s,  # type: ignore[arg-type]  # a float works
    )
    uvicorn.Server(config).run()


def run_module(
    module: str,
    static_json: str,
    runtime_json: str,
    sock: socket.socket,
    stderr_path: str,
    controller_pid: int,
) -> None:
    """Body of a module process forked by the controller's fork server.

    It watches the *controller*, not its parent: the fork server outlives the controller as
    long as any module holds its liveness pipe, so watching the parent would never fire.
    """
    err = os.open(stderr_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.dup2(err, 2)
    os.close(err)
    from testbed.modules import build_app

    static = StaticConfig.model_validate_json(static_json)
    runtime = RuntimeConfig.model_validate_json(runtime_json)
    serve(build_app(module, static, runtime), sock.fileno(), controller_pid, grace_s=0.3)


def main(argv: list[str]) -> None:
    if argv != ["controller"]:
        sys.exit("usage: python -m testbed controller")
    from testbed.controller import build_controller

    watch = os.getppid() if os.environ.get(WATCH_PARENT_ENV) == "1" else None
    serve(build_controller(load_static()), int(os.environ[FD_ENV]), watch, grace_s=5.0)


if __name__ == "__main__":
    main(sys.argv[1:])
