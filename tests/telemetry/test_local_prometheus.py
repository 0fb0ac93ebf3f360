"""A real Prometheus over backfilled 2023 data, queried with real PromQL through PrometheusClient.

The data is from January 2023, far older than Prometheus's default 15-day retention, so every
query that finds it proves the ``--storage.tsdb.retention.time=10y`` flag is in effect (with the
default, Prometheus deletes backfilled blocks at start-up). Skipped only when ``prometheus`` or
``promtool`` is not installed (``make setup`` installs them as root).
"""

from __future__ import annotations

import io
import json
import math
import os
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Gauge, start_http_server
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from tests.conftest import free_port
from tools.core.errors import BackendError, TamoError
from tools.telemetry.backends.prometheus import PrometheusClient
from tools.telemetry.local_prometheus import LocalPrometheus, write_openmetrics
from tools.telemetry.model import METRIC_SCHEMA, TimeWindow
from tools.telemetry.sources import MetricQuery

needs_prometheus = pytest.mark.skipif(
    not (shutil.which("prometheus") and shutil.which("promtool")),
    reason="prometheus/promtool not installed (`make setup` as root installs them)",
)

T0 = int(datetime(2023, 1, 29, 8, 0, tzinfo=UTC).timestamp())
S = 1_000_000_000
ODD = 'quote " backslash \\ newline \n end'


def _table(rows: list[tuple[str, str | None, str | None, dict[str, str], int, float]]) -> pa.Table:
    cols = list(zip(*rows, strict=True)) or [()] * 6
    return pa.Table.from_pydict(
        {
            "name": list(cols[0]),
            "service": list(cols[1]),
            "pod": list(cols[2]),
            "labels": [json.dumps(d) for d in cols[3]],
            "ts_ns": list(cols[4]),
            "value": list(cols[5]),
        },
        schema=METRIC_SCHEMA,
    )


