"""Clients for the telemetry backends a team already runs: Prometheus, Loki, Jaeger, Tempo.

Why: tools read telemetry through three small protocols (:mod:`tools.telemetry.sources`). Each
client here implements one of them over its backend's public HTTP API, so the same tool runs on
the embedded store on a laptop and on production backends. :func:`sources_from_settings` picks,
per modality, the configured backend or else the embedded store.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tools.core.settings import Settings
from tools.telemetry.sources import LogSource, MetricSource, TraceSource

if TYPE_CHECKING:
    from tools.telemetry.store import TelemetryStore


def sources_from_settings(
    settings: Settings, store: TelemetryStore | None = None
) -> tuple[TraceSource, LogSource, MetricSource]:
    """(traces, logs, metrics) sources: Jaeger (else Tempo), Loki and Prometheus where their URL
    is configured, the embedded store (``store`` or ``settings.store_file``) for the rest."""
    from tools.telemetry.backends.jaeger import JaegerClient
    from tools.telemetry.backends.loki import LokiClient
    from tools.telemetry.backends.prometheus import PrometheusClient
    from tools.telemetry.backends.tempo import TempoClient

    b = settings.backends
    options = PrometheusClient.options_from_settings(b)
    traces: TraceSource | None = None
    if b.jaeger_url:
        traces = JaegerClient(b.jaeger_url, **options)
    elif b.tempo_url:
        traces = TempoClient(b.tempo_url, **options)
    logs: LogSource | None = LokiClient(b.loki_url, **options) if b.loki_url else None
    metrics: MetricSource | None = (
        PrometheusClient(b.prometheus_url, **options) if b.prometheus_url else None
    )
    if traces is None or logs is None or metrics is None:
        local: TraceSource = store if store is not None else _local_store(settings)
        traces = traces or local
        logs = logs or local  # type: ignore[assignment]
        metrics = metrics or local  # type: ignore[assignment]
    return traces, logs, metrics


def _local_store(settings: Settings) -> TraceSource:
    """The embedded store for reading: through ``tamo serve`` when it runs, else the file."""
    from tools.telemetry.store_client import open_store

    return open_store(settings.store_file, read_only=True)
