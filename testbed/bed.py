"""``Testbed``: start the whole platform, wait until healthy, hand out URLs, stop without orphans.

Why the controller runs in its own session: ``stop()`` first asks it to shut down gracefully
(SIGTERM: it stops every module, which flush their telemetry), then kills the whole process
group, so nothing survives even if the controller is wedged. An attached testbed also dies with
its parent (see ``runner.py``); a detached one (``tamo testbed up``) records its pid and URL in
``<workdir>/testbed.json`` so that another command can reach or stop it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from testbed.catalog import CATALOG_FILE, publish
from testbed.client import TestbedClient, TestbedError
from testbed.config import REDIS_URL_ENV, StaticConfig
from testbed.controller import bind_loopback, child_env
from testbed.load import LoadReport, run_load_sync
from testbed.runner import WATCH_PARENT_ENV, alive
from testbed.state import open_store, state_location

STATE_FILE = "testbed.json"


class Testbed:
    """The running platform. Use as a context manager or call :meth:`start` / :meth:`stop`."""

    __test__ = False

    def __init__(
        self,
        workdir: Path,
        *,
        otlp_endpoint: str | None = None,
        spans_jsonl: bool = True,
        sample_ratio: float = 1.0,
        slow_ms: float = 1000.0,
        infer_timeout_s: float = 1.0,
        max_dispatches: int = 4,
        start_timeout_s: float = 60.0,
        redis_url: str | None = None,
    ) -> None:
        self.static = StaticConfig(
            workdir=Path(workdir).resolve(),
            otlp_endpoint=otlp_endpoint,
            spans_jsonl=spans_jsonl,
            sample_ratio=sample_ratio,
            slow_ms=slow_ms,
            infer_timeout_s=infer_timeout_s,
            max_dispatches=max_dispatches,
            redis_url=redis_url or os.environ.get(REDIS_URL_ENV) or None,
        )
        self.start_timeout_s = start_timeout_s
        self._proc: subprocess.Popen | None = None
        self._control_url: str | None = None
        self._urls: dict[str, str] = {}
        self._client: TestbedClient | None = None

    # --- lifecycle -----------------------------------------------------------------------------

    def start(self, *, detach: bool = False) -> Testbed:
        """Start the controller (which starts every module) and wait until all are healthy."""
        if self._proc is not None:
            raise TestbedError("testbed already started")
        workdir = self.static.workdir
        workdir.mkdir(parents=True, exist_ok=True)
        publish(self.catalog_path)  # what it can suffer, as data for whoever diagnoses it
        self.static.log_dir.mkdir(parents=True, exist_ok=True)
        open_store(self.static).close()  # an unreachable state backend fails here, by name
        sock = bind_loopback()
        fd = sock.fileno()
        env = child_env(self.static, fd, {WATCH_PARENT_ENV: "0" if detach else "1"})
        with (self.static.log_dir / "controller.stderr.log").open("ab") as err:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "testbed", "controller"],
                env=env,
                pass_fds=(fd,),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
                start_new_session=True,
            )
        self._control_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        sock.close()  # the controller holds its own copy of the listening socket
        try:
            self._wait_healthy()
        except BaseException:
            self.stop()
            raise
        if detach:
            (workdir / STATE_FILE).write_text(json.dumps(self.describe(), indent=2))
        return self

    def _wait_healthy(self) -> None:
        assert self._proc is not None and self._control_url is not None
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                tail = (self.static.log_dir / "controller.stderr.log").read_text()[-1500:]
                raise TestbedError(
                    f"controller exited with {self._proc.returncode}: {tail}", url=self._control_url
                )
            try:
                resp = httpx.get(self._control_url + "/health", timeout=1.0)
                if resp.status_code == 200 and resp.json()["ok"]:
                    self._urls = {m: v["url"] for m, v in resp.json()["modules"].items()}
                    self._client = TestbedClient(self._control_url)
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise TestbedError(f"not healthy after {self.start_timeout_s:.0f}s", url=self._control_url)

    def stop(self) -> None:
        """Graceful stop (modules flush telemetry), then kill whatever is left of the group."""
        if self._client is not None:
            self._client.close()
            self._client = None
        proc, self._proc = self._proc, None
        if proc is not None:
            stop_group(proc.pid, proc)
        (self.static.workdir / STATE_FILE).unlink(missing_ok=True)

    def __enter__(self) -> Testbed:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --- where things are ----------------------------------------------------------------------

    @property
    def control_url(self) -> str:
        if self._control_url is None:
            raise TestbedError("testbed not started")
        return self._control_url

    @property
    def urls(self) -> dict[str, str]:
        """Module name -> base URL (each serves ``/health`` and ``/metrics``)."""
        return dict(self._urls)

    @property
    def router_url(self) -> str:
        return self._urls["AgentRouter"]

    @property
    def metrics_targets(self) -> list[str]:
        """``host:port`` of every module, for a Prometheus scrape config."""
        return [u.removeprefix("http://") for u in self._urls.values()]

    @property
    def client(self) -> TestbedClient:
        if self._client is None:
            raise TestbedError("testbed not started")
        return self._client

    @property
    def log_dir(self) -> Path:
        return self.static.log_dir

    @property
    def spans_dir(self) -> Path:
        return self.static.spans_dir

    @property
    def catalog_path(self) -> Path:
        """The published fault catalogue (``tools.core.fault_catalog`` schema)."""
        return self.static.workdir / CATALOG_FILE

    def describe(self) -> dict[str, Any]:
        return {
            "control_url": self.control_url,
            "pid": self._proc.pid if self._proc else None,
            "urls": self.urls,
            "workdir": str(self.static.workdir),
            "log_dir": str(self.log_dir),
            "spans_dir": str(self.spans_dir),
            "fault_catalog": str(self.catalog_path),
            "otlp_endpoint": self.static.otlp_endpoint,
            "state": state_location(self.static),
        }

    # --- convenience ---------------------------------------------------------------------------

    def submit(self, prompt: str = "hello", task_id: str | None = None) -> dict[str, Any]:
        """Run one task synchronously through AgentRouter; returns its JSON answer."""
        body: dict[str, Any] = {"prompt": prompt}
        if task_id:
            body["task_id"] = task_id
        return httpx.post(self.router_url + "/tasks", json=body, timeout=30.0).json()

    def load(self, rate: float = 20.0, duration_s: float = 5.0, **kwargs: Any) -> LoadReport:
        """Run the load generator against this testbed (blocking)."""
        return run_load_sync(self.router_url, rate=rate, duration_s=duration_s, **kwargs)


def stop_group(pid: int, proc: subprocess.Popen | None = None, grace_s: float = 10.0) -> None:
    """SIGTERM the controller ``pid``, wait ``grace_s``, then SIGKILL its process group."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if proc is not None:
            if proc.poll() is not None:
                break
        elif not _alive(pid):
            break
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)  # the controller is its group's leader
    if proc is not None:
        proc.wait()


def _alive(pid: int) -> bool:
    """Whether ``pid`` still runs (a child of ours that exited is reaped, not counted)."""
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass  # not our child: its own parent reaps it
    return alive(pid)


def attach(workdir: Path) -> dict[str, Any]:
    """The description written by a detached :meth:`Testbed.start` in ``workdir``."""
    path = Path(workdir) / STATE_FILE
    if not path.exists():
        raise TestbedError(f"no testbed running from {workdir} ({path} not found)")
    return json.loads(path.read_text())
