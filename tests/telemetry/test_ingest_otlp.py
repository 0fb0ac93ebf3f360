"""OTLP JSON parser: spec-shaped documents round-trip; hostile input only raises InputError."""

from __future__ import annotations

import base64
import contextlib
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tools.core.errors import InputError
from tools.telemetry.ingest import parse_file, parse_text
from tools.telemetry.ingest.common import MAX_ATTRIBUTES_CHARS, MAX_VALUE_CHARS, Fail
from tools.telemetry.ingest.otlp_json import OtlpAccumulator, add_document

HYP = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])

ids16 = st.binary(min_size=16, max_size=16).filter(any).map(bytes.hex)
ids8 = st.binary(min_size=8, max_size=8).filter(any).map(bytes.hex)
names = st.text(min_size=1, max_size=20)
nanos = st.integers(min_value=1, max_value=2**62)
scalars = st.one_of(
    names.map(lambda s: ({"stringValue": s}, s)),
    st.booleans().map(lambda b: ({"boolValue": b}, b)),
    st.integers(-(2**63), 2**63 - 1).map(lambda i: ({"intValue": str(i)}, i)),
    st.floats(allow_nan=False, allow_infinity=False).map(lambda f: ({"doubleValue": f}, f)),
)
attributes = st.dictionaries(st.text(min_size=1, max_size=10), scalars, max_size=4)


def kv(attrs: dict) -> list[dict]:
    return [{"key": k, "value": v[0]} for k, v in attrs.items()]


def resource(service: str) -> dict:
    return {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]}


@st.composite
def trace_docs(draw: st.DrawFn) -> tuple[dict, list[dict]]:
    """A valid ExportTraceServiceRequest and the rows it must give."""
    expected, resource_spans = [], []
    seen: set[tuple[str, str]] = set()
    for _ in range(draw(st.integers(1, 3))):
        service = draw(names)
        spans = []
        for _ in range(draw(st.integers(0, 4))):
            tid, sid = draw(ids16), draw(ids8)
            if (tid, sid) in seen:
                continue
            seen.add((tid, sid))
            parent = draw(st.one_of(st.none(), ids8))
            start = draw(nanos)
            dur = draw(st.integers(0, 10**12))
            kind, code = draw(st.integers(0, 5)), draw(st.integers(0, 2))
            attrs = draw(attributes)
            name = draw(st.text(max_size=20))
            span = {
                "traceId": tid,
                "spanId": sid,
                "name": name,
                "kind": kind,
                "startTimeUnixNano": str(start),
                "endTimeUnixNano": str(start + dur),
                "attributes": kv(attrs),
                "status": {"code": code},
            }
            if parent is not None:
                span["parentSpanId"] = parent
            spans.append(span)
            expected.append(
                {
                    "trace_id": tid,
                    "span_id": sid,
                    "parent_id": parent,
                    "service": service,
                    "operation": name,
                    "kind": [None, "internal", "server", "client", "producer", "consumer"][kind],
                    "start_ns": start,
                    "end_ns": start + dur,
                    "duration_ns": dur,
                    "status": ["unset", "ok", "error"][code],
                    "attributes": {k: v[1] for k, v in attrs.items()} or None,
                }
            )
        resource_spans.append({"resource": resource(service), "scopeSpans": [{"spans": spans}]})
    return {"resourceSpans": resource_spans}, expected


@HYP
@given(trace_docs())
def test_traces_round_trip(doc_and_rows: tuple[dict, list[dict]]) -> None:
    doc, expected = doc_and_rows
    parsed = parse_text(json.dumps(doc), "t.json")
    assert parsed.format == "otlp-json"
    rows = parsed.spans.to_pylist()
    for row in rows:
        row["attributes"] = None if row["attributes"] is None else json.loads(row["attributes"])
        row.pop("pod"), row.pop("error_code")
    assert rows == expected


@st.composite
def log_docs(draw: st.DrawFn) -> tuple[dict, list[dict]]:
    records, expected = [], []
    for _ in range(draw(st.integers(1, 5))):
        ts, body = draw(nanos), draw(st.text(max_size=50))
        sev = draw(st.sampled_from([(9, "INFO"), (17, "ERROR"), (13, "WARN"), (1, "TRACE")]))
        tid = draw(st.one_of(st.none(), ids16))
        rec = {"timeUnixNano": str(ts), "severityNumber": sev[0], "body": {"stringValue": body}}
        if tid:
            rec["traceId"] = tid
        records.append(rec)
        expected.append({"ts_ns": ts, "severity": sev[1], "body": body, "trace_id": tid})
    doc = {"resourceLogs": [{"resource": resource("svc"), "scopeLogs": [{"logRecords": records}]}]}
    return doc, expected


