"""``tamo ingest topology.json``: stored, replaced on re-ingest, odd input warned or refused."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from tamo.main import app
from tools.telemetry.store import TelemetryStore

runner = CliRunner()
PROM = (
    'cpu_seconds_total{service="web"} 1 1700000000000\n'
    'cpu_seconds_total{service="db"} 2 1700000000000\n'
)


def ingest(*args: str):
    return runner.invoke(app, ["ingest", *args])


def test_topology_with_telemetry_is_stored_and_unknown_services_warned(tmp_path: Path) -> None:
    store = tmp_path / "s.duckdb"
    prom = tmp_path / "m.prom"
    prom.write_text(PROM)
    topo = tmp_path / "topology.json"
    topo.write_text(json.dumps({"edges": [["web", "db"], ["web", "ghost"]]}))
    res = ingest(str(prom), str(topo), "--store", str(store))
    assert res.exit_code == 0, res.output
    assert "topology: 2 edges between 3 services" in res.output
    assert "1 service(s) not in the stored telemetry: ghost" in res.output
    topo.write_text(json.dumps({"edges": [["db", "web"]]}))
    assert ingest(str(topo), "--store", str(store)).exit_code == 0  # topology alone is fine
    with TelemetryStore(store, read_only=True) as s:
        assert s.topology().edges == [("db", "web")]
        assert s.counts()["metrics"] == 2


def test_bad_topology_is_one_line_and_keeps_the_stored_one(tmp_path: Path) -> None:
    store = tmp_path / "s.duckdb"
    good = tmp_path / "good.json"
    good.write_text('{"edges": [["a", "b"]]}')
    assert ingest(str(good), "--store", str(store)).exit_code == 0
    bad = tmp_path / "bad.json"
    bad.write_text('{"edges": [["a", "b"], ["c", 3]]}')
    res = ingest(str(bad), "--store", str(store))
    assert res.exit_code == 2
    (line,) = [x for x in res.output.splitlines() if x.strip()]
    assert f"{bad}: edges[1]" in line and "expected [caller, callee]" in line
    with TelemetryStore(store, read_only=True) as s:
        assert s.topology().edges == [("a", "b")]
