"""``tamo query traces|logs|metrics|callgraph`` through the real typer app."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pyarrow as pa
import pytest
from typer.testing import CliRunner

from tamo.main import app
from tools.telemetry.model import LOG_SCHEMA, METRIC_SCHEMA, SPAN_SCHEMA
from tools.telemetry.store import TelemetryStore

runner = CliRunner()
T0 = 1_674_982_800_000_000_000  # 2023-01-29T09:00:00Z
S = 1_000_000_000


def _span(t: int, sid: int, parent: int | None, service: str, at_s: int, ms: int, status: str):
    return {
        "trace_id": f"{t:032x}",
        "span_id": f"{sid:016x}",
        "parent_id": None if parent is None else f"{parent:016x}",
        "service": service,
        "pod": None,
        "operation": f"{service}-op",
        "kind": "server",
        "start_ns": T0 + at_s * S,
        "end_ns": T0 + at_s * S + ms * 1_000_000,
        "duration_ns": ms * 1_000_000,
        "status": status,
        "error_code": None,
        "attributes": None,
    }


@pytest.fixture
def store(tmp_path: Path) -> Path:
    path = tmp_path / "s.duckdb"
    spans = []
    for t in range(1, 11):  # one trace a minute: web -> cart, cart fails on odd traces
        at = (t - 1) * 60
        spans.append(_span(t, t * 10, None, "web", at, 30, "ok"))
        spans.append(_span(t, t * 10 + 1, t * 10, "cart", at, 10 * t, "error" if t % 2 else "ok"))
    logs = [
        {
            "ts_ns": T0 + i * 60 * S,
            "service": "cart",
            "pod": None,
            "severity": "ERROR",
            "body": f"redis timeout after {i}00 ms",
            "trace_id": f"{i + 1:032x}",
            "span_id": None,
            "attributes": None,
        }
        for i in range(10)
    ]
    metrics = [
        {
            "name": "cpu_usage",
            "service": svc,
            "pod": None,
            "labels": json.dumps({"service": svc}),
            "ts_ns": T0 + i * 30 * S,
            "value": i * 1.0,
        }
        for svc in ("web", "cart")
        for i in range(20)
    ]
    with TelemetryStore(path) as s:
        s.insert("spans", pa.Table.from_pylist(spans, schema=SPAN_SCHEMA), "spans")
        s.insert("logs", pa.Table.from_pylist(logs, schema=LOG_SCHEMA), "logs")
        s.insert("metrics", pa.Table.from_pylist(metrics, schema=METRIC_SCHEMA), "metrics")
    return path


def query(store: Path, *args: str):
    return runner.invoke(app, ["query", *args, "--store", str(store)])


def rows(result) -> list[dict]:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_traces_filters(store: Path) -> None:
    assert len(rows(query(store, "traces", "--json"))) == 20  # no window: the whole store
    window = ["--start", "2023-01-29T09:02:00Z", "--end", "2023-01-29T09:05:00"]
    got = rows(query(store, "traces", *window, "--service", "cart", "--json"))
    assert [r["trace_id"][-1] for r in got] == ["3", "4", "5"]
    slow_errors = rows(query(store, "traces", "--errors", "--min-duration-ms", "50", "--json"))
    assert [r["duration_ns"] // 1_000_000 for r in slow_errors] == [50, 70, 90]
    one = rows(query(store, "traces", "--trace-id", f"{4:032x}", "--json"))
    assert {r["service"] for r in one} == {"web", "cart"}
    assert len(rows(query(store, "traces", "--operation", "web-op", "-n", "3", "--json"))) == 3
    table = query(store, "traces", "-n", "2")
    assert table.exit_code == 0 and "more: raise --limit" in table.stdout


def test_logs_grep_and_regex(store: Path) -> None:
    assert len(rows(query(store, "logs", "--grep", "timeout", "--json"))) == 10
    got = rows(query(store, "logs", "--regex", r"after [5-7]00 ms", "--json"))
    assert [r["body"] for r in got] == [f"redis timeout after {i}00 ms" for i in (5, 6, 7)]
    assert len(rows(query(store, "logs", "--trace-id", f"{2:032x}", "--json"))) == 1
    assert "redis timeout" in query(store, "logs", "-n", "1").stdout


def test_metrics_and_callgraph(store: Path) -> None:
    got = rows(query(store, "metrics", "--name", "cpu_usage", "--label", "service=web", "--json"))
    assert len(got) == 20 and {r["service"] for r in got} == {"web"}
    stepped = query(
        store, "metrics", "--name", "cpu_usage", "-l", "service=cart", "--step", "60", "--json"
    )
    assert [r["value"] for r in rows(stepped)][:3] == [1.0, 3.0, 5.0]
    (edge,) = rows(query(store, "callgraph", "--json"))
    assert (edge["caller"], edge["callee"], edge["calls"], edge["errors"]) == ("web", "cart", 10, 5)
    assert "web" in query(store, "callgraph").stdout


def test_since_is_relative_to_now(tmp_path: Path) -> None:
    path = tmp_path / "now.duckdb"
    now = time.time_ns()
    recent = [
        _span(1, 1, None, "web", 0, 5, "ok") | {"start_ns": now - 60 * S},
        _span(2, 2, None, "web", 0, 5, "ok") | {"start_ns": now - 3 * 3600 * S},
    ]
    with TelemetryStore(path) as s:
        s.insert("spans", pa.Table.from_pylist(recent, schema=SPAN_SCHEMA), "x")
    assert len(rows(query(path, "traces", "--since", "15m", "--json"))) == 1
    assert len(rows(query(path, "traces", "--since", "1d", "--json"))) == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["traces", "--since", "soon"], "--since: not a duration"),
        (["traces", "--start", "yesterday"], "--start: not an ISO 8601 time"),
        (["traces", "--since", "5m", "--start", "2023-01-29T09:00"], "not both"),
        (
            ["traces", "--start", "2023-01-29T10:00", "--end", "2023-01-29T09:00"],
            "before it starts",
        ),
        (["logs", "--grep", "a", "--regex", "b"], "--grep or --regex"),
        (["logs", "--regex", "(unclosed"], "query failed"),
        (["metrics", "--name", "rate(x[5m])"], "not PromQL"),
        (["metrics", "--name", "x", "--label", "novalue"], "--label: expected k=v"),
    ],
)
def test_errors_are_one_line_exit_2(store: Path, args: list[str], message: str) -> None:
    result = query(store, *args)
    assert result.exit_code == 2
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.stderr


def test_missing_or_empty_store(tmp_path: Path) -> None:
    result = query(tmp_path / "none.duckdb", "traces")
    assert result.exit_code == 2 and "run `tamo ingest` first" in result.stderr
    TelemetryStore(tmp_path / "empty.duckdb").close()
    result = query(tmp_path / "empty.duckdb", "logs")
    assert result.exit_code == 2 and "the store is empty" in result.stderr


@pytest.mark.parametrize("garbage", [b"\x00" * 5000, b"DUCK" * 10, bytes(range(256)) * 40])
def test_a_corrupt_store_file_is_one_line_and_left_as_it_was(tmp_path: Path, garbage: bytes):
    bad = tmp_path / "telemetry.duckdb"
    bad.write_bytes(garbage)
    res = runner.invoke(app, ["query", "traces", "--since", "15m", "--store", str(bad)])
    assert res.exit_code == 2
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and str(bad) in lines[0] and "cannot open the store" in lines[0]
    assert "Traceback" not in res.output
    assert bad.read_bytes() == garbage  # nothing overwritten or repaired behind the user's back
