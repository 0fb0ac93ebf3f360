"""The controller: supervises the module processes and serves the control API.

Why a separate process: restarting a module must really restart its process, and a testbed
started by ``tamo testbed up`` must outlive the command that started it. The controller owns
the runtime config (faults, model, skip flags) and pushes it to every module after each change,
and to a module it (re)starts. Repair semantics come from ``catalog.FAULTS``: a restart drops the
``process``-scoped faults of the restarted module; ``restore_snapshot`` clears the faults it
``clears``; a model switch or skip flag only *bypasses* faults, which stay injected.

Control API (JSON; errors are ``{"error": ...}`` with 400/404/409):
  GET  /health                       modules up, pids, urls
  GET  /status                       model, skip flags, active faults (effective or bypassed)
  GET  /faults                       the fault catalogue
  POST /faults {"fault", "params"}   inject;  DELETE /faults/{name} and DELETE /faults clear
  POST /modules/{module}/restart     real process restart (same port)
  POST /model {"model": "primary"|"fallback"}
  POST /skip {"module", "skip": bool}
  POST /snapshots/restore {"task_id"?, "step"?}
  POST /tasks/{task_id}/redispatch {"seq_no", "from_step", "recovery_strategy"?}
  GET  /tasks/{task_id}              the task's snapshots
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from testbed.catalog import FAULTS, MODELS, MODULES, SKIPPABLE, Action, fault_entries
from testbed.config import FD_ENV, STATIC_ENV, RuntimeConfig, StaticConfig
from testbed.jsonlog import log_event, setup_logging
from testbed.runner import run_module
from testbed.state import open_store

PACKAGE_ROOT = Path(__file__).resolve().parents[1]


class ControlError(Exception):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def bind_loopback() -> socket.socket:
    """A listening, inheritable socket on a free loopback port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def child_env(static: StaticConfig, fd: int, extra: dict[str, str]) -> dict[str, str]:
    env = dict(os.environ)
    env[STATIC_ENV] = static.model_dump_json()
    env[FD_ENV] = str(fd)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PACKAGE_ROOT), env.get("PYTHONPATH")) if p)
    env.update(extra)
    return env


async def stop_process(proc: BaseProcess, grace_s: float = 3.0) -> None:
    """SIGTERM, then SIGKILL after ``grace_s``; always reaps the process."""
    if proc.exitcode is None:
        proc.terminate()
        deadline = time.monotonic() + grace_s
        while proc.exitcode is None and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        if proc.exitcode is None:
            proc.kill()
    await asyncio.to_thread(proc.join)


@dataclass
class Child:
    module: str
    sock: socket.socket
    proc: BaseProcess | None = None
    restarts: int = 0
    started_at: float = 0.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"


