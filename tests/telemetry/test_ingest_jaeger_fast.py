"""The typed Jaeger reader: the walker's rows exactly, or it steps aside having added nothing."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.telemetry.fast_readers import HYP, Rows, assert_agrees, assert_error, fields, walked
from tools.telemetry.ingest import jaeger_fast, jaeger_json
from tools.telemetry.ingest.common import Counter, Fail, span_rows

TAG_KEYS = ["a", "span.kind", "error", "otel.status_code", "error.type", "http.status_code"]


def _documents(variants: bool) -> st.SearchStrategy[object]:
    """Jaeger documents: the query API's shape only, or with the variants the walker also
    accepts (or rejects) mixed in; half the examples are canonical, so the typed path is tested
    with rows, not only by stepping aside."""
    field = fields(variants)
    trace_ids = field(
        st.one_of(
            st.binary(min_size=16, max_size=16).filter(any).map(bytes.hex),
            st.integers(1, 2**40).map(lambda i: f"{i:x}"),  # leading zeros dropped, as Jaeger
        ),
        *["", "0" * 32, "0", "ABCDEF01", "zz", "1" * 33, 7, None],
    )
    span_ids = field(
        st.one_of(
            st.binary(min_size=8, max_size=8).filter(any).map(bytes.hex),
            st.integers(1, 2**20).map(lambda i: f"{i:x}"),
        ),
        *["", "0" * 16, "ABCDEF0123456789", "1" * 17, None],
    )
    micros = field(
        st.integers(0, 2**53),
        *["17", 2**63 // 1000 + 1, -1, "-5", " 7", "", "x", 1.0, 1.5, True, None],
    )
    tag_values = field(
        st.one_of(
            st.text(max_size=6),
            st.integers(-5, 600),
            st.booleans(),
            st.sampled_from(["true", "ERROR", "server", "client", "bogus", 1.5]),
        ),
        *[None, [1], {"a": 1}],
    )
    tags = st.lists(
        st.fixed_dictionaries(
            {"key": field(st.sampled_from([*TAG_KEYS, "k8s.pod.name", "hostname"]), 3)},
            optional={"value": tag_values, "type": st.just("string")},
        ),
        max_size=4,
    )
    references = st.lists(
        st.fixed_dictionaries(
            {"spanID": span_ids},
            optional={
                "refType": field(
                    st.sampled_from(["CHILD_OF", "FOLLOWS_FROM", "child_of", "OTHER"]), None
                ),
            },
        ),
        max_size=3,
    )
    optional_span = {
        "traceID": trace_ids,
        "operationName": field(st.text(max_size=6), None),
        "references": references,
        "duration": micros,
        "tags": tags,
        "processID": field(st.sampled_from(["p1", "p2", "missing", ""]), 5, None),
    }
    if variants:
        optional_span["process"] = st.sampled_from([{}, {"serviceName": "inline"}, None])
    spans = st.fixed_dictionaries({"spanID": span_ids, "startTime": micros}, optional=optional_span)
    processes = st.dictionaries(
        st.sampled_from(["p1", "p2"]),
        st.fixed_dictionaries(
            {},
            optional={"serviceName": field(st.sampled_from(["front", ""]), None, 4), "tags": tags},
        ),
        max_size=2,
    )
    traces = st.fixed_dictionaries(
        {"spans": st.lists(spans, max_size=5), "traceID": trace_ids},
        optional={"processes": processes},
    )
    shapes = [
        st.fixed_dictionaries({"data": st.lists(traces, max_size=3)}),
        st.lists(traces, max_size=2),
        traces,
    ]
    if variants:
        shapes.append(st.sampled_from([{"data": None}, {"other": 1}, {"data": [3]}]))
    return st.one_of(shapes)


documents = st.one_of(_documents(variants=False), _documents(variants=True))


def _walk(doc: object) -> Rows:
    rows, counter = span_rows(), Counter()
    jaeger_json.add_document(doc, rows, set(), counter, Fail("f.json", 1))
    return rows.table(), counter


def _fast(doc: object) -> tuple[bool, Rows]:
    rows, counter = span_rows(), Counter()
    taken = jaeger_fast.add_document(json.dumps(doc), rows, set(), counter)
    return taken, (rows.table(), counter)


@HYP
@given(documents)
def test_typed_reader_gives_the_walkers_rows_or_steps_aside(doc: object) -> None:
    assert_agrees(*_fast(doc), walked(lambda: _walk(doc)))


def _query_api(n: int, duplicate: bool = False) -> dict:
    """What ``/api/traces`` returns: ids without leading zeros, a processes table, scalar tags."""
    spans = [
        {
            "traceID": f"{i // 3 + 1:x}",
            "spanID": f"{i + 1:x}",
            "operationName": "op",
            "references": [{"refType": "CHILD_OF", "traceID": f"{i // 3 + 1:x}", "spanID": "1"}]
            if i % 3
            else [],
            "startTime": 1_700_000_000_000_000 + i,
            "duration": 500,
            "tags": [
                {"key": "span.kind", "type": "string", "value": "server"},
                {"key": "http.status_code", "type": "int64", "value": 500},
                {"key": "error", "type": "bool", "value": True},
            ],
            "processID": "p1",
        }
        for i in range(n)
    ]
    if duplicate:
        spans.append(dict(spans[0]))
    processes = {"p1": {"serviceName": "front", "tags": [{"key": "hostname", "value": "front-1"}]}}
    return {"data": [{"traceID": "1", "spans": spans, "processes": processes}]}


def test_the_query_api_shape_takes_the_typed_path() -> None:
    """What Jaeger and our generators write must not fall back (the point of the reader)."""
    for duplicate in (False, True):
        doc = _query_api(50, duplicate)
        taken, fast = _fast(doc)
        assert taken
        assert_agrees(taken, fast, _walk(doc))
        assert fast[1].duplicates == int(duplicate)


@pytest.mark.parametrize(
    ("spans_field", "message"),
    [
        ({"spanID": "zz", "startTime": 1}, "f.json:2: data[0].spans[0].spanID: expected a hex id"),
        ({"spanID": "1", "startTime": -1}, "f.json:2: data[0].spans[0].startTime: time out of"),
        ({"spanID": "1"}, "f.json:2: data[0].spans[0].startTime: expected an integer"),
    ],
)
def test_bad_input_is_still_the_walkers_one_line_error(spans_field: dict, message: str) -> None:
    good = json.dumps(_query_api(2))
    bad = json.dumps({"data": [{"traceID": "1", "spans": [spans_field]}]})
    assert_error(f"{good}\n{bad}\n", "f.json", "jaeger-json", message)
