"""The columnar protobuf walker: the JSON walker's rows from any request, the first bad field
named."""

from __future__ import annotations

import json

import pytest
from google.protobuf.json_format import MessageToDict
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from tools.core.errors import InputError
from tools.telemetry.ingest.common import Fail
from tools.telemetry.ingest.otlp_json import OtlpAccumulator, add_document
from tools.telemetry.otlp_protobuf import span_table

HYP = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

texts = st.text(max_size=12)
scalar_values = st.one_of(
    texts.map(lambda s: AnyValue(string_value=s)),
    st.booleans().map(lambda b: AnyValue(bool_value=b)),
    st.integers(-(2**63), 2**63 - 1).map(lambda i: AnyValue(int_value=i)),
    st.floats(allow_nan=False, allow_infinity=False).map(lambda f: AnyValue(double_value=f)),
    st.binary(max_size=6).map(lambda b: AnyValue(bytes_value=b)),
)


def _array(values: list[AnyValue]) -> AnyValue:
    v = AnyValue()
    v.array_value.values.extend(values)
    return v


values = st.one_of(scalar_values, st.lists(scalar_values, max_size=3).map(_array))
error_keys = st.sampled_from(["error_code", "http.status_code", "error.type"])
keys = st.one_of(error_keys, st.text(min_size=1, max_size=8))
ids16 = st.one_of(st.binary(min_size=16, max_size=16), st.just(b"\x01" * 16))  # repeats, too
ids8 = st.one_of(st.binary(min_size=8, max_size=8), st.just(b"\x02" * 8))


@st.composite
def requests(draw: st.DrawFn) -> ExportTraceServiceRequest:
    """Valid requests: any ids (repeated pairs, zero parents), enums, times and attributes."""
    req = ExportTraceServiceRequest()
    for _ in range(draw(st.integers(0, 3))):
        rs = req.resource_spans.add()
        if draw(st.booleans()):
            rs.resource.attributes.add(key="service.name", value=AnyValue(string_value="svc"))
        if draw(st.booleans()):
            rs.resource.attributes.add(key="k8s.pod.name", value=AnyValue(string_value="pod-1"))
        for _ in range(draw(st.integers(0, 2))):
            scope = rs.scope_spans.add()
            for _ in range(draw(st.integers(0, 4))):
                sp = scope.spans.add()
                sp.trace_id = draw(ids16.filter(any))
                sp.span_id = draw(ids8.filter(any))
                sp.parent_span_id = draw(st.one_of(st.just(b""), st.just(bytes(8)), ids8))
                sp.name = draw(texts)
                sp.kind = draw(st.integers(0, 5))
                sp.start_time_unix_nano = draw(st.integers(1, 2**62))  # the JSON walker needs one
                sp.end_time_unix_nano = draw(st.one_of(st.just(0), st.integers(1, 2**62)))
                sp.status.code = draw(st.integers(0, 2))
                sp.status.message = draw(st.one_of(st.just(""), texts))
                for k, v in draw(st.dictionaries(keys, values, max_size=3)).items():
                    sp.attributes.add(key=k, value=v)
    return req


def _json_walker_rows(req: ExportTraceServiceRequest) -> list[dict[str, object]]:
    doc = MessageToDict(req, use_integers_for_enums=True)
    if doc == {}:
        return []
    acc = OtlpAccumulator()
    add_document(doc, acc, Fail("x"), ids="base64")
    return acc.spans.table().to_pylist()


def _decoded(rows: list[dict[str, object]]) -> list[dict[str, object]]:
    """Rows with the attribute JSON parsed (two encoders may space or order floats apart)."""
    return [r | {"attributes": json.loads(r["attributes"] or "null")} for r in rows]


@HYP
@given(requests())
def test_rows_are_the_json_walkers_rows(req: ExportTraceServiceRequest) -> None:
    table, counter = span_table(req, Fail("x"))
    expected = _json_walker_rows(req)
    assert _decoded(table.to_pylist()) == _decoded(expected)
    pairs = [
        (s.trace_id, s.span_id) for r in req.resource_spans for c in r.scope_spans for s in c.spans
    ]
    assert counter.duplicates == len(pairs) - len(set(pairs))


def _request(n: int) -> ExportTraceServiceRequest:
    req = ExportTraceServiceRequest()
    for _ in range(2):
        scope = req.resource_spans.add().scope_spans.add()
        for i in range(n):
            sp = scope.spans.add()
            sp.trace_id, sp.span_id = (i + 1).to_bytes(16, "big"), (i + 1).to_bytes(8, "big")
            sp.start_time_unix_nano, sp.end_time_unix_nano = 10**18, 10**18 + 5
    return req


def _spoil(sp: object, what: str) -> None:
    if what == "traceId":
        sp.trace_id = b"\x01" * 5  # type: ignore[attr-defined]
    elif what == "parentSpanId":
        sp.parent_span_id = b"\x01" * 3  # type: ignore[attr-defined]
    elif what == "zero":
        sp.span_id = bytes(8)  # type: ignore[attr-defined]
    elif what == "startTimeUnixNano":
        sp.end_time_unix_nano = 2**63  # type: ignore[attr-defined]
    elif what == "kind":
        sp.kind = 9  # type: ignore[attr-defined]
    else:
        sp.status.code = 7  # type: ignore[attr-defined]


FIELDS = ["traceId", "parentSpanId", "zero", "startTimeUnixNano", "kind", "status.code"]


@pytest.mark.parametrize("late", FIELDS)
@pytest.mark.parametrize("early", FIELDS)
def test_the_first_bad_span_is_named_whatever_is_wrong_later(early: str, late: str) -> None:
    req = _request(4)
    _spoil(req.resource_spans[1].scope_spans[0].spans[3], late)
    _spoil(req.resource_spans[1].scope_spans[0].spans[1], early)
    with pytest.raises(InputError) as err:
        span_table(req, Fail("POST /v1/traces"))
    where = "resourceSpans[1].scopeSpans[0].spans[1]"
    assert str(err.value).startswith(f"POST /v1/traces: {where}")
    assert early == "zero" or f"{where}.{early}" in str(err.value)