def synthetic_metrics() -> pa.Table:
    """10 minutes at 1 s: a counter growing 2/s (cart) and 3/s (ts-order), and a gauge."""
    rows = []
    for i in range(600):
        for svc, per_s in (("cart", 2.0), ("ts-order", 3.0)):
            pod = f"{svc}-5d8f7c9b6d-x2k4p"
            rows.append(("http_requests_total", svc, pod, {"code": "200"}, (T0 + i) * S, per_s * i))
            rows.append(
                ("cpu_usage", svc, None, {"note": ODD}, (T0 + i) * S + S // 2, float(i % 7))
            )
    return _table(rows)


@pytest.fixture(scope="module")
def prom(tmp_path_factory: pytest.TempPathFactory):
    if not (shutil.which("prometheus") and shutil.which("promtool")):
        pytest.skip("prometheus/promtool not installed (make setup installs them as root)")
    local = LocalPrometheus(tmp_path_factory.mktemp("prom"), cleanup=True)
    summary = local.backfill(synthetic_metrics())
    assert summary.samples == 2400 and summary.series == 4
    with local:
        client = PrometheusClient(local.url, retries=0)
        yield local, client
        client.close()


@needs_prometheus
def test_instant_query_returns_exact_backfilled_values(prom) -> None:
    _, client = prom
    t = client.query('http_requests_total{service="cart"}', T0 + 100)
    assert t.num_rows == 1
    row = t.to_pylist()[0]
    assert row["value"] == 200.0
    assert row["ts_ns"] == (T0 + 100) * S
    assert row["service"] == "cart" and row["pod"] == "cart-5d8f7c9b6d-x2k4p"
    assert json.loads(row["labels"]) == {
        "code": "200",
        "pod": "cart-5d8f7c9b6d-x2k4p",
        "service": "cart",
    }


@needs_prometheus
def test_range_query_and_rate_and_sum_by(prom) -> None:
    _, client = prom
    r = client.query_range('cpu_usage{service="ts-order"}', T0 + 10, T0 + 20, 5)
    # At t the latest sample is the one at t-0.5 s, i.e. i = t-1 -> (t-1) % 7.
    assert r["value"].to_pylist() == [float((10 - 1) % 7), float((15 - 1) % 7), float(19 % 7)]
    assert r["ts_ns"].to_pylist() == [(T0 + k) * S for k in (10, 15, 20)]

    rate = client.query("sum by (service) (rate(http_requests_total[1m]))", T0 + 300)
    got = {row["service"]: row["value"] for row in rate.to_pylist()}
    assert got == {"cart": pytest.approx(2.0), "ts-order": pytest.approx(3.0)}
    total = client.query("sum(increase(http_requests_total[100s]))", T0 + 300)
    assert total["value"].to_pylist() == [pytest.approx(500.0)]


@needs_prometheus
def test_series_labels_and_label_values_keep_escaped_values(prom) -> None:
    _, client = prom
    series = client.series_match(["cpu_usage"], T0, T0 + 600)
    assert sorted(s["service"] for s in series) == ["cart", "ts-order"]
    assert all(s["note"] == ODD for s in series)
    assert client.labels() == ["__name__", "code", "note", "pod", "service"]
    assert client.label_values("__name__") == ["cpu_usage", "http_requests_total"]
    assert client.label_values("service") == ["cart", "ts-order"]


@needs_prometheus
def test_metric_source_series_is_half_open_and_filters_labels(prom) -> None:
    _, client = prom
    window = TimeWindow.from_ns((T0 + 10) * S, (T0 + 20) * S)
    by_name = client.series(MetricQuery("cpu_usage", window, step_s=5, labels={"service": "cart"}))
    assert by_name["ts_ns"].to_pylist() == [(T0 + 10) * S, (T0 + 15) * S]  # end excluded
    assert set(by_name["name"].to_pylist()) == {"cpu_usage"}
    assert set(by_name["service"].to_pylist()) == {"cart"}
    expr = client.series(
        MetricQuery(
            "sum by (service) (http_requests_total)",
            window,
            step_s=5,
            labels={"service": "ts-order"},
        )
    )
    assert expr["value"].to_pylist() == [30.0, 45.0]
    assert set(expr["name"].to_pylist()) == {"sum by (service) (http_requests_total)"}


@needs_prometheus
def test_retention_flag_and_bad_promql_error(prom) -> None:
    local, client = prom
    flags = client.run_sync(client.get_json("/api/v1/status/flags"))["data"]
    assert flags["storage.tsdb.retention.time"] == "10y"
    assert flags["web.listen-address"].startswith("127.0.0.1:")
    with pytest.raises(BackendError) as exc:
        client.query("sum(", T0)
    assert exc.value.status == 400
    assert local.url in str(exc.value) and "(HTTP 400)" in str(exc.value)
    assert "parse error" in str(exc.value)
    assert "\n" not in str(exc.value)


@needs_prometheus
def test_backfill_while_running_restarts_on_same_port(tmp_path: Path) -> None:
    local = LocalPrometheus(tmp_path / "w")
    local.backfill(_table([("first", "a", None, {}, T0 * S, 1.0)]))
    with local:
        url, pid = local.url, local.pid
        local.backfill(_table([("second", "b", None, {}, (T0 + 60) * S, 7.0)]))
        assert local.url == url and local.pid != pid and local.running
        client = PrometheusClient(url, retries=0)
        assert client.query("second", T0 + 60)["value"].to_pylist() == [7.0]
        assert client.query("first", T0 + 60)["value"].to_pylist() == [1.0]
        client.close()
        pid = local.pid
    assert pid is not None and not _alive(pid)
    assert (tmp_path / "w").exists()  # cleanup=False keeps the TSDB


@needs_prometheus
def test_scrapes_live_targets_every_second(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    Gauge("tamo_test_queue_depth", "queue depth", registry=registry).set(42)
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    try:
        with LocalPrometheus(tmp_path, scrape_targets=[f"checkout=127.0.0.1:{port}"]) as local:
            client = PrometheusClient(local.url, retries=0)
            deadline = time.monotonic() + 20
            rows: list[dict] = []
            while time.monotonic() < deadline and not rows:
                rows = client.query("tamo_test_queue_depth").to_pylist()
                time.sleep(0.2)
            client.close()
        assert rows, "the target was never scraped"
        assert rows[0]["value"] == 42.0
        assert rows[0]["service"] == "checkout"  # from the job label
        assert json.loads(rows[0]["labels"])["instance"] == f"127.0.0.1:{port}"
    finally:
        server.shutdown()
        thread.join()


def test_missing_binary_says_how_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(TamoError, match=r"`promtool` not found on PATH; install it"):
        LocalPrometheus(tmp_path).backfill(_table([("m", None, None, {}, T0 * S, 1.0)]))
    with pytest.raises(TamoError, match=r"apt-get install -y prometheus"):
        LocalPrometheus(tmp_path).start()


def test_openmetrics_text_has_types_sorted_samples_and_eof() -> None:
    table = _table(
        [
            ("reqs_total", "a", None, {}, (T0 + 1) * S, 2.0),
            ("reqs_total", "a", None, {}, T0 * S, 1.0),
            ("reqs_total", "a", None, {}, T0 * S, 1.5),  # duplicate timestamp: last row wins
            ("lat_bucket", None, "web-7d4b9c8f6d-abcde", {"le": "+Inf"}, T0 * S, math.inf),
            ("bad-name", None, None, {"0x": "v"}, T0 * S + 1_234_567, math.nan),
        ]
    )
    buf = io.BytesIO()
    summary = write_openmetrics(table, buf)
    assert buf.getvalue().decode() == (
        "# TYPE bad_name gauge\n"
        f'bad_name{{_0x="v"}} NaN {T0}.001\n'
        "# TYPE lat_bucket unknown\n"
        f'lat_bucket{{le="+Inf",pod="web-7d4b9c8f6d-abcde"}} +Inf {T0}.000\n'
        "# TYPE reqs counter\n"
        f'reqs_total{{service="a"}} 1.5 {T0}.000\n'
        f'reqs_total{{service="a"}} 2 {T0 + 1}.000\n'
        "# EOF\n"
    )
    assert (summary.samples, summary.series) == (4, 3)
    assert summary.min_ts_ns == T0 * S and summary.max_ts_ns == (T0 + 1) * S


_names = st.sampled_from(["up", "reqs_total", "reqs", "lat_bucket", "cpu:rate1m", "x-y", "9lives"])
_label_values = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
_rows = st.lists(
    st.tuples(
        _names,
        st.sampled_from([None, "svc-a", 'we"ird', "x\x1fy", ""]),
        st.dictionaries(st.sampled_from(["k", "le", "zone"]), _label_values, max_size=2),
        st.integers(min_value=T0 * 1000, max_value=(T0 + 86_400) * 1000),
        st.floats(allow_nan=True, allow_infinity=True),
    ),
    max_size=25,
)


@settings(max_examples=150, deadline=None)
@given(_rows)
def test_openmetrics_round_trips_through_a_reference_parser(rows) -> None:
    """Every row comes back from prometheus_client's OpenMetrics parser (the last of duplicates)."""
    table = _table([(n, svc, None, lab, ms * 1_000_000, v) for n, svc, lab, ms, v in rows])
    buf = io.BytesIO()
    write_openmetrics(table, buf)
    parsed: dict[tuple, float] = {}
    for family in text_string_to_metric_families(buf.getvalue().decode()):
        for s in family.samples:
            ts = s.timestamp
            ms = (
                round(float(ts) * 1000)
                if not hasattr(ts, "sec")
                else ts.sec * 1000 + ts.nsec // 10**6
            )
            parsed[(s.name, tuple(sorted(s.labels.items())), ms)] = s.value
    expected: dict[tuple, float] = {}
    for n, svc, lab, ms, v in rows:
        name = {"x-y": "x_y", "9lives": "_9lives"}.get(n, n)
        labels = {k: v for k, v in lab.items() if v}  # an empty label value is no label
        labels |= {"service": svc} if svc and "service" not in labels else {}
        expected[(name, tuple(sorted(labels.items())), ms)] = v
    assert parsed.keys() == expected.keys()
    for key, v in expected.items():
        assert (math.isnan(v) and math.isnan(parsed[key])) or parsed[key] == v


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