@dataclass
class Supervisor:
    static: StaticConfig
    config: RuntimeConfig = field(default_factory=RuntimeConfig)
    children: dict[str, Child] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.children = {m: Child(m, bind_loopback()) for m in MODULES}
        self.config.urls = {m: c.url for m, c in self.children.items()}
        self.http = httpx.AsyncClient(timeout=5.0)
        self.lock = asyncio.Lock()
        self.logger = setup_logging("controller", self.static.log_dir)
        self.store = open_store(self.static)
        # Modules are forked from a server that imported them once: a start or restart costs
        # milliseconds of CPU instead of a fresh interpreter's second of imports.
        self.mp = multiprocessing.get_context("forkserver")
        self.mp.set_forkserver_preload(["testbed.modules"])

    def audit(self, message: str, **fields: Any) -> None:
        log_event(self.logger, logging.INFO, message, **fields)

    # --- processes ---------------------------------------------------------------------------

    def spawn(self, child: Child) -> None:
        """Start ``child`` as a fresh process forked from the preloaded fork server."""
        self.static.log_dir.mkdir(parents=True, exist_ok=True)
        child.proc = self.mp.Process(
            target=run_module,
            name=child.module,
            args=(
                child.module,
                self.static.model_dump_json(),
                self.config.model_dump_json(),
                child.sock,
                str(self.static.log_dir / f"{child.module}.stderr.log"),
                os.getpid(),
            ),
        )
        child.proc.start()
        child.started_at = time.time()

    async def wait_healthy(self, child: Child, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        assert child.proc is not None
        while time.monotonic() < deadline:
            if child.proc.exitcode is not None:
                tail = (self.static.log_dir / f"{child.module}.stderr.log").read_text()[-800:]
                raise ControlError(f"{child.module} exited with {child.proc.exitcode}: {tail}", 500)
            try:
                resp = await self.http.get(child.url + "/health", timeout=1.0)
                if resp.status_code == 200 and resp.json().get("pid") == child.proc.pid:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.05)
        raise ControlError(f"{child.module} not healthy after {timeout_s:.0f}s", 500)

    async def start_all(self) -> None:
        for child in self.children.values():
            self.spawn(child)
        await asyncio.gather(*(self.wait_healthy(c) for c in self.children.values()))
        self.audit("testbed started", modules={m: c.url for m, c in self.children.items()})

    async def stop_all(self) -> None:
        procs = [c.proc for c in self.children.values() if c.proc is not None]
        await asyncio.gather(*(stop_process(p) for p in procs))
        for child in self.children.values():
            child.sock.close()
        await self.http.aclose()
        self.store.close()

    async def push_config(self) -> None:
        body = self.config.model_dump(mode="json")

        async def put(child: Child) -> None:
            # a module that is down gets the config when it is (re)started
            with contextlib.suppress(httpx.HTTPError):
                await self.http.put(child.url + "/_testbed/config", json=body)

        await asyncio.gather(*(put(c) for c in self.children.values()))

    # --- state views -------------------------------------------------------------------------

    def _in_effect(self, action: Action) -> bool:
        if action.kind == "switch_model":
            return self.config.model == action.arg
        if action.kind == "skip":
            return self.config.skipped(action.arg or "")
        return False

    def fault_status(self) -> list[dict[str, Any]]:
        out = []
        for name in self.config.faults:
            spec = FAULTS[name]
            bypassed = [str(a) for a in spec.bypasses if self._in_effect(a)]
            out.append(
                {
                    "name": name,
                    "target": spec.target,
                    "scope": spec.scope,
                    "params": self.config.fault(name),
                    "effective": not bypassed,
                    "bypassed_by": bypassed,
                }
            )
        return out

    def health(self) -> dict[str, Any]:
        modules = {
            m: {
                "url": c.url,
                "pid": c.proc.pid if c.proc else None,
                "up": c.proc is not None and c.proc.exitcode is None,
                "restarts": c.restarts,
                "started_at": c.started_at,
            }
            for m, c in self.children.items()
        }
        return {"ok": all(v["up"] for v in modules.values()), "modules": modules}

    def status(self) -> dict[str, Any]:
        return {
            **self.health(),
            "model": self.config.model,
            "model_version": MODELS[self.config.model],
            "skip": list(self.config.skip),
            "faults": self.fault_status(),
            "outbox": len(self.store.outbox()),
        }

    # --- actions -----------------------------------------------------------------------------

    async def inject(self, name: str, params: dict[str, float]) -> dict[str, Any]:
        if name not in FAULTS:
            raise ControlError(f"unknown fault {name!r}; faults: {', '.join(FAULTS)}", 404)
        unknown = set(params) - set(FAULTS[name].params)
        if unknown:
            raise ControlError(f"fault {name} has no params {sorted(unknown)}")
        self.config.faults[name] = {k: float(v) for k, v in params.items()}
        await self.push_config()
        self.audit(f"fault injected: {name}", fault=name, params=params, action="inject")
        return self.status()

    async def clear(self, name: str | None) -> dict[str, Any]:
        if name is not None and name not in self.config.faults:
            raise ControlError(f"fault {name!r} is not active", 404)
        cleared = [name] if name else list(self.config.faults)
        for n in cleared:
            del self.config.faults[n]
        await self.push_config()
        self.audit(f"faults cleared: {cleared}", cleared=cleared, action="clear")
        return {"cleared": cleared, **self.status()}

    async def restart(self, module: str) -> dict[str, Any]:
        if module not in self.children:
            raise ControlError(f"unknown module {module!r}; modules: {', '.join(MODULES)}", 404)
        child = self.children[module]
        started = time.monotonic()
        old_pid = child.proc.pid if child.proc else None
        if child.proc is not None:
            await stop_process(child.proc, grace_s=1.0)
        stopped = time.monotonic() - started
        cleared = [
            n
            for n in self.config.faults
            if FAULTS[n].scope == "process" and FAULTS[n].target == module
        ]
        for n in cleared:
            del self.config.faults[n]
        self.spawn(child)
        await self.wait_healthy(child)
        child.restarts += 1
        await self.push_config()
        took = time.monotonic() - started
        self.audit(
            f"restarted {module}",
            target=module,
            action="restart",
            old_pid=old_pid,
            pid=child.proc.pid if child.proc else None,
            cleared=cleared,
            took_s=took,
            stop_s=stopped,
        )
        return {
            "module": module,
            "old_pid": old_pid,
            "pid": child.proc.pid if child.proc else None,
            "restart_s": round(took, 3),
            "stop_s": round(stopped, 3),
            "cleared": cleared,
        }

    async def switch_model(self, model: str) -> dict[str, Any]:
        if model not in MODELS:
            raise ControlError(f"unknown model {model!r}; models: {', '.join(MODELS)}")
        previous = self.config.model
        self.config.model = model  # type: ignore[assignment]
        await self.push_config()
        self.audit(
            f"model switched to {model}", action="switch_model", model=model, previous=previous
        )
        return {"model": model, "model_version": MODELS[model], "previous": previous}

    async def set_skip(self, module: str, skip: bool) -> dict[str, Any]:
        if module not in SKIPPABLE:
            raise ControlError(f"{module!r} cannot be skipped; skippable: {', '.join(SKIPPABLE)}")
        flags = [m for m in self.config.skip if m != module]
        self.config.skip = [*flags, module] if skip else flags
        await self.push_config()
        self.audit(f"skip {module} = {skip}", action="skip", target=module, skip=skip)
        return {"skip": list(self.config.skip)}

    async def restore(self, task_id: str | None, step: int | None) -> dict[str, Any]:
        restored = None
        if task_id is not None:
            router = self.children["AgentRouter"].url
            if step is None:
                snaps = (await self.http.get(f"{router}/tasks/{task_id}")).json()["snapshots"]
                if not snaps:
                    raise ControlError(f"task {task_id} has no snapshot", 404)
                step = max(s["step"] for s in snaps)
            resp = await self.http.post(
                f"{router}/_testbed/restore", json={"task_id": task_id, "step": step}
            )
            if resp.status_code != 200:
                raise ControlError(resp.json().get("error", resp.text), resp.status_code)
            restored = resp.json()
        cleared = [n for n in self.config.faults if Action("restore_snapshot") in FAULTS[n].clears]
        for n in cleared:
            del self.config.faults[n]
        await self.push_config()
        self.audit(
            "snapshot restored",
            action="restore_snapshot",
            task_id=task_id or "",
            step=step,
            cleared=cleared,
        )
        return {"cleared": cleared, "restored": restored}

    async def redispatch(
        self, task_id: str, seq_no: int, from_step: int, strategy: str | None = None
    ) -> tuple[int, dict[str, Any]]:
        router = self.children["AgentRouter"].url
        body = {"task_id": task_id, "seq_no": seq_no, "from_step": from_step}
        if strategy:
            body["recovery_strategy"] = strategy
        resp = await self.http.post(
            f"{router}/tasks",
            json=body,
            timeout=self.static.call_timeout_s * 2,
        )
        self.audit(
            f"re-dispatched {task_id}",
            action="redispatch",
            task_id=task_id,
            seq_no=seq_no,
            from_step=from_step,
            http_status=resp.status_code,
        )
        return resp.status_code, resp.json()


