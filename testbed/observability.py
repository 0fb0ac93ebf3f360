"""Traces and metrics of one module process (JSON logs are in ``jsonlog.py``).

Why here and not in each module: every module must emit the *same* shapes (span attributes
``task_id``/``module``/``error_code``/``model.version``, log fields, metric names and labels) or
cross-signal correlation by trace_id/task_id/module breaks. Metric names are the seed's
(chapters 3, 7, 8); every series carries a ``module`` label.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter
from prometheus_client import Counter, Gauge, Histogram

from testbed.config import StaticConfig
from testbed.otlp_json import OtlpJsonFileExporter
from testbed.sampling import ErrorPriorityProcessor, ErrorPrioritySampler, KeepSet

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0)


class Metrics:
    """The seed's metrics, all labelled by ``module`` (default registry, one per process).

    Every series also carries ``service`` (the same value): tamo's metric readers take the entity
    of a series from ``service``/``job``, and a scrape's ``job`` names the whole testbed.
    """

    def __init__(self, module: str) -> None:
        self.module = module
        m = ["module", "service"]
        self.task_total = Counter(
            "agent_task_total", "Requests handled by a module, by outcome", [*m, "status"]
        )
        self.task_latency = Histogram(
            "agent_task_latency_seconds",
            "Time a module spent on one task (AgentRouter: the whole task)",
            m,
            buckets=_LATENCY_BUCKETS,
        )
        self.errors = Counter("agent_error_total", "Failures by error code", [*m, "error_code"])
        self.retries = Counter("agent_retry_total", "Retried calls", [*m, "reason"])
        self.state_write_errors = Counter(
            "agent_state_write_error_total", "Failed state snapshot writes", m
        )
        self.callback_failures = Counter(
            "callback_failure_total", "Callbacks that could not be delivered", m
        )
        self.callback_success = Counter("callback_success_total", "Callbacks delivered", m)
        self.callback_deferred = Counter(
            "callback_deferred_total", "Callbacks parked in the outbox by a skip flag", m
        )
        self.webhook_duplicates = Counter(
            "webhook_duplicate_total", "Deliveries received more than once", m
        )
        self.inference_latency = Histogram(
            "inference_latency_seconds",
            "Model call latency as seen by the caller",
            [*m, "model"],
            buckets=_LATENCY_BUCKETS,
        )
        self.model_fallback = Counter(
            "model_fallback_total", "Completions served by the fallback model", m
        )
        self.active_model = Gauge("agent_active_model", "1 for the model in use", [*m, "model"])
        self.context_lost = Counter(
            "trace_context_lost_total", "Requests whose incoming trace context was lost", m
        )
        self.skipped = Counter("agent_skip_total", "Work skipped by a skip flag", [*m, "skipped"])
        self.dispatch = Counter(
            "agent_dispatch_total", "Task dispatches by origin", [*m, "dispatch_origin"]
        )
        self.spans_exported = Counter("otel_span_total", "Spans handed to exporters", m)
        self.spans_dropped = Counter("span_dropped_total", "Spans dropped before export", m)
        self.fault_active = Gauge(
            "testbed_fault_active", "1 while a fault is injected into this module", [*m, "fault"]
        )

    def label(self, metric: Any, **labels: str) -> Any:
        return metric.labels(module=self.module, service=self.module, **labels)


def setup_tracing(
    module: str,
    static: StaticConfig,
    metrics: Metrics,
    drop_spans: Callable[[], bool],
    keep_set: KeepSet | None,
) -> TracerProvider:
    """A tracer provider with the error-priority sampler and the configured exporters."""
    exporters: list[SpanExporter] = []
    if static.otlp_endpoint:
        exporters.append(
            OTLPSpanExporter(endpoint=static.otlp_endpoint.rstrip("/") + "/v1/traces", timeout=5)
        )
    if static.spans_jsonl:
        exporters.append(OtlpJsonFileExporter(static.spans_dir / f"{module}.otlp.jsonl"))
    provider = TracerProvider(
        resource=Resource.create({"service.name": module, "service.namespace": "tamo-testbed"}),
        sampler=ErrorPrioritySampler(static.sample_ratio),
    )
    provider.add_span_processor(
        ErrorPriorityProcessor(
            exporters,
            slow_ms=static.slow_ms,
            interval_s=static.export_interval_s,
            drop_spans=drop_spans,
            on_drop=metrics.label(metrics.spans_dropped).inc,
            on_export=metrics.label(metrics.spans_exported).inc,
            keep_set=keep_set if static.sample_ratio < 1.0 else None,
            hold_s=static.keep_hold_s,
        )
    )
    return provider
