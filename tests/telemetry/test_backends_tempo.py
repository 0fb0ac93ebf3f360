"""TempoClient against a real HTTP server answering exactly as Tempo's HTTP API documents.

Shapes follow https://grafana.com/docs/tempo/latest/api_docs/ :
``GET /api/search?q=<TraceQL>&start=&end=&limit=`` -> ``{"traces": [{"traceID",
"rootServiceName", "rootTraceName", "startTimeUnixNano", "durationMs", "spanSets": [{"spans":
[{"spanID", "startTimeUnixNano", "durationNanos", "attributes"}], "matched"}]}], "metrics":
{"inspectedBytes", "completedJobs", "totalJobs"}}``;
``GET /api/search/tags`` -> ``{"tagNames": [...]}``; ``GET /api/search/tag/<tag>/values`` ->
``{"tagValues": [...]}``; ``GET /api/traces/<traceID>`` -> OTLP ``{"batches": [{"resource":
{"attributes": [...]}, "scopeSpans": [{"scope": {...}, "spans": [...]}]}]}`` (protobuf-JSON, so
ids are base64), ``/api/v2/traces/<traceID>`` -> ``{"trace": {"resourceSpans": [...]}}``;
an unknown trace is HTTP 404.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.telemetry.test_backends_http import FakeBackend, Reply, running_fake
from tools.core.errors import BackendError, NotFoundError
from tools.telemetry.backends.tempo import TempoClient, build_traceql, trace_to_table
from tools.telemetry.model import SPAN_SCHEMA, TimeWindow
from tools.telemetry.sources import TraceQuery

T0 = 1_684_778_327_000_000_000
WINDOW = TimeWindow.from_ns(T0, T0 + 60 * 10**9)
TRACE_ID = "2f3e0cee77ae5dc9c17ade3689eb2e54"
ROOT, CHILD = "563d623c76514f8e", "7a1b2c3d4e5f6071"


def b64(hex_id: str) -> str:
    return base64.b64encode(bytes.fromhex(hex_id)).decode()


def attr(key: str, value: Any) -> dict[str, Any]:
    kind = "intValue" if isinstance(value, int) else "stringValue"
    return {"key": key, "value": {kind: str(value) if kind == "intValue" else value}}


def otlp_span(
    span_id: str,
    parent: str | None,
    name: str,
    start: int,
    dur: int,
    *,
    encode=b64,
    kind: str = "SPAN_KIND_SERVER",
    error: bool = False,
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "traceId": encode(TRACE_ID),
        "spanId": encode(span_id),
        "name": name,
        "kind": kind,
        "startTimeUnixNano": str(start),
        "endTimeUnixNano": str(start + dur),
        "attributes": [attr("http.status_code", 500 if error else 200)],
        "status": {"code": "STATUS_CODE_ERROR", "message": "boom"} if error else {},
    }
    if parent:
        out["parentSpanId"] = encode(parent)
    return out


def batch(service: str, spans: list[dict[str, Any]], pod: str | None = None) -> dict[str, Any]:
    attrs = [attr("service.name", service)] + ([attr("k8s.pod.name", pod)] if pod else [])
    return {
        "resource": {"attributes": attrs},
        "scopeSpans": [{"scope": {"name": "opentelemetry.instrumentation.flask"}, "spans": spans}],
    }


def trace_v1(encode=b64) -> dict[str, Any]:
    return {
        "batches": [
            batch(
                "shop-backend",
                [otlp_span(ROOT, None, "update-billing", T0 + 10**6, 557 * 10**6, encode=encode)],
                "shop-backend-7c9d8b6f5-q2w3e",
            ),
            batch(
                "billing",
                [
                    otlp_span(
                        CHILD,
                        ROOT,
                        "charge",
                        T0 + 2 * 10**6,
                        446 * 10**6,
                        encode=encode,
                        kind="SPAN_KIND_CLIENT",
                        error=True,
                    )
                ],
            ),
        ]
    }


SEARCH = {
    "traces": [
        {
            "traceID": TRACE_ID,
            "rootServiceName": "shop-backend",
            "rootTraceName": "update-billing",
            "startTimeUnixNano": str(T0 + 10**6),
            "durationMs": 557,
            "spanSets": [
                {
                    "spans": [
                        {
                            "spanID": CHILD,
                            "startTimeUnixNano": str(T0 + 2 * 10**6),
                            "durationNanos": str(446 * 10**6),
                            "attributes": [{"key": "status", "value": {"stringValue": "error"}}],
                        }
                    ],
                    "matched": 1,
                }
            ],
        }
    ],
    "metrics": {"inspectedBytes": "2342", "completedJobs": 1, "totalJobs": 1},
}


@pytest.fixture
def fake() -> Iterator[FakeBackend]:
    yield from running_fake()


@pytest.fixture
def tempo(fake: FakeBackend) -> TempoClient:
    fake.route("/api/search", SEARCH)
    fake.route(f"/api/traces/{TRACE_ID}", trace_v1())
    fake.route("/api/search/tags", {"tagNames": ["http.status_code", "service.name"]})
    fake.route("/api/search/tag/service.name/values", {"tagValues": ["billing", "shop-backend"]})
    return TempoClient(fake.url, backoff_s=0.01)


def test_trace_by_id_decodes_base64_ids_and_otlp_fields(tempo: TempoClient) -> None:
    spans = tempo.trace(TRACE_ID)
    assert spans.schema == SPAN_SCHEMA
    rows = {r["span_id"]: r for r in spans.to_pylist()}
    assert set(rows) == {ROOT, CHILD}
    child = rows[CHILD]
    assert child["trace_id"] == TRACE_ID and child["parent_id"] == ROOT
    assert (child["service"], child["kind"], child["status"]) == ("billing", "client", "error")
    assert child["error_code"] == "500" and child["duration_ns"] == 446 * 10**6
    assert rows[ROOT]["pod"] == "shop-backend-7c9d8b6f5-q2w3e"


def test_v2_shape_with_hex_ids_reads_the_same() -> None:
    v2 = {"trace": {"resourceSpans": trace_v1(encode=lambda h: h)["batches"]}}
    a = trace_to_table(v2, "v2").sort_by("span_id")
    b = trace_to_table(trace_v1(), "v1").sort_by("span_id")
    assert a.equals(b)


def test_search_tags_and_values(tempo: TempoClient, fake: FakeBackend) -> None:
    found = tempo.search(WINDOW.start, WINDOW.end, q="{ status = error }", limit=5)
    assert [t["traceID"] for t in found] == [TRACE_ID]
    req = fake.hits("/api/search")[-1]
    assert req.arg("q") == "{ status = error }" and req.arg("limit") == "5"
    assert req.arg("start") == str(T0 // 10**9) and req.arg("end") == str(T0 // 10**9 + 60)
    tempo.search(WINDOW.start, WINDOW.end, tags={"service.name": "billing"}, min_duration_ms=100)
    req = fake.hits("/api/search")[-1]
    assert req.arg("tags") == 'service.name="billing"' and req.arg("minDuration") == "100ms"
    assert tempo.tags() == ["http.status_code", "service.name"]
    assert tempo.tag_values("service.name") == ["billing", "shop-backend"]


def test_spans_runs_traceql_then_fetches_and_filters(tempo: TempoClient, fake: FakeBackend) -> None:
    spans = tempo.spans(
        TraceQuery(WINDOW, services=["billing"], errors_only=True, min_duration_ms=400)
    )
    assert spans["span_id"].to_pylist() == [CHILD]
    q = fake.hits("/api/search")[-1].arg("q")
    assert q == '{ resource.service.name = "billing" && duration >= 400ms && status = error }'
    assert fake.hits("/api/search")[-1].arg("limit") == "200"
    assert len(fake.hits(f"/api/traces/{TRACE_ID}")) == 1
    assert tempo.spans(TraceQuery(WINDOW, trace_id=TRACE_ID)).num_rows == 2
    graph = tempo.call_graph(WINDOW)
    edge = graph.edges["shop-backend", "billing"]
    assert edge["calls"] == 1 and edge["errors"] == 1 and edge["p95_ms"] == pytest.approx(446.0)


def test_missing_trace_and_malformed_answers(fake: FakeBackend) -> None:
    tempo = TempoClient(fake.url, retries=0)
    fake.route("/api/traces/abcd", Reply("trace not found", 404, {"Content-Type": "text/plain"}))
    with pytest.raises(NotFoundError, match="no trace abcd"):
        tempo.trace("abcd")
    fake.route("/api/traces/abcd", {"something": "else"})
    with pytest.raises(BackendError, match="no 'batches' or 'resourceSpans'") as exc:
        tempo.trace("abcd")
    assert exc.value.status == 200
    fake.route("/api/search", {"traces": [{"rootServiceName": "x"}]})
    with pytest.raises(BackendError, match="traceID"):
        tempo.search(WINDOW.start, WINDOW.end)
    fake.route("/api/search", {"metrics": {"inspectedBytes": "0"}})
    assert tempo.search(WINDOW.start, WINDOW.end) == []


def test_build_traceql() -> None:
    assert build_traceql(TraceQuery(WINDOW)) == "{}"
    assert build_traceql(
        TraceQuery(WINDOW, services=["a", 'b"c'], operation="GET /", min_duration_ms=1.5)
    ) == (
        '{ (resource.service.name = "a" || resource.service.name = "b\\"c") '
        '&& name = "GET /" && duration >= 1.5ms }'
    )


_ids = st.binary(min_size=8, max_size=8).filter(any)


@settings(max_examples=150, deadline=None)
@given(st.lists(_ids, min_size=1, max_size=10, unique=True), st.booleans())
def test_trace_to_table_round_trips_ids_in_either_encoding(ids, as_base64) -> None:
    encode = b64 if as_base64 else (lambda h: h)
    spans = [
        otlp_span(raw.hex(), ids[0].hex() if i else None, f"op{i}", T0 + i, 10 + i, encode=encode)
        for i, raw in enumerate(ids)
    ]
    table = trace_to_table({"batches": [batch("svc", spans)]}, "prop")
    assert table["span_id"].to_pylist() == [raw.hex() for raw in ids]
    assert set(table["trace_id"].to_pylist()) == {TRACE_ID}
    assert table["parent_id"].to_pylist() == [None] + [ids[0].hex()] * (len(ids) - 1)
    assert table["duration_ns"].to_pylist() == [10 + i for i in range(len(ids))]