@HYP
@given(log_docs())
def test_logs_round_trip(doc_and_rows: tuple[dict, list[dict]]) -> None:
    doc, expected = doc_and_rows
    logs = parse_text(json.dumps(doc), "l.json").logs
    got = logs.select(["ts_ns", "severity", "body", "trace_id"]).to_pylist()
    assert got == expected
    assert set(logs.column("service").to_pylist()) == {"svc"}


@HYP
@given(
    st.lists(
        st.tuples(
            st.text(alphabet="abcdefghij._", min_size=1, max_size=12),
            nanos,
            st.floats(allow_nan=False),
        ),
        min_size=1,
        max_size=6,
    )
)
def test_gauges_and_sums_round_trip(points: list[tuple[str, int, float]]) -> None:
    metrics = [
        {
            "name": name,
            ("gauge" if i % 2 else "sum"): {
                "dataPoints": [
                    {
                        "timeUnixNano": str(ts),
                        "asDouble": v,
                        "attributes": kv({"k": ({"stringValue": "x"}, "x")}),
                    }
                ]
            },
        }
        for i, (name, ts, v) in enumerate(points)
    ]
    doc = {
        "resourceMetrics": [{"resource": resource("svc"), "scopeMetrics": [{"metrics": metrics}]}]
    }
    got = parse_text(json.dumps(doc), "m.json").metrics.to_pylist()
    assert [(r["name"], r["ts_ns"], r["value"]) for r in got] == [
        (n.replace(".", "_"), ts, v) for n, ts, v in points
    ]
    assert all(json.loads(r["labels"]) == {"k": "x", "service": "svc"} for r in got)


def test_histogram_becomes_prometheus_buckets() -> None:
    dp = {
        "timeUnixNano": "1700000000000000000",
        "count": "6",
        "sum": 2.5,
        "bucketCounts": ["1", "2", "3"],
        "explicitBounds": [0.1, 1],
        "attributes": kv({"route": ({"stringValue": "/a"}, "/a")}),
    }
    doc = {
        "resourceMetrics": [
            {
                "resource": resource("api"),
                "scopeMetrics": [
                    {
                        "metrics": [
                            {"name": "http.server.duration", "histogram": {"dataPoints": [dp]}}
                        ]
                    }
                ],
            }
        ]
    }
    got = {
        (r["name"], json.loads(r["labels"]).get("le")): r["value"]
        for r in parse_text(json.dumps(doc), "h.json").metrics.to_pylist()
    }
    assert got == {
        ("http_server_duration_count", None): 6.0,
        ("http_server_duration_sum", None): 2.5,
        ("http_server_duration_bucket", "0.1"): 1.0,
        ("http_server_duration_bucket", "1.0"): 3.0,
        ("http_server_duration_bucket", "+Inf"): 6.0,
    }


def test_jsonl_of_requests_and_ids_from_base64() -> None:
    span = {
        "traceId": "0af7651916cd43dd8448eb211c80319c",
        "spanId": "b7ad6b7169203331",
        "name": "x",
        "startTimeUnixNano": "5",
        "endTimeUnixNano": "9",
    }
    line = json.dumps(
        {"resourceSpans": [{"resource": resource("a"), "scopeSpans": [{"spans": [span]}]}]}
    )
    parsed = parse_text(line + "\n\n" + line.replace('"a"', '"b"') + "\n", "t.jsonl")
    # the same span id twice: the duplicate is dropped and said so
    assert parsed.spans.num_rows == 1 and parsed.warnings == [
        "1 duplicate span(s) dropped (same trace and span id)"
    ]
    b64 = dict(
        span,
        traceId=base64.b64encode(bytes.fromhex(span["traceId"])).decode(),
        spanId=base64.b64encode(bytes.fromhex(span["spanId"])).decode(),
    )
    acc = OtlpAccumulator()
    doc = {"resourceSpans": [{"resource": resource("a"), "scopeSpans": [{"spans": [b64]}]}]}
    add_document(doc, acc, Fail("body"), ids="base64")
    assert acc.spans.table().column("trace_id").to_pylist() == [span["traceId"]]


