"""Format detection and ``TelemetryStore.ingest_file``: idempotent, atomic per file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tools.core.errors import InputError
from tools.telemetry.ingest import detect_format, parse_file
from tools.telemetry.store import TelemetryStore

OTLP_TRACE = {
    "resourceSpans": [
        {
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "api"}}]},
            "scopeSpans": [
                {
                    "spans": [
                        {
                            "traceId": "5b8efff798038103d269b633813fc60c",
                            "spanId": f"{i + 1:016x}",
                            "name": "GET /",
                            "startTimeUnixNano": str(1_700_000_000_000_000_000 + i),
                            "endTimeUnixNano": str(1_700_000_000_001_000_000 + i),
                        }
                        for i in range(5)
                    ]
                }
            ],
        }
    ]
}


@pytest.mark.parametrize(
    ("text", "fmt"),
    [
        (json.dumps(OTLP_TRACE), "otlp-json"),
        (json.dumps(OTLP_TRACE, indent=2), "otlp-json"),
        ('{"resourceLogs": []}\n{"resourceLogs": []}', "otlp-json"),
        ('{"data": [{"traceID": "a", "spans": []}]}', "jaeger-json"),
        ('{\n  "data": [{"traceID": "a"}]}', "jaeger-json"),
        ("# HELP up x\n# TYPE up gauge\nup 1\n", "prom-text"),
        ('http_requests_total{code="200"} 3 1700000000000\n', "prom-text"),
        ('{"ts": 1, "msg": "hi"}\n', "jsonl-logs"),
        ("hello world", None),
        ("", None),
    ],
)
def test_detect_format(text: str, fmt: str | None) -> None:
    assert detect_format(text) == fmt


def test_ingest_file_is_idempotent_and_replaces(tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    path.write_text(json.dumps(OTLP_TRACE))
    store = TelemetryStore(None)
    first = store.ingest_file(path)
    assert (first.format, first.spans, first.rows) == ("otlp-json", 5, 5)
    store.ingest_file(path)
    assert store.counts()["spans"] == 5
    smaller = json.loads(json.dumps(OTLP_TRACE))
    del smaller["resourceSpans"][0]["scopeSpans"][0]["spans"][2:]
    path.write_text(json.dumps(smaller))
    store.ingest_file(path)
    assert store.counts()["spans"] == 2


def test_a_bad_file_leaves_the_store_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    path.write_text(json.dumps(OTLP_TRACE))
    store = TelemetryStore(tmp_path / "s.duckdb")
    store.ingest_file(path)
    before = store.sources()
    broken = json.dumps(OTLP_TRACE)[:-40]
    path.write_text(broken)
    with pytest.raises(InputError, match=r"t.json:1: invalid JSON"):
        store.ingest_file(path)
    assert store.counts()["spans"] == 5 and store.sources().equals(before)


def test_unreadable_and_non_utf8_files(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read"):
        parse_file(tmp_path / "nope.json")
    bad = tmp_path / "latin1.jsonl"
    bad.write_bytes(b'{"ts": 1, "msg": "ok"}\n{"ts": 2, "msg": "caf\xe9"}\n')
    with pytest.raises(InputError, match=r"latin1.jsonl:2: not UTF-8"):
        parse_file(bad)
    with pytest.raises(InputError, match="unknown format 'csv'"):
        parse_file(bad, fmt="csv")


def test_a_large_truncated_or_partly_invalid_file_is_one_error_and_stores_nothing(
    tmp_path: Path,
) -> None:
    """20k spans, cut mid-document or one bad span in a JSON Lines file: file, line and where
    in it; the store keeps nothing of it."""
    from evals.traces_synth import generate, to_otlp_json

    spans = generate(2000, seed=5).spans
    whole = json.dumps(to_otlp_json(spans))
    store = TelemetryStore(tmp_path / "s.duckdb")
    cut = tmp_path / "cut.json"
    cut.write_text(whole[: len(whole) // 2])
    with pytest.raises(InputError, match=rf"^{cut}:1: invalid JSON at column \d+: "):
        store.ingest_file(cut)
    lines = [json.dumps(to_otlp_json(spans.slice(i, 500))) for i in range(0, spans.num_rows, 500)]
    bad = json.loads(lines[3])
    bad["resourceSpans"][0]["scopeSpans"][0]["spans"][7]["startTimeUnixNano"] = "soon"
    lines[3] = json.dumps(bad)
    jsonl = tmp_path / "bad.jsonl"
    jsonl.write_text("\n".join(lines) + "\n")
    with pytest.raises(
        InputError, match=rf"^{jsonl}:4: resourceSpans\[0\]\.scopeSpans\[0\]\.spans\[7\]\.start"
    ):
        store.ingest_file(jsonl)
    assert store.counts()["spans"] == 0 and store.sources().num_rows == 0
