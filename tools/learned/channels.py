"""The canonical channel layout of the aligned tensor X[E, m, l].

Why a fixed layout instead of one channel per raw metric name: every system names its metrics
differently (Nezha ``cpu_usage_rate``, Sock Shop ``carts_cpu``, Prometheus
``container_cpu_usage_seconds_total``), and a model trained on one system must read another.
Each raw series is mapped to a *family* (cpu, memory, network, io, latency, load, errors) by
keywords in its name; trace- and log-derived series have fixed channels. The fault-type classifier
and the root-cause scorer only ever see these families, which is what lets them transfer.
"""

from __future__ import annotations

import re

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

# Order matters: the first family whose pattern matches wins ("cpu_usage_rate" is cpu, not load).
_FAMILY_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("metric_errors", re.compile(r"success|error|err(_|$)|fail|5xx")),
    ("metric_latency", re.compile(r"latency|_lat(_|$)|duration|response_time")),
    ("metric_cpu", re.compile(r"cpu")),
    ("metric_memory", re.compile(r"mem|rss|heap")),
    ("metric_network", re.compile(r"network|net_|receive|transmit|rx_|tx_|bytes_(sent|recv)")),
    ("metric_io", re.compile(r"syscall|disk|fs_|_io(_|$)|read|write")),
    ("metric_load", re.compile(r"workload|_lod$|load|request|ops|qps|throughput|calls")),
)
# Host-level series describe a node shared by many services: they would blame every tenant.
# Client-side latency of a pod measures its *callees*, so it would blame the caller; the
# callee's own server latency and spans carry that signal to the right entity.
_EXCLUDE = re.compile(r"(^|_)node(_|$)|client_lat")


def metric_channel(name: str) -> str | None:
    """The canonical channel a raw metric name belongs to, or ``None`` when it is not used."""
    low = name.lower()
    if _EXCLUDE.search(low):
        return None
    for channel, pattern in _FAMILY_PATTERNS:
        if pattern.search(low):
            return channel
    return None


def metric_sign(name: str) -> float:
    """+1, or -1 for 'higher is better' series (success rate) so that positive z means worse."""
    return -1.0 if "success" in name.lower() else 1.0