def test_huge_attributes_are_capped() -> None:
    attrs = {f"k{i}": ("x" * 10_000, None) for i in range(20)}
    span = {
        "traceId": "1" * 32,
        "spanId": "2" * 16,
        "name": "n",
        "startTimeUnixNano": "1",
        "attributes": kv({k: ({"stringValue": v[0]}, 0) for k, v in attrs.items()}),
    }
    doc = {"resourceSpans": [{"resource": resource("a"), "scopeSpans": [{"spans": [span]}]}]}
    parsed = parse_text(json.dumps(doc), "big.json")
    text = parsed.spans.column("attributes")[0].as_py()
    assert len(text) <= MAX_ATTRIBUTES_CHARS
    kept = json.loads(text)
    assert kept["tamo.truncated"] is True
    assert all(len(v) <= MAX_VALUE_CHARS for k, v in kept.items() if k.startswith("k"))
    assert parsed.spans.column("end_ns")[0].as_py() is None  # never ended
    assert any("truncated" in w for w in parsed.warnings)


@pytest.mark.parametrize(
    ("text", "where", "what"),
    [
        (
            '{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz"}]}]}]}',
            "t.json:1",
            "resourceSpans[0].scopeSpans[0].spans[0].traceId: expected a hex id",
        ),
        (
            '{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "01", "spanId": "02", '
            '"startTimeUnixNano": "soon"}]}]}]}',
            "t.json:1",
            "startTimeUnixNano: expected an integer",
        ),
        (
            '{"resourceLogs": [{"scopeLogs": [{"logRecords": [{}]}]}]}',
            "t.json:1",
            "needs timeUnixNano",
        ),
        ('{"resourceSpans": [\n  {"scopeSpans": [}\n]}', "t.json:2", "invalid JSON"),
        ('{"hello": 1}', "t.json", "unrecognised telemetry format"),
    ],
)
def test_bad_documents_name_file_line_and_field(text: str, where: str, what: str) -> None:
    with pytest.raises(InputError) as err:
        parse_text(text, "t.json")
    assert str(err.value).startswith(where + ":") and what in str(err.value)


def test_jsonl_error_names_its_line(tmp_path: Path) -> None:
    good = json.dumps({"resourceLogs": []})
    path = tmp_path / "x.jsonl"
    path.write_text(f"{good}\n{good}\n{{oops\n")
    with pytest.raises(InputError, match=r"x.jsonl:3: invalid JSON"):
        parse_file(path)


@HYP
@given(trace_docs(), st.data())
def test_truncated_or_mutated_documents_only_raise_input_error(doc_and_rows, data) -> None:
    text = json.dumps(doc_and_rows[0])
    cut = data.draw(st.integers(0, len(text)))
    mutated = data.draw(st.sampled_from([text[:cut], text[:cut] + "x" + text[cut + 1 :]]))
    with contextlib.suppress(InputError):
        parse_text(mutated, "f.json", fmt="otlp-json")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=12), inner, max_size=3)
    ),
    max_leaves=12,
)


@HYP
@given(st.sampled_from(["resourceSpans", "resourceLogs", "resourceMetrics"]), json_values)
def test_arbitrary_json_under_otlp_keys_only_raises_input_error(key: str, value: object) -> None:
    with contextlib.suppress(InputError):
        parse_text(json.dumps({key: value}), "f.json", fmt="otlp-json")


def paths(node: object, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += paths(v, (*prefix, i))
    return out


def replaced(node: object, path: tuple, value: object) -> object:
    if not path:
        return value
    copy = dict(node) if isinstance(node, dict) else list(node)  # type: ignore[call-overload]
    copy[path[0]] = replaced(copy[path[0]], path[1:], value)
    return copy


@HYP
@given(st.one_of(trace_docs().map(lambda d: d[0]), log_docs().map(lambda d: d[0])), st.data())
def test_any_subtree_replaced_by_junk_only_raises_input_error(doc: dict, data) -> None:
    path = data.draw(st.sampled_from(paths(doc)))
    junk = replaced(doc, path, data.draw(json_values))
    with contextlib.suppress(InputError):
        parse_text(json.dumps(junk), "f.json", fmt="otlp-json")
