"""The canonical channel layout of the aligned tensor X[E, m, l].

Why a fixed layout instead of one channel per raw metric name: every system names its metrics
differently (Nezha ``cpu_usage_rate``, Sock Shop ``carts_cpu``, Prometheus
``container_cpu_usage_seconds_total``), and a model trained on one system must read another.
Each raw series is mapped to a *family* by its name, unit and labels
(:mod:`tools.telemetry.metric_families`, any naming convention) and each family to a channel here;
a series no rule claims is ``generic`` and still counts (see ``METRIC_FAMILY_CHANNEL``); trace-
and log-derived series have fixed channels. The fault-type classifier
and the root-cause scorer only ever see these families, which is what lets them transfer.
"""

from __future__ import annotations

from tools.telemetry.metric_families import series_family

METRIC_CHANNELS: tuple[str, ...] = (
    "metric_cpu",
    "metric_memory",
    "metric_network",
    "metric_io",
    "metric_latency",
    "metric_load",
    "metric_errors",
)
TRACE_CHANNELS: tuple[str, ...] = (
    "trace_p50",
    "trace_p95",
    "trace_p99",
    "trace_self_p95",
    "trace_calls",
    "trace_errors",
    "trace_edge_latency",
)
LOG_CHANNELS: tuple[str, ...] = ("log_lines", "log_errors", "log_novel", "log_cut")
CHANNELS: tuple[str, ...] = METRIC_CHANNELS + TRACE_CHANNELS + LOG_CHANNELS
CHANNEL_INDEX: dict[str, int] = {c: i for i, c in enumerate(CHANNELS)}

# Coarse families used by the classifier's evidence and the ranking's explanation.
FAMILY_OF: dict[str, str] = {
    "metric_cpu": "cpu",
    "metric_memory": "memory",
    "metric_network": "network",
    "metric_io": "io",
    "metric_latency": "latency",
    "metric_load": "load",
    "metric_errors": "errors",
    "trace_p50": "latency",
    "trace_p95": "latency",
    "trace_p99": "latency",
    "trace_self_p95": "latency",
    "trace_calls": "load",
    "trace_errors": "errors",
    "trace_edge_latency": "network",
    "log_lines": "logs",
    "log_errors": "errors",
    "log_novel": "logs",
    "log_cut": "errors",
}
FAMILIES: tuple[str, ...] = (
    "cpu",
    "memory",
    "network",
    "io",
    "latency",
    "load",
    "errors",
    "logs",
)

# Metric family (tools.telemetry.metric_families) -> channel: GC is memory pressure, pools,
# queues and threads fill with the workload, availability is the complement of the error ratio.
# A generic series (no rule claims it) is kept with the low-weight volume channel rather than
# dropped: a channel of its own widens X, and the untrained attention's random projections then
# change every ranking by chance (Sock Shop run 1 Acc@3 0.9 -> 0.7), so it waits for that fix.
METRIC_FAMILY_CHANNEL: dict[str, str] = {
    "cpu": "metric_cpu",
    "memory": "metric_memory",
    "gc": "metric_memory",
    "network": "metric_network",
    "disk": "metric_io",
    "latency": "metric_latency",
    "load": "metric_load",
    "saturation": "metric_load",
    "errors": "metric_errors",
    "availability": "metric_errors",
    "generic": "metric_load",
}


def metric_channel(name: str, labels: str | None = None) -> str | None:
    """The canonical channel of a raw metric series, or ``None`` when it is not used."""
    family = series_family(name, labels)
    return None if family is None else METRIC_FAMILY_CHANNEL[family]
