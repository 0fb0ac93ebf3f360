"""Prometheus response -> ``METRIC_SCHEMA`` conversion, on inputs shaped as the API documents.

Shapes follow the "Expression query result formats" section of
https://prometheus.io/docs/prometheus/latest/querying/api/ : a ``matrix`` is
``[{"metric": {labels}, "values": [[<unix s>, "<value>"], ...]}]``, a ``vector``
``[{"metric": {...}, "value": [<unix s>, "<value>"]}]``, a ``scalar`` ``[<unix s>, "<value>"]``;
values are strings and may be ``"NaN"``, ``"+Inf"``, ``"-Inf"``. The same client runs against a
real Prometheus in ``test_local_prometheus.py``.
"""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tools.telemetry.backends.prometheus import default_step, result_to_table, selector
from tools.telemetry.model import METRIC_SCHEMA, TimeWindow

_label_names = st.sampled_from(["__name__", "job", "pod", "service", "container", "instance"])
_metric = st.dictionaries(_label_names, st.text(min_size=1, max_size=10), max_size=5)
_ms = st.integers(min_value=0, max_value=4_000_000_000_000)  # epoch milliseconds
_value = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.sampled_from(["NaN", "+Inf", "-Inf"]),
)
_matrix = st.lists(
    st.fixed_dictionaries(
        {"metric": _metric, "values": st.lists(st.tuples(_ms, _value), max_size=5)}
    ),
    max_size=5,
)


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


@settings(max_examples=200, deadline=None)
@given(_matrix)
def test_matrix_rows_keep_every_point_exactly(result) -> None:
    data = {
        "resultType": "matrix",
        "result": [
            {"metric": s["metric"], "values": [[ms / 1000, v] for ms, v in s["values"]]}
            for s in result
        ],
    }
    table = result_to_table(data, "rate(x[1m])")
    assert table.schema == METRIC_SCHEMA
    rows = table.to_pylist()
    expected = [(s, ms, v) for s in result for ms, v in s["values"]]
    assert len(rows) == len(expected)
    for row, (series, ms, v) in zip(rows, expected, strict=True):
        metric = series["metric"]
        assert row["ts_ns"] == ms * 1_000_000  # millisecond precision kept exactly
        assert _same(row["value"], float(v))
        assert row["name"] == metric.get("__name__", "rate(x[1m])")
        labels = json.loads(row["labels"])
        assert labels == {k: v for k, v in metric.items() if k != "__name__"}
        assert list(labels) == sorted(labels)
        if metric.get("service"):
            assert row["service"] == metric["service"]
        assert row["pod"] == (metric.get("pod") or None)


def test_vector_and_scalar_and_service_derivation() -> None:
    vector = {
        "resultType": "vector",
        "result": [
            {
                "metric": {"__name__": "up", "job": "node", "pod": "cart-5d8f7c9b6d-x2k4p"},
                "value": [1_700_000_000.123, "1"],
            },
            {"metric": {"job": "node", "container": "POD"}, "value": [1_700_000_000, "0"]},
        ],
    }
    rows = result_to_table(vector, "up").to_pylist()
    assert rows[0]["service"] == "cart" and rows[0]["ts_ns"] == 1_700_000_000_123_000_000
    assert rows[1]["service"] == "node"  # the pause container is no service; the job is
    scalar = result_to_table({"resultType": "scalar", "result": [1_700_000_000, "2.5"]}, "2.5")
    assert scalar.to_pylist()[0] | {"labels": None} == {
        "name": "2.5",
        "service": None,
        "pod": None,
        "labels": None,
        "ts_ns": 1_700_000_000_000_000_000,
        "value": 2.5,
    }
    with pytest.raises(ValueError, match="resultType 'string'"):
        result_to_table({"resultType": "string", "result": [0, "x"]}, "x")


def test_selector_quotes_values_and_default_step_bounds_points() -> None:
    assert selector("up") == "up"
    assert selector("up", {"pod": 'a"b', "job": "x\\y"}) == 'up{job="x\\\\y",pod="a\\"b"}'
    hour = TimeWindow.from_ns(0, 3600 * 10**9)
    assert default_step(hour) == 4.0
    assert default_step(TimeWindow.from_ns(0, 60 * 10**9)) == 1.0