Params = dict[str, str]
Body = dict[str, Any]
Result = dict[str, Any] | tuple[int, dict[str, Any]]


def catalogue(sup: Supervisor) -> dict[str, Any]:
    """The faults exactly as the published catalogue document has them, plus what is active."""
    return {
        "faults": list(fault_entries().values()),
        "active": sup.fault_status(),
    }


async def _task(sup: Supervisor, p: Params, b: Body) -> Result:
    resp = await sup.http.get(f"{sup.children['AgentRouter'].url}/tasks/{p['task_id']}")
    return resp.status_code, resp.json()


async def _redispatch(sup: Supervisor, p: Params, b: Body) -> Result:
    if "seq_no" not in b:
        raise ControlError("seq_no is required (task_id + seq_no make a dispatch idempotent)")
    return await sup.redispatch(
        p["task_id"], int(b["seq_no"]), int(b.get("from_step", 0)), b.get("recovery_strategy")
    )


async def _restore(sup: Supervisor, p: Params, b: Body) -> Result:
    step = b.get("step")
    return await sup.restore(b.get("task_id"), None if step is None else int(step))


async def _health(sup: Supervisor, p: Params, b: Body) -> Result:
    return sup.health()


async def _status(sup: Supervisor, p: Params, b: Body) -> Result:
    return sup.status()


