"""Process entry points: ``python -m testbed MODULE`` (one module) or ``controller``.

Why listening sockets are inherited: the parent binds ``127.0.0.1:0`` once and hands the file
descriptor down (``TESTBED_FD``), so there is no port race with other programs and a restarted
module serves the *same* port - connections made while it restarts wait in the backlog.
Why a parent watchdog: a module (or an attached controller) exits when its parent dies, so a
killed test run or controller leaves no orphans (``PR_SET_PDEATHSIG`` is tied to the parent
*thread*, which is fragile when the parent spawns from a worker thread).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import uvicorn
from starlette.applications import Starlette

from testbed.config import FD_ENV, load_runtime, load_static

WATCH_PARENT_ENV = "TESTBED_WATCH_PARENT"


async def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        await asyncio.sleep(0.5)
    os.kill(os.getpid(), signal.SIGTERM)  # uvicorn's graceful shutdown flushes telemetry


def with_parent_watch(app: Starlette) -> Starlette:
    """Wrap ``app``'s lifespan so the process stops when its parent goes away."""
    inner: Callable = app.router.lifespan_context
    parent = os.getppid()

    @asynccontextmanager
    async def lifespan(a: Starlette) -> AsyncIterator[None]:
        watcher = asyncio.create_task(_watch_parent(parent))
        try:
            async with inner(a):
                yield
        finally:
            watcher.cancel()

    app.router.lifespan_context = lifespan
    return app


def serve(app: Starlette, fd: int) -> None:
    if os.environ.get(WATCH_PARENT_ENV) == "1":
        app = with_parent_watch(app)
    config = uvicorn.Config(
        app,
        fd=fd,
        log_level="warning",
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=1,
    )
    uvicorn.Server(config).run()


def main(argv: list[str]) -> None:
    if len(argv) != 1:
        sys.exit("usage: python -m testbed MODULE|controller")
    static = load_static()
    fd = int(os.environ[FD_ENV])
    if argv[0] == "controller":
        from testbed.controller import build_controller

        serve(build_controller(static), fd)
    else:
        from testbed.modules import build_app

        serve(build_app(argv[0], static, load_runtime()), fd)


if __name__ == "__main__":
    main(sys.argv[1:])
