"""``tamo prometheus start|status|query|stop`` through the real typer app and a real Prometheus.

Skipped only when prometheus/promtool are not installed (``make setup`` installs them as root).
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pytest
from typer.testing import CliRunner

from tamo.main import app, run
from tamo.prometheus_cmd import parse_time, read_state, running_server
from tools.core.settings import get_settings
from tools.telemetry.model import METRIC_SCHEMA
from tools.telemetry.store import TelemetryStore

pytestmark = pytest.mark.skipif(
    not (shutil.which("prometheus") and shutil.which("promtool")),
    reason="prometheus/promtool not installed (`make setup` as root installs them)",
)

runner = CliRunner()
T0 = int(datetime(2023, 3, 1, 12, 0, tzinfo=UTC).timestamp())
S = 1_000_000_000


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("TAMO_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("TAMO_PROMETHEUS_URL", raising=False)
    get_settings.cache_clear()
    yield tmp_path / "data"
    server = running_server(get_settings())
    if server is not None:  # a failed test must not leave a Prometheus behind
        server.stop()
    get_settings.cache_clear()


def _invoke(*args: str):
    return runner.invoke(app, ["prometheus", *args], catch_exceptions=False)


def _store_with_metrics(path: Path) -> Path:
    rows = {f.name: [] for f in METRIC_SCHEMA}
    for i in range(120):
        for svc, base in (("checkout", 10.0), ("search", 20.0)):
            rows["name"].append("queue_depth")
            rows["service"].append(svc)
            rows["pod"].append(None)
            rows["labels"].append(json.dumps({"service": svc}))
            rows["ts_ns"].append((T0 + 5 * i) * S)
            rows["value"].append(base + i)
    with TelemetryStore(path) as store:
        store.insert("metrics", pa.Table.from_pydict(rows, schema=METRIC_SCHEMA), "synthetic")
    return path


def test_start_from_store_status_query_stop(tmp_path: Path, data_dir: Path) -> None:
    store = _store_with_metrics(tmp_path / "telemetry.duckdb")
    started = _invoke("start", "--from-store", str(store))
    assert started.exit_code == 0, started.output
    state = read_state(get_settings())
    assert state is not None and state.url in started.output
    assert "backfilled 240 samples of 1 metrics" in started.output
    last = datetime.fromtimestamp(T0 + 5 * 119, UTC).isoformat().replace("+00:00", "Z")
    assert f"tamo prometheus query 'queue_depth' --time {last}" in started.output
    assert f"query=queue_depth&time={T0 + 595}" in started.output

    status = _invoke("status")
    assert status.exit_code == 0 and f"running at {state.url}" in status.output
    assert "1 backfilled metrics from 2023-03-01T12:00:00+00:00" in status.output

    at = datetime.fromtimestamp(T0 + 50, UTC).isoformat()
    instant = _invoke("query", 'queue_depth{service="search"}', "--time", at, "--json")
    assert instant.exit_code == 0, instant.output
    assert [r["value"] for r in json.loads(instant.stdout)] == [30.0]

    ranged = _invoke(
        "query",
        "sum(queue_depth)",
        "--start",
        str(T0),
        "--end",
        str(T0 + 20),
        "--step",
        "10",
        "--json",
    )
    rows = json.loads(ranged.stdout)
    assert [(r["ts_ns"] // S - T0, r["value"]) for r in rows] == [(0, 30.0), (10, 34.0), (20, 38.0)]
    table = _invoke("query", "sum(queue_depth)", "--time", str(T0))
    assert "sum(queue_depth): 1 samples" in table.output and "30" in table.output
    latest = json.loads(_invoke("query", "sum(queue_depth)", "--json").stdout)  # data's end
    assert [(r["ts_ns"] // S - T0, r["value"]) for r in latest] == [(595, 30.0 + 2 * 119)]

    stopped = _invoke("stop")
    assert stopped.exit_code == 0 and f"stopped Prometheus at {state.url}" in stopped.output
    assert not Path(f"/proc/{state.pid}").exists() or _zombie(state.pid)
    assert read_state(get_settings()) is None
    assert _invoke("status").exit_code == 1


def test_restart_without_data_serves_the_existing_tsdb(tmp_path: Path, data_dir: Path) -> None:
    store = _store_with_metrics(tmp_path / "telemetry.duckdb")
    assert _invoke("start", "--from-store", str(store)).exit_code == 0
    assert _invoke("stop").exit_code == 0
    again = _invoke("start", "--workdir", str(data_dir / "prometheus" / "run"))
    assert again.exit_code == 0 and "--time 2023-03-01T12:09:55Z" in again.output
    answer = _invoke("query", "count(queue_depth)", "--time", str(T0), "--json")
    assert json.loads(answer.stdout)[0]["value"] == 2.0
    assert _invoke("stop").exit_code == 0


def test_sockshop_metrics_replay_through_promql(sockshop_root: Path, data_dir: Path) -> None:
    from tools.telemetry.datasets import get_adapter

    first = next(
        t
        for kind, _, t in get_adapter("sockshop-rcd").iter_telemetry(sockshop_root, ["1"])
        if kind == "metrics"
    )
    row = first.to_pylist()[0]
    started = _invoke("start", "--dataset", "sockshop-rcd", "--root", str(sockshop_root), "-p", "1")
    assert started.exit_code == 0, started.output
    labels = ",".join(f'{k}="{v}"' for k, v in json.loads(row["labels"]).items())
    answer = _invoke(
        "query", f"{row['name']}{{{labels}}}", "--time", str(row["ts_ns"] / S), "--json"
    )
    got = json.loads(answer.stdout)
    assert len(got) == 1 and got[0]["value"] == pytest.approx(row["value"])
    assert got[0]["ts_ns"] == row["ts_ns"] // 1_000_000 * 1_000_000


def _run_cli(monkeypatch: pytest.MonkeyPatch, capsys, *args: str) -> tuple[int, str]:
    """``tamo.main.run`` in-process (what the console script calls): exit code and stderr."""
    monkeypatch.setattr(sys, "argv", ["tamo", "prometheus", *args])
    with pytest.raises(SystemExit) as exc:
        run()
    return int(exc.value.code or 0), capsys.readouterr().err


def test_errors_are_one_red_line_and_exit_2(
    tmp_path: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    code, err = _run_cli(monkeypatch, capsys, "query", "up")
    assert code == 2
    # rich wraps long lines at the terminal width; the message itself is one line.
    assert " ".join(err.split()) == (
        "error: no Prometheus: run `tamo prometheus start` or set TAMO_PROMETHEUS_URL"
    )
    store = _store_with_metrics(tmp_path / "telemetry.duckdb")
    assert _invoke("start", "--from-store", str(store)).exit_code == 0
    code, err = _run_cli(monkeypatch, capsys, "start")
    assert code == 2 and "already running at http://127.0.0.1:" in " ".join(err.split())
    code, err = _run_cli(monkeypatch, capsys, "query", "sum(")
    flat = " ".join(err.split())
    assert code == 2 and flat.startswith("error: http://127.0.0.1:")
    assert "(HTTP 400): prometheus rejected the request: bad_data:" in flat
    assert "Traceback" not in err


def test_parse_time_accepts_epoch_and_iso() -> None:
    assert parse_time("1677672000") == 1677672000.0
    assert parse_time("2023-03-01T12:00:00Z") == 1677672000.0
    assert parse_time("2023-03-01T13:00:00+01:00") == 1677672000.0
    assert parse_time("2023-03-01T12:00:00") == 1677672000.0


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True