async def _faults(sup: Supervisor, p: Params, b: Body) -> Result:
    return catalogue(sup)


async def _inject(sup: Supervisor, p: Params, b: Body) -> Result:
    return await sup.inject(str(b["fault"]), dict(b.get("params") or {}))


async def _clear(sup: Supervisor, p: Params, b: Body) -> Result:
    return await sup.clear(p.get("name"))


async def _restart(sup: Supervisor, p: Params, b: Body) -> Result:
    return await sup.restart(p["module"])


async def _model(sup: Supervisor, p: Params, b: Body) -> Result:
    return await sup.switch_model(str(b["model"]))


async def _skip(sup: Supervisor, p: Params, b: Body) -> Result:
    return await sup.set_skip(str(b["module"]), bool(b.get("skip", True)))


# (method, path, handler, serialised): mutating actions run one at a time under the lock.
ROUTES = (
    ("GET", "/health", _health, False),
    ("GET", "/status", _status, False),
    ("GET", "/faults", _faults, False),
    ("POST", "/faults", _inject, True),
    ("DELETE", "/faults", _clear, True),
    ("DELETE", "/faults/{name}", _clear, True),
    ("POST", "/modules/{module}/restart", _restart, True),
    ("POST", "/model", _model, True),
    ("POST", "/skip", _skip, True),
    ("POST", "/snapshots/restore", _restore, True),
    ("POST", "/tasks/{task_id}/redispatch", _redispatch, False),
    ("GET", "/tasks/{task_id}", _task, False),
)


async def _body(request: Request) -> Body:
    raw = await request.body()
    if not raw:
        return {}
    try:
        data = await request.json()
    except ValueError as exc:
        raise ControlError(f"request body is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ControlError("request body must be a JSON object")
    return data


def build_controller(static: StaticConfig) -> Starlette:
    """The controller app; the supervisor (and every module) lives as long as its lifespan."""
    holder: list[Supervisor] = []

    def endpoint(handler: Any, serialised: bool) -> Any:
        async def run(request: Request) -> JSONResponse:
            sup = holder[0]
            try:
                args = (sup, dict(request.path_params), await _body(request))
                if serialised:
                    async with sup.lock:
                        result = await handler(*args)
                else:
                    result = await handler(*args)
            except ControlError as exc:
                return JSONResponse({"error": str(exc)}, status_code=exc.status)
            except (KeyError, TypeError, ValueError) as exc:
                return JSONResponse({"error": f"bad request: {exc!r}"}, status_code=400)
            if isinstance(result, tuple):
                return JSONResponse(result[1], status_code=result[0])
            return JSONResponse(result)

        return run

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        sup = Supervisor(static)
        holder.append(sup)
        try:
            await sup.start_all()
            yield
        finally:
            await sup.stop_all()

    routes = [Route(path, endpoint(h, ser), methods=[m]) for m, path, h, ser in ROUTES]
    return Starlette(routes=routes, lifespan=lifespan)
