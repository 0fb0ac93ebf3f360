"""A load generator: tasks at a fixed rate for a fixed time, bounded concurrency, then stop.

Why open-loop with a cap: a fixed arrival rate shows latency growth when a module hangs (a
closed loop would just slow down), while the concurrency cap keeps a hung testbed from piling up
unbounded requests. The run always ends: nothing is sent after ``duration_s`` and every request
has its own timeout.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

PROMPTS = (
    "summarise the incident report for the payments cluster",
    "translate the customer email into English and draft a reply",
    "classify this support ticket and route it to the right team",
    "extract the invoice fields and check them against the order",
)


@dataclass
class TaskResult:
    task_id: str
    http_status: int  # 0: no answer (timeout or connection error)
    status: str  # "success" | "failed" | "error"
    error_code: str
    latency_s: float
    trace_id: str


@dataclass
class LoadReport:
    duration_s: float
    results: list[TaskResult] = field(default_factory=list)
    skipped: int = 0  # arrivals dropped because ``concurrency`` requests were in flight

    @property
    def sent(self) -> int:
        return len(self.results)

    @property
    def succeeded(self) -> int:
        return sum(r.status == "success" for r in self.results)

    @property
    def failure_rate(self) -> float:
        return 1.0 - self.succeeded / self.sent if self.sent else 0.0

    def latency_quantile(self, q: float) -> float:
        lat = sorted(r.latency_s for r in self.results)
        if not lat:
            return 0.0
        if len(lat) == 1:
            return lat[0]
        return statistics.quantiles(lat, n=100, method="inclusive")[round(q * 100) - 1]

    def summary(self) -> dict[str, Any]:
        return {
            "sent": self.sent,
            "succeeded": self.succeeded,
            "failure_rate": round(self.failure_rate, 4),
            "p50_s": round(self.latency_quantile(0.5), 4),
            "p95_s": round(self.latency_quantile(0.95), 4),
            "error_codes": dict(Counter(r.error_code for r in self.results if r.error_code)),
            "skipped": self.skipped,
            "duration_s": round(self.duration_s, 2),
        }


async def _one(client: httpx.AsyncClient, url: str, task_id: str, prompt: str) -> TaskResult:
    started = time.perf_counter()
    try:
        resp = await client.post(url, json={"task_id": task_id, "prompt": prompt})
        body = resp.json()
        return TaskResult(
            task_id,
            resp.status_code,
            str(body.get("status", "failed")),
            str(body.get("error_code", "")),
            time.perf_counter() - started,
            str(body.get("trace_id", "")),
        )
    except (httpx.HTTPError, ValueError) as exc:
        return TaskResult(
            task_id, 0, "error", type(exc).__name__, time.perf_counter() - started, ""
        )


async def run_load(
    router_url: str,
    *,
    rate: float = 20.0,
    duration_s: float = 5.0,
    concurrency: int = 64,
    timeout_s: float = 15.0,
    prefix: str | None = None,
) -> LoadReport:
    """POST ``rate`` tasks per second to ``router_url``/tasks for ``duration_s`` seconds."""
    if rate <= 0 or duration_s <= 0 or concurrency <= 0:
        raise ValueError("rate, duration_s and concurrency must be positive")
    prefix = prefix or f"load-{os.urandom(3).hex()}"
    url = router_url.rstrip("/") + "/tasks"
    report = LoadReport(duration_s=0.0)
    in_flight: set[asyncio.Task[TaskResult]] = set()

    def done(task: asyncio.Task[TaskResult]) -> None:
        in_flight.discard(task)
        report.results.append(task.result())

    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(timeout=timeout_s, limits=limits) as client:
        start = time.perf_counter()
        n = 0
        while (due := n / rate) < duration_s:
            await asyncio.sleep(max(0.0, start + due - time.perf_counter()))
            if len(in_flight) >= concurrency:
                report.skipped += 1
            else:
                task = asyncio.create_task(
                    _one(client, url, f"{prefix}-{n:05d}", PROMPTS[n % len(PROMPTS)])
                )
                in_flight.add(task)
                task.add_done_callback(done)
            n += 1
        if in_flight:
            await asyncio.wait(set(in_flight))
        report.duration_s = time.perf_counter() - start
    return report


def run_load_sync(router_url: str, **kwargs: Any) -> LoadReport:
    """:func:`run_load` from synchronous code (not from inside a running event loop)."""
    return asyncio.run(run_load(router_url, **kwargs))


class OpenLoopLoad(threading.Thread):
    """Open-loop load: a new one-second burst every second, so a hang cannot stall arrivals."""

    def __init__(self, router_url: str, rate: float, prefix: str = "demo") -> None:
        super().__init__(name="load", daemon=True)
        self.url, self.rate, self.prefix = router_url, rate, prefix
        self.halt = threading.Event()

    def run(self) -> None:
        n = 0
        while not self.halt.is_set():
            kwargs = {
                "rate": self.rate,
                "duration_s": 1.0,
                "prefix": f"{self.prefix}-{n:04d}",
                "timeout_s": 15.0,
            }
            threading.Thread(
                target=run_load_sync, args=(self.url,), kwargs=kwargs, daemon=True
            ).start()
            n += 1
            self.halt.wait(1.0)

    def stop(self) -> None:
        self.halt.set()
