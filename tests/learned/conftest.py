"""Synthetic cases: three services a -> b -> c with metrics, spans and logs, one fault in ``root``.

Why synthetic: unit tests must know the truth exactly and run in milliseconds; the real datasets
are exercised by the end-to-end tests in tests/evals and tests/tamo.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pytest

from tools.telemetry.model import (
    LOG_SCHEMA,
    METRIC_SCHEMA,
    SPAN_SCHEMA,
    CaseTelemetry,
    LabelledCase,
    TimeWindow,
)

SERVICES = ("a", "b", "c")
T0 = datetime(2024, 1, 1, 12, 0, tzinfo=UTC)


def _ns(t: datetime) -> int:
    return int(t.timestamp() * 1e9)


METRICS = (("container_cpu_usage_percent", 10.0), ("container_memory_usage_bytes", 1e8))


def metrics_table(
    start: datetime, seconds: int, root: str | None, fault: str, seed: int
) -> pa.Table:
    rng = np.random.default_rng(seed)
    rows: dict[str, list] = {f.name: [] for f in METRIC_SCHEMA}
    for svc in SERVICES:
        for i in range(0, seconds, 5):
            for name, level in METRICS:
                value = level * (1 + 0.02 * rng.standard_normal())
                hit = (fault == "cpu" and "cpu" in name) or (fault == "mem" and "memory" in name)
                if svc == root and i >= seconds // 3 and hit:
                    value *= 8
                rows["name"].append(name)
                rows["service"].append(svc)
                rows["pod"].append(None)
                rows["labels"].append(json.dumps({"service": svc}))
                rows["ts_ns"].append(_ns(start + timedelta(seconds=i)))
                rows["value"].append(float(value))
    return pa.table(rows, schema=METRIC_SCHEMA)


def spans_table(start: datetime, seconds: int, root: str | None, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    rows: dict[str, list] = {f.name: [] for f in SPAN_SCHEMA}
    for k in range(seconds * 2):
        t = _ns(start) + int(k * 0.5e9)
        slow = root is not None and k >= seconds * 2 // 3
        durs = {"c": 5e6 * (6 if slow and root == "c" else 1) * (1 + 0.1 * rng.random())}
        durs["b"] = durs["c"] + 3e6 * (6 if slow and root == "b" else 1)
        durs["a"] = durs["b"] + 2e6
        parent = None
        for svc in SERVICES:
            sid = f"{k}-{svc}"
            rows["trace_id"].append(f"t{k}")
            rows["span_id"].append(sid)
            rows["parent_id"].append(parent)
            rows["service"].append(svc)
            rows["pod"].append(None)
            rows["operation"].append("op")
            rows["kind"].append("server")
            rows["start_ns"].append(t)
            rows["end_ns"].append(t + int(durs[svc]))
            rows["duration_ns"].append(int(durs[svc]))
            rows["status"].append("unset")
            rows["error_code"].append(None)
            rows["attributes"].append(None)
            parent = sid
    return pa.table(rows, schema=SPAN_SCHEMA)


def logs_table(start: datetime, seconds: int, root: str | None) -> pa.Table:
    rows: dict[str, list] = {f.name: [] for f in LOG_SCHEMA}
    for k in range(seconds):
        for svc in SERVICES:
            bad = svc == root and k >= seconds // 3
            rows["ts_ns"].append(_ns(start + timedelta(seconds=k)))
            rows["service"].append(svc)
            rows["pod"].append(None)
            rows["severity"].append("ERROR" if bad else "INFO")
            rows["body"].append(f"request {k} failed: boom" if bad else f"handled request {k}")
            rows["trace_id"].append(None)
            rows["span_id"].append(None)
            rows["attributes"].append(None)
    return pa.table(rows, schema=LOG_SCHEMA)


def make_case(
    root: str = "b",
    fault: str = "cpu",
    traces: bool = True,
    logs: bool = True,
    seed: int = 0,
    case_id: str = "synthetic/1",
) -> CaseTelemetry:
    window = TimeWindow(start=T0, end=T0 + timedelta(seconds=180))
    baseline = TimeWindow(start=T0 - timedelta(seconds=300), end=T0 - timedelta(seconds=60))
    case = LabelledCase(
        case_id=case_id,
        dataset="synthetic",
        system="SYN",
        service=root,
        fault_type=fault,
        injected_at=None,
        window=window,
        baseline=baseline,
    )
    empty_s, empty_l = SPAN_SCHEMA.empty_table(), LOG_SCHEMA.empty_table()
    return CaseTelemetry(
        case=case,
        metrics=metrics_table(window.start, 180, root, fault, seed),
        baseline_metrics=metrics_table(baseline.start, 240, None, fault, seed + 1),
        spans=spans_table(window.start, 180, root, seed) if traces else empty_s,
        baseline_spans=spans_table(baseline.start, 240, None, seed + 1) if traces else empty_s,
        logs=logs_table(window.start, 180, root) if logs else empty_l,
        baseline_logs=logs_table(baseline.start, 240, None) if logs else empty_l,
    )


@pytest.fixture(scope="session")
def synthetic_case() -> CaseTelemetry:
    return make_case()
