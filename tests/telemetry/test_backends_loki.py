"""LokiClient against a real HTTP server answering exactly as Loki's HTTP API documentation shows.

Response shapes follow https://grafana.com/docs/loki/latest/reference/loki-http-api/ :
``GET /loki/api/v1/query_range`` -> ``{"status": "success", "data": {"resultType": "streams",
"result": [{"stream": {labels}, "values": [["<ns>", "<line>"], ...]}], "stats": {...}}}``;
``GET /loki/api/v1/labels`` and ``/loki/api/v1/label/<name>/values`` -> ``{"status": "success",
"data": [...]}``. The query_range handler below honours ``start``/``end``/``limit``/``direction``
like Loki does, so paging is tested against real semantics rather than a fixed script.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.telemetry.test_backends_http import FakeBackend, Reply, Request, running_fake
from tools.core.errors import BackendError
from tools.telemetry.backends.loki import LokiClient, build_logql, streams_to_table
from tools.telemetry.model import LOG_SCHEMA, TimeWindow
from tools.telemetry.sources import LogQuery

T0 = 1_675_000_000 * 10**9
WINDOW = TimeWindow.from_ns(T0, T0 + 60 * 10**9)
STATS = {"summary": {"bytesProcessedPerSecond": 0, "execTime": 0.001}}

ENTRIES = [
    (
        {"service_name": "cart", "pod": "cart-5d8f7c9b6d-x2k4p", "level": "info"},
        T0 + 1,
        "GET /cart 200",
    ),
    (
        {"service_name": "cart", "pod": "cart-5d8f7c9b6d-x2k4p", "level": "error"},
        T0 + 2,
        "db timeout trace=abc123",
    ),
    ({"service_name": "payment", "level": "warn"}, T0 + 2, "retrying charge"),
    (
        {"service_name": "cart", "pod": "cart-5d8f7c9b6d-x2k4p", "level": "info"},
        T0 + 3,
        "GET /cart 200",
    ),
    ({"service_name": "payment", "level": "info"}, T0 + 5, "charged"),
]


def _query_range(req: Request) -> Reply:
    """Loki's semantics for a stream selector on service_name: [start, end), forward, limit."""
    start, end, limit = int(req.arg("start")), int(req.arg("end")), int(req.arg("limit"))
    assert req.arg("direction") == "forward"
    query = req.arg("query")
    picked = [
        (labels, ts, line)
        for labels, ts, line in ENTRIES
        if start <= ts < end and ('"payment"' not in query or labels["service_name"] == "payment")
    ][:limit]
    streams: dict[str, dict] = {}
    for labels, ts, line in picked:
        key = json.dumps(labels, sort_keys=True)
        streams.setdefault(key, {"stream": labels, "values": []})["values"].append([str(ts), line])
    data = {"resultType": "streams", "result": list(streams.values()), "stats": STATS}
    return Reply({"status": "success", "data": data})


@pytest.fixture
def fake() -> Iterator[FakeBackend]:
    yield from running_fake()


@pytest.fixture
def loki(fake: FakeBackend) -> LokiClient:
    fake.route(
        "/loki/api/v1/labels", {"status": "success", "data": ["level", "pod", "service_name"]}
    )
    fake.route(
        "/loki/api/v1/label/service_name/values", {"status": "success", "data": ["cart", "payment"]}
    )
    fake.handle("/loki/api/v1/query_range", _query_range)
    return LokiClient(fake.url, backoff_s=0.01)


def test_logs_pages_through_the_window_in_time_order(loki: LokiClient, fake: FakeBackend) -> None:
    loki.page_size = 2
    table = loki.logs(LogQuery(WINDOW))
    assert table.schema == LOG_SCHEMA
    assert table["ts_ns"].to_pylist() == [T0 + 1, T0 + 2, T0 + 2, T0 + 3, T0 + 5]
    assert table["body"].to_pylist()[1:3] == ["db timeout trace=abc123", "retrying charge"]
    first = table.to_pylist()[1]
    assert first["service"] == "cart" and first["pod"] == "cart-5d8f7c9b6d-x2k4p"
    assert first["severity"] == "ERROR"
    assert json.loads(first["attributes"])["service_name"] == "cart"
    pages = fake.hits("/loki/api/v1/query_range")
    # [+1 +2c] [+2c +2p] [+2c +2p: nothing new, step past +2] [+3 +5] [+5: short page, done]
    assert [p.arg("start") for p in pages] == [str(T0 + d) for d in (0, 2, 2, 3, 5)]
    assert pages[0].arg("query") == '{service_name=~".+"}'
    assert pages[0].arg("start") == str(T0) and pages[0].arg("end") == str(T0 + 60 * 10**9)


