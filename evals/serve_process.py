"""``tamo serve`` as a real child process on a free loopback port (the tests and the serve bench).

Why a process: what is under test is the contract a user relies on — the one line printed once
connections are accepted, the server file other commands discover, a clean exit on SIGTERM — and
that every other command, itself a separate process, works beside it.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Self

REPO = Path(__file__).resolve().parents[1]
_URL = re.compile(r"OTLP/HTTP (http://\S+?)/v1/")


def tamo_env(data_dir: Path) -> dict[str, str]:
    """The environment of a ``tamo`` child: this checkout first, its own data dir, no LLM."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAMO_")}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["TAMO_DATA_DIR"] = str(data_dir)
    return env


def tamo(data_dir: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tamo.main", *args],
        env=tamo_env(data_dir),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
    )


class ServeProcess:
    """``tamo serve --port 0`` in ``data_dir``; ``url`` once it printed that it accepts."""

    def __init__(self, data_dir: Path, *extra: str) -> None:
        self.data_dir = data_dir
        self.extra = extra
        self.url = ""
        self.output: list[str] = []
        self.proc: subprocess.Popen[str] | None = None

    def start(self, timeout: float = 240) -> Self:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tamo.main", "serve", "--port", "0", *self.extra],
            env=tamo_env(self.data_dir),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=REPO,
        )
        ready = threading.Event()

        def read() -> None:
            assert self.proc is not None and self.proc.stdout is not None
            for line in self.proc.stdout:
                self.output.append(line)
                m = _URL.search(line)
                if m and not self.url:
                    self.url = m.group(1)
                    ready.set()
            ready.set()

        threading.Thread(target=read, daemon=True).start()
        deadline = time.monotonic() + timeout
        while not ready.wait(0.2):
            if time.monotonic() > deadline:
                self.kill()
                raise AssertionError(f"tamo serve did not start: {''.join(self.output)}")
        if not self.url:
            raise AssertionError(f"tamo serve exited: {''.join(self.output)}")
        return self

    @property
    def server_file(self) -> Path:
        return self.data_dir / "telemetry.duckdb.server.json"

    def server_info(self) -> dict[str, object]:
        return dict(json.loads(self.server_file.read_text()))

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM, then the exit code."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.kill()
