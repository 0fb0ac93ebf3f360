"""The typed OTLP reader: the walker's rows exactly, or it steps aside having added nothing."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from tests.telemetry.fast_readers import HYP, Rows, assert_agrees, walked
from tools.core.errors import InputError
from tools.telemetry.ingest import otlp_fast
from tools.telemetry.ingest.common import Fail
from tools.telemetry.ingest.otlp_json import OtlpAccumulator, add_document

# canonical shapes and the variants the walker also accepts (or rejects): the reader must agree
trace_ids = st.one_of(
    st.binary(min_size=16, max_size=16).map(bytes.hex),
    st.sampled_from(["", "0" * 32, "ABCDEF" * 5 + "01", "abc", "zz" * 16]),
)
span_ids = st.one_of(
    st.binary(min_size=8, max_size=8).map(bytes.hex),
    st.sampled_from(["", "0" * 16, "ABCDEF0123456789", "12"]),
)
int64s = st.one_of(
    st.integers(0, 2**63 - 1).map(str),
    st.integers(0, 2**63 - 1),
    st.sampled_from(["-5", " 7", "1_0", "", "x", 2**64, -1, 0, "0"]),
)
values = st.one_of(
    st.text(max_size=8).map(lambda s: {"stringValue": s}),
    st.booleans().map(lambda b: {"boolValue": b}),
    int64s.map(lambda i: {"intValue": i}),
    st.floats(allow_nan=False).map(lambda f: {"doubleValue": f}),
    st.integers(-10, 10).map(lambda i: {"doubleValue": i}),
    st.just({"arrayValue": {"values": [{"stringValue": "a"}]}}),
    st.just({}),
    st.just({"bogus": 1}),
)
attributes = st.lists(
    st.fixed_dictionaries(
        {"key": st.sampled_from(["a", "error.type", "http.status_code", "k8s.pod.name"])},
        optional={"value": values},
    ),
    max_size=4,
)
spans = st.fixed_dictionaries(
    {"traceId": trace_ids, "spanId": span_ids, "startTimeUnixNano": int64s},
    optional={
        "parentSpanId": span_ids,
        "name": st.one_of(st.text(max_size=6), st.none()),
        "kind": st.one_of(st.integers(0, 6), st.sampled_from(["SPAN_KIND_SERVER", None])),
        "endTimeUnixNano": int64s,
        "attributes": attributes,
        "status": st.one_of(
            st.none(),
            st.fixed_dictionaries(
                {},
                optional={
                    "code": st.one_of(st.integers(0, 3), st.just("STATUS_CODE_ERROR")),
                    "message": st.text(max_size=6),
                },
            ),
        ),
    },
)
documents = st.fixed_dictionaries(
    {
        "resourceSpans": st.lists(
            st.fixed_dictionaries(
                {"scopeSpans": st.lists(st.fixed_dictionaries({"spans": st.lists(spans)}))},
                optional={"resource": st.fixed_dictionaries({"attributes": attributes})},
            ),
            max_size=3,
        )
    }
)


def _walk(doc: dict) -> Rows:
    acc = OtlpAccumulator()
    add_document(doc, acc, Fail("f.json", 1))
    return acc.spans.table(), acc.counter


def _fast(doc: dict) -> tuple[bool, Rows]:
    acc = OtlpAccumulator()
    taken = otlp_fast.add_document(json.dumps(doc), acc, Fail("f.json", 1))
    return taken, (acc.spans.table(), acc.counter)


@HYP
@given(documents)
def test_typed_reader_gives_the_walkers_rows_or_steps_aside(doc: dict) -> None:
    assert_agrees(*_fast(doc), walked(lambda: _walk(doc)))


def _canonical(n: int, duplicate: bool = False) -> dict:
    spans = [
        {
            "traceId": f"{i // 3 + 1:032x}",
            "spanId": f"{i + 1:016x}",
            "name": "op",
            "kind": 2,
            "startTimeUnixNano": str(1_700_000_000_000_000_000 + i),
            "endTimeUnixNano": str(1_700_000_000_000_500_000 + i),
            "attributes": [{"key": "http.status_code", "value": {"intValue": "500"}}],
            "status": {"code": 2, "message": "boom"},
        }
        for i in range(n)
    ]
    if duplicate:
        spans.append(dict(spans[0]))
    return {"resourceSpans": [{"resource": {"attributes": []}, "scopeSpans": [{"spans": spans}]}]}


def test_the_canonical_encoding_takes_the_typed_path() -> None:
    """What the collector and our generators write must not fall back (the point of the reader)."""
    for duplicate in (False, True):
        doc = _canonical(50, duplicate)
        taken, fast = _fast(doc)
        assert taken
        assert_agrees(taken, fast, _walk(doc))
        assert fast[1].duplicates == int(duplicate)


def test_logs_beside_spans_go_through_the_walker_with_their_paths() -> None:
    doc = _canonical(3)
    doc["resourceLogs"] = [{"scopeLogs": [{"logRecords": [{"body": {"stringValue": "x"}}]}]}]
    acc = OtlpAccumulator()
    try:
        otlp_fast.add_document(json.dumps(doc), acc, Fail("f.json", 4))
    except InputError as exc:
        assert str(exc).startswith("f.json:4: resourceLogs[0].scopeLogs[0].logRecords[0]")
    else:
        raise AssertionError("a log record without a time must be refused")
    assert acc.spans.table().num_rows == 0
