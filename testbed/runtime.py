"""What every module process shares: its config, signals, HTTP client and the request wrapper.

Why a wrapper: each module's work route gets one SERVER span (the seed's "one span per
module"), with the W3C context extracted from the request headers and injected into every
outgoing call, the same attributes, metrics and log lines, and the same mapping from a failure
to an HTTP error body ``{"error_code", "message", "task_id", "trace_id"}``. The module-specific
behaviour lives in ``modules.py`` as plain async handlers.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer
from starlette.requests import Request
from starlette.responses import JSONResponse

from testbed.catalog import CONTEXT_LOST, FAULTS, UPSTREAM_UNAVAILABLE
from testbed.config import RuntimeConfig, StaticConfig
from testbed.jsonlog import log_event, setup_logging
from testbed.observability import Metrics, setup_tracing
from testbed.state import StateBackend, open_store

CALL_TIMEOUT = "CALL_TIMEOUT"


class ModuleFailure(Exception):
    """A failed request: becomes span status ERROR + ``error_code`` and an HTTP error body."""

    def __init__(self, error_code: str, message: str, status: int = 502) -> None:
        super().__init__(message)
        self.error_code = error_code
        self.message = message
        self.status = status


class CallTimeout(ModuleFailure):
    """A downstream call that did not answer within its deadline."""


@dataclass
class ModuleRuntime:
    """One module process: config, signals, the shared HTTP client and per-process memory."""

    module: str
    static: StaticConfig
    config: RuntimeConfig
    metrics: Metrics = field(init=False)
    logger: logging.Logger = field(init=False)
    provider: TracerProvider = field(init=False)
    tracer: Tracer = field(init=False)
    client: httpx.AsyncClient = field(init=False)
    store: StateBackend = field(init=False)
    memory: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.metrics = Metrics(self.module)
        self.logger = setup_logging(self.module, self.static.log_dir)
        self.store = open_store(self.static)  # also the sampler's shared keep set
        self.provider = setup_tracing(
            self.module,
            self.static,
            self.metrics,
            lambda: self.fault("span-drop") is not None,
            self.store,
        )
        self.tracer = self.provider.get_tracer("testbed")
        self.client = httpx.AsyncClient(limits=httpx.Limits(max_connections=512))
        self.apply(self.config)

    def apply(self, config: RuntimeConfig) -> None:
        """Adopt a runtime config pushed by the controller."""
        self.config = config
        for name, spec in FAULTS.items():
            if spec.target == self.module:
                active = 1.0 if name in config.faults else 0.0
                self.metrics.label(self.metrics.fault_active, fault=name).set(active)

    def fault(self, name: str) -> dict[str, float] | None:
        """Params of fault ``name`` if it is active *and* targets this module."""
        if FAULTS[name].target != self.module:
            return None
        return self.config.fault(name)

    def log(self, level: int, message: str, **fields: Any) -> None:
        log_event(self.logger, level, message, **fields)

    async def call(
        self, target: str, path: str, payload: dict[str, Any], timeout: float | None = None
    ) -> dict[str, Any]:
        """POST ``payload`` to ``target`` with the current trace context in the headers."""
        headers: dict[str, str] = {}
        propagate.inject(headers)
        url = self.config.urls[target] + path
        try:
            resp = await self.client.post(
                url, json=payload, headers=headers, timeout=timeout or self.static.call_timeout_s
            )
        except httpx.TimeoutException as exc:
            raise CallTimeout(CALL_TIMEOUT, f"{target} did not answer {path} in time", 504) from exc
        except httpx.TransportError as exc:
            raise ModuleFailure(UPSTREAM_UNAVAILABLE, f"{target} unreachable: {exc}", 503) from exc
        if resp.status_code >= 400:
            try:
                body = resp.json()
            except ValueError:
                body = {}
            code = body.get("error_code") or f"HTTP_{resp.status_code}"
            raise ModuleFailure(code, body.get("message", resp.text[:200]), resp.status_code)
        return resp.json()

    async def close(self) -> None:
        await self.client.aclose()
        self.provider.shutdown()
        self.store.close()


Handler = Callable[[ModuleRuntime, dict[str, Any], Span], Awaitable[dict[str, Any]]]


def _hex_trace_id(span: Span) -> str:
    return format(span.get_span_context().trace_id, "032x")


def work_route(rt: ModuleRuntime, handler: Handler) -> Callable[[Request], Awaitable[JSONResponse]]:
    """Wrap ``handler`` as a Starlette endpoint: span, context, metrics, logs, error mapping."""
    m = rt.metrics

    async def endpoint(request: Request) -> JSONResponse:
        body = await request.json()
        task_id = str(body.get("task_id", ""))
        parent: Context | None = propagate.extract(dict(request.headers))
        lost = rt.fault("context-loss") is not None and "traceparent" in request.headers
        if lost:
            parent = Context()  # the broken extraction: a new trace starts here
        attrs = {"module": rt.module, "task_id": task_id, "pid": os.getpid()}
        with rt.tracer.start_as_current_span(
            rt.module,
            context=parent,
            kind=SpanKind.SERVER,
            attributes=attrs,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            if lost:
                m.label(m.context_lost).inc()
                span.set_attribute("context_lost", True)
                rt.log(
                    logging.WARNING,
                    "trace context lost: incoming traceparent could not be extracted",
                    task_id=task_id,
                    error_code=CONTEXT_LOST,
                )
            started = time.perf_counter()
            try:
                result = await handler(rt, body, span)
                status_code, outcome = 200, "success"
            except ModuleFailure as failure:
                span.set_status(Status(StatusCode.ERROR, failure.message))
                span.set_attribute("error_code", failure.error_code)
                span.set_attribute("error.type", failure.error_code)  # OTel semconv name
                m.label(m.errors, error_code=failure.error_code).inc()
                rt.log(
                    logging.ERROR,
                    failure.message,
                    task_id=task_id,
                    error_code=failure.error_code,
                )
                result = {"error_code": failure.error_code, "message": failure.message}
                status_code, outcome = failure.status, "failed"
            finally:
                m.label(m.task_latency).observe(time.perf_counter() - started)
            span.set_attribute("http.response.status_code", status_code)
            m.label(m.task_total, status=outcome).inc()
            # a handler may have assigned the task id (AgentRouter names unnamed tasks)
            attrs = getattr(span, "attributes", None) or {}
            result.setdefault("task_id", str(attrs.get("task_id", task_id)))
            result["trace_id"] = _hex_trace_id(span)
            result["status"] = outcome
        return JSONResponse(result, status_code=status_code)

    return endpoint


def current_trace_id() -> str:
    return format(trace.get_current_span().get_span_context().trace_id, "032x")