def test_logs_limit_services_substring_regex_and_trace_id(
    loki: LokiClient, fake: FakeBackend
) -> None:
    assert loki.logs(LogQuery(WINDOW, limit=3)).num_rows == 3
    payment = loki.logs(LogQuery(WINDOW, services=["payment"], query='charge "x"'))
    assert set(payment["service"].to_pylist()) == {"payment"}
    assert fake.requests[-1].arg("query") == '{service_name=~"payment"} |= "charge \\"x\\""'
    loki.logs(
        LogQuery(
            WINDOW, services=["cart", "ts.order"], query="time(out)?", regex=True, trace_id="abc123"
        )
    )
    assert fake.requests[-1].arg("query") == (
        '{service_name=~"cart|ts\\\\.order"} |~ "time(out)?" |= "abc123"'
    )
    loki.logs(LogQuery(WINDOW, query='{app="cart"} | json | level="error"'))
    assert fake.requests[-1].arg("query") == '{app="cart"} | json | level="error"'
    assert len(fake.hits("/loki/api/v1/labels")) == 1  # the service label is discovered once


def test_labels_and_label_values(loki: LokiClient) -> None:
    assert loki.labels() == ["level", "pod", "service_name"]
    start = datetime(2023, 1, 29, tzinfo=UTC)
    assert loki.label_values("service_name", start, WINDOW.end) == ["cart", "payment"]


def test_configured_service_label_and_error_shapes(fake: FakeBackend) -> None:
    fake.route(
        "/loki/api/v1/query_range",
        Reply("parse error at line 1, col 1: syntax error: unexpected IDENTIFIER", 400),
    )
    loki = LokiClient(fake.url, service_label="app", backoff_s=0.01)
    with pytest.raises(BackendError) as exc:
        loki.logs(LogQuery(WINDOW, services=["cart"]))
    assert exc.value.status == 400 and "syntax error" in str(exc.value)
    assert fake.requests[-1].arg("query") == '{app=~"cart"}'
    assert not fake.hits("/loki/api/v1/labels")
    matrix = {"status": "success", "data": {"resultType": "matrix", "result": []}}
    fake.route("/loki/api/v1/query_range", matrix)
    with pytest.raises(BackendError, match="resultType 'matrix' is not 'streams'"):
        loki.logs(LogQuery(WINDOW))


def test_structured_metadata_of_loki_3_fills_trace_and_span_ids() -> None:
    result = [
        {
            "stream": {"service_name": "cart"},
            "values": [
                [
                    str(T0),
                    "charged",
                    {"structuredMetadata": {"trace_id": "ab12", "span_id": "cd34"}},
                ]
            ],
        }
    ]
    row = streams_to_table(result).to_pylist()[0]
    assert (row["trace_id"], row["span_id"], row["service"]) == ("ab12", "cd34", "cart")


_label_sets = st.dictionaries(
    st.sampled_from(["service_name", "app", "job", "pod", "level", "trace_id", "container"]),
    st.text(min_size=1, max_size=8),
    max_size=5,
)
_streams = st.lists(
    st.fixed_dictionaries(
        {
            "stream": _label_sets,
            "values": st.lists(
                st.tuples(st.integers(0, 2**62).map(str), st.text(max_size=30)).map(list),
                max_size=6,
            ),
        }
    ),
    max_size=5,
)


@settings(max_examples=200, deadline=None)
@given(_streams, st.sampled_from([None, "app", "job"]))
def test_streams_to_table_keeps_every_line_in_time_order(streams, service_label) -> None:
    table = streams_to_table(streams, service_label)
    lines = [(int(ts), line) for s in streams for ts, line in s["values"]]
    assert table.num_rows == len(lines)
    assert sorted(
        zip(table["ts_ns"].to_pylist(), table["body"].to_pylist(), strict=True)
    ) == sorted(lines)
    assert table["ts_ns"].to_pylist() == sorted(ts for ts, _ in lines)
    for s in streams:
        labels = s["stream"]
        for ts, line in s["values"]:
            row = next(
                r
                for r in table.to_pylist()
                if r["ts_ns"] == int(ts)
                and r["body"] == line
                and json.loads(r["attributes"] or "{}") == labels
            )
            if service_label and labels.get(service_label):
                assert row["service"] == labels[service_label]
            elif labels.get("service_name"):
                assert row["service"] == labels["service_name"]
            assert row["trace_id"] == (labels.get("trace_id") or None)
            assert row["severity"] == (labels["level"].upper() if labels.get("level") else None)


def test_build_logql_escapes_quotes_and_backslashes() -> None:
    assert (
        build_logql("app", LogQuery(WINDOW, services=["a"], query='say "hi" \\o/'))
        == '{app=~"a"} |= "say \\"hi\\" \\\\o/"'
    )
