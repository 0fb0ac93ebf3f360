"""Metric signature read from metric series of the window; log keywords from span attributes."""

from __future__ import annotations

import json

import pyarrow as pa

from tools.telemetry.model import METRIC_SCHEMA
from tools.traces.config import TraceConfig
from tools.traces.signatures import keywords_from_attributes, metric_symptoms, top_keywords


def test_metric_series_spike_inside_the_window() -> None:
    rows = []
    for i in range(100):
        inside = 40 <= i < 60
        rows.append(
            {"name": "agent_task_latency_seconds", "ts_ns": i, "value": 9.0 if inside else 1.0}
        )
        rows.append({"name": "agent_retry_total", "ts_ns": i, "value": 1.0})
        rows.append({"name": "callback_failure_rate", "ts_ns": i, "value": 0.5 if inside else 0.01})
    table = pa.Table.from_pylist(rows, schema=METRIC_SCHEMA)
    flags = metric_symptoms(table, 40, 59, TraceConfig())
    assert flags["latency_spike"] and flags["callback_drop"]
    assert not flags["retry_peak"] and not flags["error_spike"]
    assert not any(metric_symptoms(None, 0, 1, TraceConfig()).values())


def test_keywords_from_error_attributes() -> None:
    attrs = [
        json.dumps({"exception.type": "TimeoutError", "error.code": "MODEL_TIMEOUT"}),
        "bad json",
        None,
    ]
    words = keywords_from_attributes(attrs, ["504", None, "504"])
    assert top_keywords(words, 2) == ["504", "MODEL_TIMEOUT"]
    assert words["TimeoutError"] == 1
