"""JaegerClient against a real HTTP server answering exactly as Jaeger's query API documents.

Shapes follow the HTTP JSON API of ``jaeger-query`` (https://www.jaegertracing.io/docs/1.62/apis/
#http-json-internal, the endpoints the Jaeger UI calls): every answer is an envelope
``{"data": ..., "total": n, "limit": 0, "offset": 0, "errors": null}``; ``/api/services`` and
``/api/services/<svc>/operations`` hold string lists; ``/api/traces`` and ``/api/traces/<id>``
hold traces ``{"traceID", "spans": [{"traceID", "spanID", "operationName", "references":
[{"refType": "CHILD_OF", "traceID", "spanID"}], "startTime" (µs), "duration" (µs), "tags":
[{"key", "type", "value"}], "logs", "processID", "warnings"}], "processes": {"p1":
{"serviceName", "tags"}}, "warnings": null}``; an unknown trace is HTTP 404 with
``"errors": [{"code": 404, "msg": "trace not found"}]``; ``/api/dependencies`` holds
``[{"parent", "child", "callCount"}]``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.telemetry.test_backends_http import FakeBackend, Reply, running_fake
from tools.core.errors import BackendError, NotFoundError
from tools.telemetry.backends.jaeger import JaegerClient, traces_to_table
from tools.telemetry.model import SPAN_SCHEMA, TimeWindow
from tools.telemetry.sources import TraceQuery

T0_US = 1_661_155_200_000_000  # 2022-08-22T08:00:00Z in microseconds
WINDOW = TimeWindow.from_ns(T0_US * 1000, (T0_US + 60_000_000) * 1000)
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


def envelope(data: Any, errors: Any = None) -> dict[str, Any]:
    total = len(data) if isinstance(data, list) else 0
    return {"data": data, "total": total, "limit": 0, "offset": 0, "errors": errors}


def tag(key: str, value: Any) -> dict[str, Any]:
    kind = "bool" if isinstance(value, bool) else "int64" if isinstance(value, int) else "string"
    return {"key": key, "type": kind, "value": value}


def span(
    span_id: str,
    op: str,
    start_us: int,
    dur_us: int,
    proc: str,
    parent: str | None = None,
    tags: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    refs = [{"refType": "CHILD_OF", "traceID": TRACE_ID, "spanID": parent}] if parent else []
    return {
        "traceID": TRACE_ID,
        "spanID": span_id,
        "operationName": op,
        "references": refs,
        "startTime": start_us,
        "duration": dur_us,
        "tags": tags or [],
        "logs": [],
        "processID": proc,
        "warnings": None,
    }


TRACE = {
    "traceID": TRACE_ID,
    "spans": [
        span(
            "00f067aa0ba902b7",
            "HTTP GET /dispatch",
            T0_US + 1_000,
            400_000,
            "p1",
            tags=[tag("span.kind", "server"), tag("http.status_code", 200)],
        ),
        span(
            "1a2b3c4d5e6f7081",
            "FindDriverIDs",
            T0_US + 5_000,
            250_000,
            "p2",
            "00f067aa0ba902b7",
            tags=[tag("span.kind", "client"), tag("error", True)],
        ),
        span(
            "2b3c4d5e6f708192", "SQL SELECT", T0_US + 90_000_000, 30_000, "p3", "00f067aa0ba902b7"
        ),
    ],
    "processes": {
        "p1": {"serviceName": "frontend", "tags": [tag("hostname", "frontend-6b8c9d7f5-abcde")]},
        "p2": {"serviceName": "redis", "tags": [tag("k8s.pod.name", "redis-0")]},
        "p3": {"serviceName": "mysql", "tags": []},
    },
    "warnings": None,
}


@pytest.fixture
def fake() -> Iterator[FakeBackend]:
    yield from running_fake()


@pytest.fixture
def jaeger(fake: FakeBackend) -> JaegerClient:
    fake.route("/api/services", envelope(["frontend", "redis", "mysql"]))
    fake.route("/api/services/frontend/operations", envelope(["HTTP GET /dispatch"]))
    fake.route("/api/traces", envelope([TRACE]))
    fake.route(f"/api/traces/{TRACE_ID}", envelope([TRACE]))
    fake.route(
        "/api/dependencies",
        envelope(
            [
                {"parent": "frontend", "child": "redis", "callCount": 1},
                {"parent": "frontend", "child": "customer", "callCount": 7},
            ]
        ),
    )
    return JaegerClient(fake.url, backoff_s=0.01)


def test_services_operations_and_trace_by_id(jaeger: JaegerClient) -> None:
    assert jaeger.services() == ["frontend", "mysql", "redis"]
    assert jaeger.operations("frontend") == ["HTTP GET /dispatch"]
    spans = jaeger.trace(TRACE_ID)
    assert spans.schema == SPAN_SCHEMA and spans.num_rows == 3
    rows = {r["span_id"]: r for r in spans.to_pylist()}
    child = rows["1a2b3c4d5e6f7081"]
    assert child["parent_id"] == "00f067aa0ba902b7" and child["service"] == "redis"
    assert child["pod"] == "redis-0" and child["kind"] == "client" and child["status"] == "error"
    assert child["start_ns"] == (T0_US + 5_000) * 1000 and child["duration_ns"] == 250_000_000
    root = rows["00f067aa0ba902b7"]
    assert root["parent_id"] is None and root["error_code"] == "200"
    assert root["pod"] == "frontend-6b8c9d7f5-abcde"


def test_unknown_trace_is_not_found(fake: FakeBackend, jaeger: JaegerClient) -> None:
    missing = "0af7651916cd43dd8448eb211c80319c"
    fake.route(
        f"/api/traces/{missing}",
        Reply(envelope(None, [{"code": 404, "msg": "trace not found"}]), 404),
    )
    with pytest.raises(NotFoundError, match=f"no trace {missing}"):
        jaeger.trace(missing)


def test_spans_searches_every_service_and_narrows_to_matching_spans(
    fake: FakeBackend, jaeger: JaegerClient
) -> None:
    spans = jaeger.spans(TraceQuery(WINDOW))
    # The SQL span starts 90 s after T0: outside the window although its trace matched.
    assert sorted(spans["operation"].to_pylist()) == ["FindDriverIDs", "HTTP GET /dispatch"]
    searches = fake.hits("/api/traces")
    assert sorted(r.arg("service") for r in searches) == ["frontend", "mysql", "redis"]
    assert searches[0].arg("start") == str(T0_US) and searches[0].arg("end") == str(
        T0_US + 60_000_000
    )
    assert searches[0].arg("limit") == "200"

    errors = jaeger.spans(
        TraceQuery(WINDOW, services=["redis"], errors_only=True, min_duration_ms=100)
    )
    assert errors["span_id"].to_pylist() == ["1a2b3c4d5e6f7081"]
    last = fake.hits("/api/traces")[-1]
    assert json.loads(last.arg("tags")) == {"error": "true"} and last.arg("minDuration") == "100ms"
    assert jaeger.spans(TraceQuery(WINDOW, operation="SQL SELECT")).num_rows == 0
    assert jaeger.spans(TraceQuery(WINDOW, trace_id=TRACE_ID, limit=1))["span_id"].to_pylist() == [
        "00f067aa0ba902b7"
    ]


def test_call_graph_from_spans_plus_dependency_only_edges(
    jaeger: JaegerClient, fake: FakeBackend
) -> None:
    graph = jaeger.call_graph(WINDOW)
    edge = graph.edges["frontend", "redis"]
    assert edge["calls"] == 1 and edge["errors"] == 1
    assert edge["p50_ms"] == pytest.approx(250.0)
    assert graph.edges["frontend", "customer"]["calls"] == 7  # only /api/dependencies knows it
    assert not graph.has_edge("frontend", "mysql")  # that call happened outside the window
    dep = fake.hits("/api/dependencies")[0]
    assert dep.arg("endTs") == str(T0_US // 1000 + 60_000) and dep.arg("lookback") == "60000"


def test_errors_envelope_and_malformed_trace(fake: FakeBackend) -> None:
    jaeger = JaegerClient(fake.url, retries=0)
    fake.route("/api/services", envelope(None, [{"code": 500, "msg": "storage unavailable"}]))
    with pytest.raises(BackendError, match="jaeger answered with errors: storage unavailable"):
        jaeger.services()
    fake.route("/api/traces/abc", envelope([{"traceID": "abc", "spans": [{"spanID": "zz"}]}]))
    with pytest.raises(BackendError, match="unexpected shape") as exc:
        jaeger.trace("abc")
    assert exc.value.status == 200 and exc.value.url.endswith("/api/traces/abc")


_hex = st.text("0123456789abcdef", min_size=1, max_size=16).filter(lambda s: s.strip("0"))


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(_hex, st.integers(0, 2**50), st.integers(0, 10**9), st.booleans()),
        min_size=1,
        max_size=12,
        unique_by=lambda t: t[0].zfill(16),
    )
)
def test_traces_to_table_keeps_ids_times_and_parents(items) -> None:
    spans = [
        span(sid, f"op{i}", start, dur, "p1", items[0][0] if i else None, [tag("error", err)])
        for i, (sid, start, dur, err) in enumerate(items)
    ]
    doc = envelope(
        [
            {
                "traceID": TRACE_ID,
                "spans": spans,
                "processes": {"p1": {"serviceName": "svc", "tags": []}},
            }
        ]
    )
    table = traces_to_table(doc, "test")
    assert table.num_rows == len(items)
    for row, (sid, start, dur, err) in zip(table.to_pylist(), items, strict=True):
        assert row["span_id"] == sid.zfill(16) and row["trace_id"] == TRACE_ID
        assert row["start_ns"] == start * 1000 and row["duration_ns"] == dur * 1000
        assert row["status"] == ("error" if err else "unset")
        assert row["parent_id"] == (None if sid == items[0][0] else items[0][0].zfill(16))
