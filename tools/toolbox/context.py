"""The investigation context every tool runs in: sources, default scope, caches, links.

Why one object: a tool called by the agent, by an MCP client or by the CLI needs the same things —
the trace/log/metric sources (the embedded store or real backends), the incident it is scoped to
when the caller gives no window, the fused tensor that several learned tools share (computed once
per incident, not once per call), the repair plans proposed so far, and how to turn an id into a
link a person can open. The MCP server calls tools from worker threads, so shared caches are
guarded by a lock.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict, deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode

from tools.core.settings import Settings, get_settings
from tools.telemetry.model import CaseTelemetry, Incident, TimeWindow
from tools.telemetry.sources import LogSource, MetricSource, TraceSource

DEFAULT_LOOKBACK = timedelta(minutes=15)
# Cache keys of results computed from one window's telemetry (the rest — models, repair setup,
# plans, the investigator — outlive an incident).
WINDOW_KEYS = ("fused:", "ranking:", "fault:", "traces:")


@dataclass
class Links:
    """Turns ids and queries into links: the configured UI when there is one, else ``tamo://``."""

    jaeger_url: str | None = None
    prometheus_url: str | None = None
    loki_url: str | None = None

    def trace(self, trace_id: str) -> str:
        if self.jaeger_url:
            return f"{self.jaeger_url.rstrip('/')}/trace/{trace_id}"
        return f"tamo://trace/{trace_id}"

    def promql(self, expr: str, window: TimeWindow) -> str:
        if self.prometheus_url:
            q = urlencode({"g0.expr": expr, "g0.range_input": f"{int(window.seconds)}s"})
            return f"{self.prometheus_url.rstrip('/')}/graph?{q}"
        return f"tamo://metrics?query={quote(expr)}&start={window.start_ns}&end={window.end_ns}"

    def logs(self, service: str | None, ts_ns: int, query: str | None = None) -> str:
        params = {"service": service or "", "ts": str(ts_ns)}
        if query:
            params["q"] = query
        return f"tamo://logs?{urlencode(params)}"


# Computed results a context keeps (least recently used go first): about two diagnoses' worth of
# per-window results (fused data, trace analyses, rankings), plus models and the investigator,
# which every diagnosis touches. ``remember``ed values are never evicted.
MAX_CACHED = 12


