"""Metric names of any convention -> families, and the counter/histogram/NaN preparation."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest

from tools.learned.channels import metric_channel
from tools.telemetry.metric_families import (
    MetricHealth,
    count_missing,
    metric_family,
    metric_sign,
    prepare_metrics,
    series_family,
)
from tools.telemetry.model import METRIC_SCHEMA


@pytest.mark.parametrize(
    ("name", "family"),
    [
        # Prometheus / cAdvisor / client libraries
        ("container_cpu_usage_seconds_total", "cpu"),
        ("process_cpu_seconds_total", "cpu"),
        ("container_cpu_cfs_throttled_periods_total", "cpu"),
        ("process_resident_memory_bytes", "memory"),
        ("container_memory_working_set_bytes", "memory"),
        ("jvm_gc_pause_seconds_sum", "gc"),
        ("go_gc_duration_seconds", "gc"),
        ("http_server_requests_seconds_count", "load"),
        ("http_server_requests_seconds_mean", "latency"),
        ("http_requests_total", "load"),
        ("http_server_errors_total", "errors"),
        ("container_network_receive_bytes_total", "network"),
        ("container_fs_reads_bytes_total", "disk"),
        ("jvm_threads_live_threads", "saturation"),
        ("executor_queued_tasks", "saturation"),
        ("up", "availability"),
        ("node_cpu_seconds_total", None),
        ("grpc_client_duration_seconds", None),
        ("custom_widget_level", "generic"),
        ("cache_entry_age_seconds", "latency"),  # unit only
        # OpenTelemetry semantic conventions
        ("http.server.request.duration", "latency"),
        ("rpc.server.duration", "latency"),
        ("system.cpu.utilization", "cpu"),
        ("jvm.memory.used", "memory"),
        ("http.server.active_requests", "saturation"),
        # Nezha and RCD Sock Shop (as their adapters name them)
        ("pod_cpu_usage_rate_percent", "cpu"),
        ("pod_server_latency_p95_seconds", "latency"),
        ("pod_client_latency_p90_seconds", None),
        ("pod_workload_ops", "load"),
        ("pod_success_rate_percent", "availability"),
        ("pod_syscall_read", "disk"),
        ("service_request_rate_per_second", "load"),
        ("edge_latency_p50_seconds", "latency"),
    ],
)
def test_family_by_name_and_unit(name: str, family: str | None) -> None:
    assert metric_family(name) == family


def test_labels_refine_the_family() -> None:
    assert series_family("requests_total", json.dumps({"code": "503"})) == "errors"
    assert series_family("requests_total", json.dumps({"code": "200"})) == "load"
    assert series_family("x_count", json.dumps({"outcome": "SERVER_ERROR"})) == "errors"
    assert series_family("widget", json.dumps({"unit": "ms"})) == "latency"
    assert metric_sign("pod_success_rate_percent") == -1.0 and metric_sign("cpu") == 1.0
    assert metric_channel("custom_widget_level") == "metric_load"  # generic still counts
    assert metric_channel("jvm_gc_pause_seconds_sum") == "metric_memory"


def _table(rows: list[tuple[str, str, dict[str, str], int, float]]) -> pa.Table:
    return pa.Table.from_pylist(
        [
            {
                "name": n,
                "service": s,
                "pod": None,
                "labels": json.dumps(lab, sort_keys=True),
                "ts_ns": t * 1_000_000_000,
                "value": v,
            }
            for n, s, lab, t, v in rows
        ],
        schema=METRIC_SCHEMA,
    )


def _series(table: pa.Table, name: str) -> list[float]:
    df = table.to_pandas()
    return [round(v, 6) for v in df[df["name"] == name].sort_values("ts_ns")["value"]]


def test_counters_become_rates_with_resets() -> None:
    rows = [("jobs_total", "a", {}, t, v) for t, v in [(0, 0), (60, 60), (120, 180), (180, 30)]]
    out, health = prepare_metrics(_table(rows))
    assert _series(out, "jobs_total") == [1.0, 2.0, 0.5]  # the reset: restarted from 0
    assert health.counters_as_rates == 1


def test_histograms_become_means_and_status_counts_an_error_ratio() -> None:
    rows = []
    for i, t in enumerate((0, 60, 120)):
        for status, per_min in (("200", 90), ("500", 10 * i)):
            lab = {"status": status}
            rows.append(("req_seconds_count", "a", lab, t, per_min * i))
            rows.append(("req_seconds_sum", "a", lab, t, 0.1 * per_min * i))
        rows.append(("req_seconds_bucket", "a", {"le": "0.5"}, t, 5.0 * i))
    out, health = prepare_metrics(_table(rows))
    names = set(out.column("name").to_pylist())
    assert "req_seconds_sum" not in names and "req_seconds_bucket" not in names
    df = out.to_pandas()
    ok = df[(df["name"] == "req_seconds_mean") & df["labels"].str.contains("200")]
    assert ok["value"].round(6).tolist() == [0.1, 0.1]
    assert _series(out, "req_seconds_error_ratio") == [0.1, pytest.approx(30 / 120, rel=1e-6)]
    assert series_family("req_seconds_error_ratio", "{}") == "errors"
    assert health.buckets_dropped == 1 and health.error_ratios == 1


def test_nan_constant_and_missing_series_are_counted() -> None:
    rows = [("temp", "a", {}, t, v) for t, v in [(0, 1.0), (60, np.nan), (120, 2.0)]]
    rows += [("flat", "a", {}, t, 5.0) for t in (0, 60, 120)]
    health = MetricHealth()
    window = _table(rows)
    count_missing(window, _table([("gone", "a", {}, 0, 1.0)]), health)
    out, _ = prepare_metrics(window, health)
    assert out.num_rows == 5
    assert health.non_finite_samples == 1
    assert health.constant_series == 1
    assert health.missing_series == 3  # temp, flat only in the window; gone only in baseline
    assert health.by_family == {"generic": 2}
