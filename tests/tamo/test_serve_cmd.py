"""``tamo serve`` as a user runs it: one line once it accepts, every other command working beside
it through the server (no lock error), a second server refused, a clean stop on SIGTERM."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from evals.serve_process import ServeProcess, tamo

pytestmark = pytest.mark.slow  # real `tamo` processes


def _span(trace: str, name: str) -> dict[str, object]:
    return {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": "api"}}]
                },
                "scopeSpans": [
                    {
                        "spans": [
                            {
                                "traceId": trace,
                                "spanId": "eee19b7ec3c1b174",
                                "name": name,
                                "startTimeUnixNano": "1700000000000000000",
                                "endTimeUnixNano": "1700000000100000000",
                            }
                        ]
                    }
                ],
            }
        ]
    }


def test_commands_work_while_it_serves_and_it_stops_cleanly(tmp_path: Path) -> None:
    with ServeProcess(tmp_path) as server:
        info = server.server_info()
        assert info["url"] == server.url and Path(str(info["store"])).name == "telemetry.duckdb"
        first = _span("5b8efff798038103d269b633813fc60c", "x")
        ok = httpx.post(f"{server.url}/v1/traces", json=first)
        assert ok.status_code == 200
        bad = httpx.post(f"{server.url}/v1/traces", json=_span("nothex", "y"))
        assert bad.status_code == 400 and "spans[0].traceId" in bad.json()["message"]
        f = tmp_path / "more.json"
        f.write_text(json.dumps(_span("6b8efff798038103d269b633813fc60c", "from-file")))
        ingested = tamo(tmp_path, "ingest", str(f))  # a writer command, through the server
        assert ingested.returncode == 0, ingested.stderr
        q = tamo(
            tmp_path,
            "query",
            "traces",
            "--start",
            "2023-11-14T22:00:00",
            "--end",
            "2023-11-14T23:00:00",
        )
        assert q.returncode == 0, q.stderr
        assert "from-file" in q.stdout and " x " in q.stdout.replace("│", " ")
        assert "lock" not in q.stderr.lower() + ingested.stderr.lower()
        again = tamo(tmp_path, "serve", "--port", "0")
        assert again.returncode == 2 and f"already served by process {info['pid']}" in again.stderr
        assert server.stop() == 0
    assert not server.server_file.exists()
    out = "".join(server.output)
    assert out.count("tamo serve: OTLP/HTTP") == 1 and "2 spans" in out