@dataclass
class ToolContext:
    """Sources plus per-investigation state shared by the tools of one server or agent run."""

    traces: TraceSource
    logs: LogSource
    metrics: MetricSource
    settings: Settings = field(default_factory=get_settings)
    incident: Incident | None = None
    case: CaseTelemetry | None = None
    links: Links = field(default_factory=Links)
    recent_reports: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=20))
    _cache: dict[str, Any] = field(default_factory=dict)
    _computed: OrderedDict[str, None] = field(default_factory=OrderedDict)  # LRU of cached()
    _pending: dict[str, Future[Any]] = field(default_factory=dict)
    _pool: ThreadPoolExecutor | None = None
    _lock: threading.RLock = field(default_factory=threading.RLock)

    @classmethod
    def from_settings(
        cls, settings: Settings | None = None, store: TraceSource | None = None
    ) -> ToolContext:
        """Sources from configured backends, each falling back to the embedded store (``store``
        when given: the one ``tamo serve`` owns)."""
        from tools.telemetry.backends import sources_from_settings

        settings = settings or get_settings()
        traces, logs, metrics = sources_from_settings(settings, store)  # type: ignore[arg-type]
        b = settings.backends
        links = Links(b.jaeger_url, b.prometheus_url, b.loki_url)
        return cls(traces, logs, metrics, settings=settings, links=links)

    @classmethod
    def from_case(cls, ct: CaseTelemetry, settings: Settings | None = None) -> ToolContext:
        """An in-memory store of one labelled case, scoped to its abnormal window."""
        from tools.telemetry.store import TelemetryStore

        store = TelemetryStore.from_case(ct)
        c = ct.case
        incident = Incident(
            window=c.window,
            baseline=c.baseline,
            system=c.system,
            task_id=c.case_id,
            question=f"dataset {c.dataset} case {c.case_id}",
        )
        return cls(
            store, store, store, settings=settings or get_settings(), incident=incident, case=ct
        )

    def window(self, start: datetime | None, end: datetime | None) -> TimeWindow:
        """The window of a tool call: explicit bounds, else the incident's, else the last 15 min."""
        if start is None and end is None and self.incident is not None:
            return self.incident.window
        if start is not None and start.tzinfo is None:
            start = start.replace(tzinfo=UTC)
        if end is not None and end.tzinfo is None:
            end = end.replace(tzinfo=UTC)
        end = end or (start + DEFAULT_LOOKBACK if start else datetime.now(UTC))
        return TimeWindow(start=start or end - DEFAULT_LOOKBACK, end=end)

    def services(self, services: list[str] | None) -> list[str] | None:
        if services:
            return services
        if self.incident is not None and self.incident.services:
            return self.incident.services
        return None

    def cached(self, key: str, compute: Callable[[], Any]) -> Any:
        """``compute()`` once per key (the fused tensor is shared by T2, T3 and the report).

        Computed outside the lock: concurrent callers of the same key wait for the one
        computation, callers of other keys are not blocked by it.
        """
        with self._lock:
            if key in self._cache:
                if key in self._computed:
                    self._computed.move_to_end(key)
                return self._cache[key]
            fut = self._pending.get(key)
            owner = fut is None
            if fut is None:
                fut = self._pending[key] = Future()
        if not owner:
            return fut.result()
        try:
            value = compute()
        except BaseException as exc:
            with self._lock:
                self._pending.pop(key, None)
            fut.set_exception(exc)
            raise
        with self._lock:
            self._cache[key] = value
            self._computed[key] = None
            while len(self._computed) > MAX_CACHED:  # a long-lived server diagnoses many windows
                self._cache.pop(self._computed.popitem(last=False)[0], None)
            self._pending.pop(key, None)
        fut.set_result(value)
        return value

    def background(self, fn: Callable[[], Any]) -> None:
        """Start ``fn`` on a worker thread (warming caches); its errors resurface when the
        result is asked for in the foreground, so nothing is lost by ignoring them here."""
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="tamo-warm")
        self._pool.submit(fn)

    def remember(self, key: str, value: Any) -> None:
        with self._lock:
            self._cache[key] = value

    def recall(self, key: str) -> Any:
        with self._lock:
            return self._cache.get(key)

    def file_report(self, investigation_id: str, report: Any) -> None:
        """Keep a finished report (newest first, last 20) for the MCP incidents resources."""
        with self._lock:
            kept = [r for r in self.recent_reports if r["id"] != investigation_id]
            self.recent_reports.clear()
            self.recent_reports.extend(kept)
            self.recent_reports.appendleft(
                {
                    "id": investigation_id,
                    "title": report.title,
                    "priority": report.priority.level,
                    "root_cause": report.analysis.root_cause,
                    "fault_type": report.analysis.fault_type,
                    "at": datetime.now(UTC).isoformat(),
                    "markdown": report.to_markdown(),
                }
            )

    def incident_key(self) -> str:
        """A stable id of the current incident (same window and scope -> same id)."""
        if self.incident is None:
            return "adhoc"
        raw = self.incident.model_dump_json(include={"window", "services", "trace_id", "task_id"})
        return "inc-" + hashlib.sha256(raw.encode()).hexdigest()[:12]

    def scope(self, incident: Incident) -> None:
        """Point the context at a new incident; window-derived results of others are dropped."""
        with self._lock:
            self.incident = incident
            self._cache = {k: v for k, v in self._cache.items() if not k.startswith(WINDOW_KEYS)}
