"""The OTLP/HTTP receiver, fed by the real OpenTelemetry SDK exporters on a loopback port."""

from __future__ import annotations

import gzip
import json
import logging
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode

from tools.telemetry.model import TimeWindow
from tools.telemetry.otlp_receiver import OtlpReceiver
from tools.telemetry.sources import LogQuery, MetricQuery, TraceQuery
from tools.telemetry.store import TelemetryStore

ALL = TimeWindow.from_ns(0, 2**62)


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver(TelemetryStore(None), port=0, flush_interval_s=0.2) as r:
        yield r


def provider(service: str, url: str) -> TracerProvider:
    tp = TracerProvider(resource=Resource.create({"service.name": service}))
    tp.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{url}/v1/traces")))
    return tp


def test_binds_loopback_on_a_free_port(receiver: OtlpReceiver) -> None:
    assert receiver.url.startswith("http://127.0.0.1:") and receiver.port > 0


def test_spans_from_the_sdk_exporter(receiver: OtlpReceiver) -> None:
    web, cart = provider("web", receiver.url), provider("cart", receiver.url)
    with web.get_tracer("t").start_as_current_span("GET /cart", kind=SpanKind.SERVER) as root:
        root.set_attribute("http.status_code", 503)
        root.set_status(Status(StatusCode.ERROR, "upstream failed"))
        with cart.get_tracer("t").start_as_current_span("GetCart", kind=SpanKind.SERVER):
            pass
    assert web.force_flush() and cart.force_flush()
    web.shutdown(), cart.shutdown()
    receiver.flush()
    spans = {r["operation"]: r for r in receiver.store.spans(TraceQuery(ALL)).to_pylist()}
    assert set(spans) == {"GET /cart", "GetCart"}
    parent, child = spans["GET /cart"], spans["GetCart"]
    ctx = root.get_span_context()
    assert (
        parent["trace_id"] == f"{ctx.trace_id:032x}" and parent["span_id"] == f"{ctx.span_id:016x}"
    )
    assert child["parent_id"] == parent["span_id"] and child["trace_id"] == parent["trace_id"]
    assert (parent["service"], parent["kind"], parent["status"]) == ("web", "server", "error")
    assert parent["error_code"] == "503"
    assert json.loads(parent["attributes"])["otel.status_description"] == "upstream failed"
    assert child["duration_ns"] >= 0 and child["service"] == "cart"
    assert set(receiver.store.call_graph(ALL).edges) == {("web", "cart")}
    assert receiver.written["spans"] == 2


@pytest.mark.filterwarnings("ignore:.*LoggingHandler.*:DeprecationWarning")
def test_logs_and_metrics_from_the_sdk_exporters(receiver: OtlpReceiver) -> None:
    res = Resource.create({"service.name": "cart", "k8s.pod.name": "cart-5f55b6cf68-77cfw"})
    lp = LoggerProvider(resource=res)
    lp.add_log_record_processor(
        BatchLogRecordProcessor(OTLPLogExporter(endpoint=f"{receiver.url}/v1/logs"))
    )
    logger = logging.getLogger("test_otlp_receiver")
    logger.propagate = False
    handler = LoggingHandler(logger_provider=lp)
    logger.addHandler(handler)
    try:
        logger.error("redis timeout after %d ms", 500)
    finally:
        logger.removeHandler(handler)
    assert lp.force_flush()
    reader = PeriodicExportingMetricReader(
        OTLPMetricExporter(endpoint=f"{receiver.url}/v1/metrics"), export_interval_millis=60_000
    )
    mp = MeterProvider(resource=res, metric_readers=[reader])
    mp.get_meter("m").create_counter("http.requests").add(7, {"route": "/cart"})
    assert mp.force_flush()
    lp.shutdown(), mp.shutdown()
    receiver.flush()
    (log_row,) = receiver.store.logs(LogQuery(ALL)).to_pylist()
    assert log_row["body"] == "redis timeout after 500 ms" and log_row["severity"] == "ERROR"
    assert (log_row["service"], log_row["pod"]) == ("cart", "cart-5f55b6cf68-77cfw")
    # a cumulative sum: force_flush and shutdown each export the same point
    points = receiver.store.series(
        MetricQuery("http_requests", ALL, labels={"route": "/cart"})
    ).to_pylist()
    assert points and {(m["value"], m["service"]) for m in points} == {(7.0, "cart")}


def test_json_and_gzip_bodies(receiver: OtlpReceiver) -> None:
    doc = {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": "api"}}]
                },
                "scopeSpans": [
                    {
                        "spans": [
                            {
                                "traceId": "5b8efff798038103d269b633813fc60c",
                                "spanId": "eee19b7ec3c1b174",
                                "name": "x",
                                "startTimeUnixNano": "1",
                                "endTimeUnixNano": "2",
                            }
                        ]
                    }
                ],
            }
        ]
    }
    r = httpx.post(f"{receiver.url}/v1/traces", json=doc)
    assert r.status_code == 200 and r.json() == {}
    body = gzip.compress(json.dumps(doc).replace('"name": "x"', '"name": "y"').encode())
    headers = {"content-type": "application/json", "content-encoding": "gzip"}
    assert httpx.post(f"{receiver.url}/v1/traces", content=body, headers=headers).status_code == 200
    receiver.flush()
    assert sorted(receiver.store.spans(TraceQuery(ALL)).column("operation").to_pylist()) == [
        "x",
        "y",
    ]


