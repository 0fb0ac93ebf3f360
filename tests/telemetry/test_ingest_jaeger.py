"""Jaeger JSON parser (query API trace format): round trip, references, hostile input."""

from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.telemetry.test_ingest_otlp import json_values, paths, replaced
from tools.core.errors import InputError
from tools.telemetry.ingest import parse_text

HYP = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Shaped like the response of Jaeger's GET /api/traces/{id} (jaeger-query HTTP JSON API).
EXAMPLE = {
    "data": [
        {
            "traceID": "1f3c5a0d5e8b4a7f",
            "spans": [
                {
                    "traceID": "1f3c5a0d5e8b4a7f",
                    "spanID": "a1",
                    "flags": 1,
                    "operationName": "HTTP GET /dispatch",
                    "references": [],
                    "startTime": 1674981768697000,
                    "duration": 318316,
                    "tags": [
                        {"key": "span.kind", "type": "string", "value": "server"},
                        {"key": "http.status_code", "type": "int64", "value": 503},
                        {"key": "error", "type": "bool", "value": True},
                    ],
                    "logs": [],
                    "processID": "p1",
                    "warnings": None,
                },
                {
                    "traceID": "1f3c5a0d5e8b4a7f",
                    "spanID": "b2",
                    "operationName": "SQL SELECT",
                    "references": [
                        {"refType": "CHILD_OF", "traceID": "1f3c5a0d5e8b4a7f", "spanID": "a1"}
                    ],
                    "startTime": 1674981768698000,
                    "duration": 1000,
                    "tags": [{"key": "span.kind", "type": "string", "value": "client"}],
                    "processID": "p2",
                },
            ],
            "processes": {
                "p1": {
                    "serviceName": "frontend",
                    "tags": [{"key": "hostname", "type": "string", "value": "frontend-7d9c-x2k4p"}],
                },
                "p2": {"serviceName": "mysql", "tags": []},
            },
            "warnings": None,
        }
    ],
    "total": 0,
    "limit": 0,
    "offset": 0,
    "errors": None,
}


def test_query_api_document() -> None:
    parsed = parse_text(json.dumps(EXAMPLE), "trace.json")
    assert parsed.format == "jaeger-json"
    root, child = parsed.spans.to_pylist()
    assert root["trace_id"] == "00000000000000001f3c5a0d5e8b4a7f"  # left-padded to 32 digits
    assert root["span_id"] == "00000000000000a1" and root["parent_id"] is None
    assert (root["service"], root["pod"], root["kind"]) == (
        "frontend",
        "frontend-7d9c-x2k4p",
        "server",
    )
    assert (root["start_ns"], root["duration_ns"]) == (1674981768697000000, 318316000)
    assert (root["status"], root["error_code"]) == ("error", "503")
    assert child["parent_id"] == root["span_id"] and child["service"] == "mysql"
    assert child["status"] == "unset"


@st.composite
def jaeger_docs(draw: st.DrawFn) -> tuple[dict, list[tuple]]:
    traces, expected = [], []
    for t in range(draw(st.integers(1, 3))):
        tid = f"{draw(st.integers(1, 2**128 - 1)):032x}"
        services = draw(st.lists(st.text(min_size=1, max_size=8), min_size=1, max_size=3))
        spans = []
        for s in range(draw(st.integers(1, 4))):
            start, dur = draw(st.integers(0, 2**50)), draw(st.integers(0, 10**9))
            proc = f"p{draw(st.integers(0, len(services) - 1))}"
            refs = (
                []
                if s == 0
                else [{"refType": "CHILD_OF", "traceID": tid, "spanID": f"{t + 1}{s - 1:015x}"}]
            )
            spans.append(
                {
                    "traceID": tid,
                    "spanID": f"{t + 1}{s:015x}",
                    "operationName": f"op{s}",
                    "references": refs,
                    "startTime": start,
                    "duration": dur,
                    "tags": [],
                    "processID": proc,
                }
            )
            expected.append(
                (
                    tid,
                    f"{t + 1}{s:015x}",
                    None if s == 0 else f"{t + 1}{s - 1:015x}",
                    services[int(proc[1:])],
                    start * 1000,
                    (start + dur) * 1000,
                )
            )
        procs = {f"p{i}": {"serviceName": svc, "tags": []} for i, svc in enumerate(services)}
        traces.append({"traceID": tid, "spans": spans, "processes": procs})
    return {"data": traces}, expected


@HYP
@given(jaeger_docs())
def test_round_trip(doc_and_rows: tuple[dict, list[tuple]]) -> None:
    doc, expected = doc_and_rows
    spans = parse_text(json.dumps(doc), "j.json").spans
    cols = ["trace_id", "span_id", "parent_id", "service", "start_ns", "end_ns"]
    assert [tuple(r.values()) for r in spans.select(cols).to_pylist()] == expected


def test_follows_from_and_unknown_parent() -> None:
    doc = {
        "traceID": "ab",
        "spans": [
            {
                "traceID": "ab",
                "spanID": "c",
                "startTime": 1,
                "references": [{"refType": "FOLLOWS_FROM", "spanID": "dead"}],
                "processID": "x",
            }
        ],
        "processes": {},
    }
    (row,) = parse_text(json.dumps(doc), "bare.json", fmt="jaeger-json").spans.to_pylist()
    assert row["parent_id"] == "000000000000dead"  # kept: the parent may arrive in another file
    assert row["service"] == "unknown_service"


def test_errors_name_field() -> None:
    doc = json.loads(json.dumps(EXAMPLE))
    doc["data"][0]["spans"][1]["startTime"] = "yesterday"
    with pytest.raises(InputError, match=r"^t.json:1: data\[0\]\.spans\[1\]\.startTime: expected"):
        parse_text(json.dumps(doc), "t.json")


@HYP
@given(jaeger_docs(), st.data())
def test_truncated_or_mutated_only_raise_input_error(doc_and_rows, data) -> None:
    text = json.dumps(doc_and_rows[0])
    cut = data.draw(st.integers(0, len(text)))
    junk = data.draw(st.sampled_from(["", "x", "]", '"', "{}", "null", "-1"]))
    with contextlib.suppress(InputError):
        parse_text(text[:cut] + junk + text[cut + 1 :], "f.json", fmt="jaeger-json")


@HYP
@given(jaeger_docs(), st.data())
def test_any_subtree_replaced_by_junk_only_raises_input_error(doc_and_rows, data) -> None:
    doc = doc_and_rows[0]
    for _ in range(2):
        doc = replaced(doc, data.draw(st.sampled_from(paths(doc))), data.draw(json_values))
    with contextlib.suppress(InputError):
        parse_text(json.dumps(doc), "f.json", fmt="jaeger-json")
