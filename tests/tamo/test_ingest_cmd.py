"""``tamo ingest`` through the real typer app: files, folders, datasets, one-line errors."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from tamo.main import app
from tests.conftest import REPO, free_port
from tools.telemetry.store import TelemetryStore

runner = CliRunner()


def otlp_spans(n: int, service: str = "api") -> dict:
    spans = [
        {
            "traceId": f"{7:032x}",
            "spanId": f"{i + 1:016x}",
            "parentSpanId": f"{i:016x}" if i else "",
            "name": f"op{i}",
            "startTimeUnixNano": str(1_700_000_000_000_000_000 + i * 1000),
            "endTimeUnixNano": str(1_700_000_000_000_500_000 + i * 1000),
        }
        for i in range(n)
    ]
    res = {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]}
    return {"resourceSpans": [{"resource": res, "scopeSpans": [{"spans": spans}]}]}


def ingest(*args: str):
    return runner.invoke(app, ["ingest", *args])


def counts(store: Path) -> dict[str, int]:
    with TelemetryStore(store, read_only=True) as s:
        return s.counts()


def test_files_and_folders_are_ingested_idempotently(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "traces.json").write_text(json.dumps(otlp_spans(4)))
    (data / "app.log").write_text('{"ts": 1700000000, "level": "info", "msg": "started"}\n')
    (data / "metrics.prom").write_text('# TYPE up gauge\nup{job="api"} 1 1700000000000\n')
    (data / "README.md").write_text("# not telemetry\n")  # skipped in a folder
    store = tmp_path / "s.duckdb"
    result = ingest(str(data), "--store", str(store))
    assert result.exit_code == 0, result.output
    assert all(f in result.stdout for f in ("otlp-json", "jsonl-logs", "prom-text"))
    assert counts(store) == {"spans": 4, "logs": 1, "metrics": 1}
    again = ingest(str(data / "traces.json"), "--store", str(store))
    assert again.exit_code == 0, again.output
    assert counts(store) == {"spans": 4, "logs": 1, "metrics": 1}


def test_a_bad_file_is_one_red_line_exit_2_and_the_store_unchanged(tmp_path: Path) -> None:
    store = tmp_path / "s.duckdb"
    good = tmp_path / "good.json"
    good.write_text(json.dumps(otlp_spans(3)))
    assert ingest(str(good), "--store", str(store)).exit_code == 0
    with TelemetryStore(store, read_only=True) as s:
        before = s.sources()
    doc = otlp_spans(5, "checkout")
    doc["resourceSpans"][0]["scopeSpans"][0]["spans"][4]["startTimeUnixNano"] = "later"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    result = ingest(str(bad), "--store", str(store))
    assert result.exit_code == 2
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and "bad.json:1: " in lines[0]
    assert "spans[4].startTimeUnixNano: expected an integer" in lines[0]
    assert "Traceback" not in result.output
    with TelemetryStore(store, read_only=True) as s:
        assert s.sources().equals(before)
        assert s.counts()["spans"] == 3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "give one of PATH..., --dataset with --root, or --listen"),
        (["x.json", "--listen", "4318"], "give one of PATH..."),
        (["--listen", "localhost:http"], "--listen: expected [HOST:]PORT"),
        (["nowhere.json"], "nowhere.json: no such file or folder"),
        (["x.json", "--format", "csv"], "unknown format 'csv'"),
        (["--dataset", "nezha"], "--dataset needs --root"),
        (["--dataset", "nope", "--root", "."], "unknown dataset 'nope'"),
    ],
)
def test_usage_errors_are_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    result = ingest(*args, "--store", str(tmp_path / "s.duckdb"))
    assert result.exit_code == 2
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and message in lines[0], result.stderr


@pytest.mark.slow
def test_dataset_ingest(sockshop_root: Path, tmp_path: Path) -> None:
    store = tmp_path / "s.duckdb"
    args = ["--dataset", "sockshop-rcd", "--root", str(sockshop_root), "--parts", "1"]
    result = ingest(*args, "--store", str(store))
    assert result.exit_code == 0, result.output
    first = counts(store)
    assert first["metrics"] > 10_000 and first["spans"] == 0
    assert ingest(*args, "--store", str(store)).exit_code == 0
    assert counts(store) == first  # every file replaced, not duplicated


@pytest.mark.slow  # a real `tamo` process: its start-up imports every command group
def test_listen_receives_otlp_until_interrupted(tmp_path: Path) -> None:
    port, store = free_port(), tmp_path / "s.duckdb"
    cmd = [sys.executable, "-m", "tamo.main", "ingest", "--listen", f"127.0.0.1:{port}"]
    proc = subprocess.Popen(
        [*cmd, "--store", str(store)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}/v1/traces"
        deadline = time.monotonic() + 60
        while True:
            try:
                r = httpx.post(url, json=otlp_spans(3), timeout=5)
                break
            except httpx.TransportError:
                assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
                time.sleep(0.2)
        assert r.status_code == 200
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert f"tamo serve: OTLP/HTTP http://127.0.0.1:{port}/v1/" in out
    assert "tamo serve stopped" in out
    assert counts(store)["spans"] == 3