def test_bad_requests_are_refused_and_store_nothing(receiver: OtlpReceiver) -> None:
    url = f"{receiver.url}/v1/traces"
    bad = httpx.post(url, json={"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": 1}]}]}]})
    assert bad.status_code == 400
    assert "resourceSpans[0].scopeSpans[0].spans[0].traceId" in bad.json()["message"]
    proto = httpx.post(
        url, content=b"\xff\xff\xff", headers={"content-type": "application/x-protobuf"}
    )
    assert proto.status_code == 400
    assert httpx.post(url, content=b"x", headers={"content-type": "text/plain"}).status_code == 415
    gz = httpx.post(
        url,
        content=b"nope",
        headers={"content-type": "application/json", "content-encoding": "gzip"},
    )
    assert gz.status_code == 400
    assert httpx.get(url).status_code == 405
    receiver.flush()
    assert receiver.store.counts() == {"spans": 0, "logs": 0, "metrics": 0}
    assert receiver.rejected == 4


def _trace_request(n: int, *, trace_id: bytes | None = None) -> bytes:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue

    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.add(key="service.name", value=AnyValue(string_value="pay"))
    scope = rs.scope_spans.add()
    for i in range(n):
        sp = scope.spans.add()
        sp.trace_id = trace_id if trace_id is not None else (i + 1).to_bytes(16, "big")
        sp.span_id = (i + 1).to_bytes(8, "big")
        sp.name, sp.kind = "charge", 2
        sp.start_time_unix_nano, sp.end_time_unix_nano = 10**18 + i, 10**18 + i + 5_000_000
        sp.attributes.add(key="error_code", value=AnyValue(string_value="CARD_DECLINED"))
        sp.status.code = 2
    return req.SerializeToString()


PB = {"content-type": "application/x-protobuf"}


def test_an_acknowledged_export_is_already_stored(receiver: OtlpReceiver) -> None:
    r = httpx.post(f"{receiver.url}/v1/traces", content=_trace_request(300), headers=PB)
    assert r.status_code == 200
    assert receiver.store.counts()["spans"] == 300  # no flush: acknowledged means committed
    row = receiver.store.spans(TraceQuery(ALL, limit=1)).to_pylist()[0]
    assert (row["service"], row["status"], row["error_code"]) == ("pay", "error", "CARD_DECLINED")


def test_a_bad_protobuf_field_is_named_and_nothing_is_stored(receiver: OtlpReceiver) -> None:
    r = httpx.post(
        f"{receiver.url}/v1/traces", content=_trace_request(3, trace_id=b"\x01" * 5), headers=PB
    )
    assert r.status_code == 400
    from google.rpc.status_pb2 import Status

    msg = Status.FromString(r.content).message
    assert "resourceSpans[0].scopeSpans[0].spans[0].traceId" in msg and "5 bytes" in msg
    assert receiver.store.counts()["spans"] == 0


def test_a_client_gone_mid_request_loses_nothing_acknowledged(receiver: OtlpReceiver) -> None:
    import socket as socketlib

    assert httpx.post(f"{receiver.url}/v1/traces", content=_trace_request(5), headers=PB).is_success
    with socketlib.create_connection(("127.0.0.1", receiver.port)) as s:
        s.sendall(
            b"POST /v1/traces HTTP/1.1\r\nhost: x\r\ncontent-type: application/x-protobuf\r\n"
            b"content-length: 100000\r\n\r\n" + _trace_request(50)[:40]
        )
    assert httpx.post(f"{receiver.url}/v1/traces", content=_trace_request(7), headers=PB).is_success
    receiver.flush()
    assert receiver.store.counts()["spans"] == 5 + 7  # the cut request left nothing


class _SlowStore(TelemetryStore):
    """A store whose writes wait until released: the writer falls behind."""

    def __init__(self) -> None:
        super().__init__(None)
        self.entered, self.release = threading.Event(), threading.Event()

    def insert_many(self, items, **kw):  # type: ignore[no-untyped-def,override]
        self.entered.set()
        self.release.wait(20)
        return super().insert_many(items, **kw)


def test_a_full_queue_answers_429_and_what_was_accepted_is_stored() -> None:
    store = _SlowStore()
    codes: list[int] = []

    def post(url: str) -> None:
        r = httpx.post(url, content=_trace_request(100), headers=PB, timeout=30)
        codes.append(r.status_code)

    with OtlpReceiver(store, port=0, max_pending_rows=150) as r:
        url = f"{r.url}/v1/traces"
        first = threading.Thread(target=post, args=(url,))
        first.start()
        assert store.entered.wait(10)  # the writer holds export 1 in its transaction
        second = threading.Thread(target=post, args=(url,))
        second.start()
        deadline = time.monotonic() + 10
        while r._writer._rows < 100 and time.monotonic() < deadline:
            time.sleep(0.01)  # export 2 waits in the queue
        third = httpx.post(url, content=_trace_request(100), headers=PB, timeout=30)
        assert third.status_code == 429 and third.headers["retry-after"] == "1"
        store.release.set()
        first.join(30), second.join(30)
        assert codes == [200, 200]
    assert store.counts()["spans"] == 200
