"""The embedded store: protocol queries, idempotent and atomic writes, persistence, threads."""

from __future__ import annotations

import threading
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from tools.core.errors import InputError, NotFoundError, TamoError
from tools.telemetry import sources
from tools.telemetry import store as store_module
from tools.telemetry.model import (
    LOG_SCHEMA,
    METRIC_SCHEMA,
    SPAN_SCHEMA,
    CaseTelemetry,
    LabelledCase,
    TimeWindow,
)
from tools.telemetry.sources import LogQuery, MetricQuery, TraceQuery
from tools.telemetry.store import TelemetryStore

T0 = 1_674_981_600_000_000_000  # 2023-01-29T08:40:00Z
S = 1_000_000_000
MS = 1_000_000


def span(
    trace: int,
    sid: int,
    parent: int | None,
    service: str,
    start_s: float,
    dur_ms: float,
    status: str = "ok",
    op: str = "op",
) -> dict:
    start = T0 + round(start_s * S)
    return {
        "trace_id": f"{trace:032x}",
        "span_id": f"{sid:016x}",
        "parent_id": None if parent is None else f"{parent:016x}",
        "service": service,
        "pod": f"{service}-5f55b6cf68-77cfw",
        "operation": op,
        "kind": "server",
        "start_ns": start,
        "end_ns": start + round(dur_ms * MS),
        "duration_ns": round(dur_ms * MS),
        "status": status,
        "error_code": "500" if status == "error" else None,
        "attributes": None,
    }


def spans_table(rows: list[dict]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=SPAN_SCHEMA)


def sample_spans() -> pa.Table:
    rows = []
    for t in range(1, 21):  # 20 traces, one every 30 s: gateway -> order -> payment
        at = t * 30.0
        err = "error" if t % 5 == 0 else "ok"
        rows += [
            span(t, t * 10 + 1, None, "gateway", at, 50.0, op="GET /order"),
            span(t, t * 10 + 2, t * 10 + 1, "order", at + 0.001, 40.0, op="createOrder"),
            span(t, t * 10 + 3, t * 10 + 2, "payment", at + 0.002, 10.0 * t, err, op="pay"),
            span(t, t * 10 + 4, t * 10 + 2, "order", at + 0.003, 1.0, op="validate"),
        ]
    return spans_table(rows[::-1])  # unsorted on purpose: the store sorts by time


def logs_table() -> pa.Table:
    rows = [
        {
            "ts_ns": T0 + i * 10 * S,
            "service": "payment" if i % 2 else "order",
            "pod": None,
            "severity": "ERROR" if i % 3 == 0 else "INFO",
            "body": f"request {i} took {i * 7} ms",
            "trace_id": f"{i:032x}",
            "span_id": None,
            "attributes": None,
        }
        for i in range(60)
    ]
    rows.append({**rows[0], "ts_ns": T0 + 5 * S, "body": "connection refused: payment-db:5432"})
    return pa.Table.from_pylist(rows, schema=LOG_SCHEMA)


def metrics_table() -> pa.Table:
    rows = []
    for pod in ("payment-5f55b6cf68-77cfw", "order-7f8d7d756d-k7b9j"):
        labels = f'{{"pod":"{pod}","service":"{pod.split("-")[0]}"}}'
        for i in range(0, 600, 15):
            rows.append(
                {
                    "name": "cpu_usage",
                    "service": pod.split("-")[0],
                    "pod": pod,
                    "labels": labels,
                    "ts_ns": T0 + i * S,
                    "value": float(i),
                }
            )
    return pa.Table.from_pylist(rows, schema=METRIC_SCHEMA)


def window(a_s: float, b_s: float) -> TimeWindow:
    return TimeWindow.from_ns(T0 + round(a_s * S), T0 + round(b_s * S))


ALL = window(0, 3600)


@pytest.fixture
def store() -> TelemetryStore:
    s = TelemetryStore(None)
    s.insert("spans", sample_spans(), "spans.json")
    s.insert("logs", logs_table(), "logs.jsonl")
    s.insert("metrics", metrics_table(), "metrics.prom")
    return s


def test_implements_the_three_source_protocols(store: TelemetryStore) -> None:
    assert isinstance(store, sources.TraceSource)
    assert isinstance(store, sources.LogSource)
    assert isinstance(store, sources.MetricSource)


def test_span_filters(store: TelemetryStore) -> None:
    got = store.spans(TraceQuery(ALL))
    assert got.schema == SPAN_SCHEMA and got.num_rows == 80
    starts = got.column("start_ns").to_pylist()
    assert starts == sorted(starts)
    # half-open window: trace 2 starts exactly at 60 s, trace 4 at 120 s (excluded)
    assert set(store.spans(TraceQuery(window(60, 120))).column("trace_id").to_pylist()) == {
        f"{2:032x}",
        f"{3:032x}",
    }
    assert set(
        store.spans(TraceQuery(ALL, services=["payment"])).column("service").to_pylist()
    ) == {"payment"}
    assert store.spans(TraceQuery(ALL, services=["payment", "gateway"])).num_rows == 40
    assert store.spans(TraceQuery(ALL, operation="validate")).num_rows == 20
    slow = store.spans(TraceQuery(ALL, services=["payment"], min_duration_ms=150))
    assert slow.column("duration_ns").to_pylist() == [t * 10 * MS for t in range(15, 21)]
    errors = store.spans(TraceQuery(ALL, errors_only=True))
    assert errors.num_rows == 4 and set(errors.column("status").to_pylist()) == {"error"}
    assert (
        store.spans(TraceQuery(ALL, trace_id=f"{7:032X}")).num_rows == 4
    )  # ids match case-insensitively
    assert store.spans(TraceQuery(ALL, limit=3)).num_rows == 3
    assert store.spans(TraceQuery(ALL, services=["nope"])).num_rows == 0


def test_trace_and_unknown_trace(store: TelemetryStore) -> None:
    t = store.trace(f"{3:032x}")
    assert t.num_rows == 4 and t.column("parent_id").to_pylist()[0] is None
    with pytest.raises(NotFoundError, match="no spans for trace"):
        store.trace("f" * 32)


def test_call_graph(store: TelemetryStore) -> None:
    g = store.call_graph(ALL)
    assert set(g.edges) == {("gateway", "order"), ("order", "payment")}  # no self loops
    pay = g.edges["order", "payment"]
    assert pay["calls"] == 20 and pay["errors"] == 4
    assert pay["p50_ms"] == pytest.approx(105.0)
    assert pay["p95_ms"] == pytest.approx(190.5)
    assert g.nodes["payment"] == {"spans": 20, "errors": 4}
    # a child in the window whose parent started before it still gives the edge
    assert ("order", "payment") in store.call_graph(window(30.002, 30.003)).edges


def test_logs(store: TelemetryStore) -> None:
    assert store.logs(LogQuery(ALL)).num_rows == 61
    assert store.logs(LogQuery(ALL, query="refused")).column("body").to_pylist() == [
        "connection refused: payment-db:5432"
    ]
    assert (
        store.logs(LogQuery(ALL, query=r"took \d{3} ms", regex=True)).num_rows == 45
    )  # i*7 >= 100
    assert store.logs(LogQuery(ALL, services=["payment"], query="took")).num_rows == 30
    assert store.logs(LogQuery(ALL, trace_id=f"{4:032x}")).num_rows == 1
    assert store.logs(LogQuery(window(0, 10))).num_rows == 2
    with pytest.raises(TamoError, match="query failed"):
        store.logs(LogQuery(ALL, query="(unclosed", regex=True))


def test_metric_series(store: TelemetryStore) -> None:
    cpu = store.series(MetricQuery("cpu_usage", ALL, labels={"service": "payment"}))
    assert cpu.schema == METRIC_SCHEMA and cpu.num_rows == 40
    assert set(cpu.column("pod").to_pylist()) == {"payment-5f55b6cf68-77cfw"}
    assert store.series(MetricQuery("cpu_usage", window(0, 60))).num_rows == 8
    stepped = store.series(MetricQuery("cpu_usage", ALL, step_s=60, labels={"service": "order"}))
    assert stepped.num_rows == 10
    assert stepped.column("value").to_pylist()[:2] == [45.0, 105.0]  # last sample per minute
    assert store.series(MetricQuery("nothing_here", ALL)).num_rows == 0
    with pytest.raises(TamoError, match="not PromQL"):
        store.series(MetricQuery("rate(cpu_usage[5m])", ALL))
    assert store.metric_names() == ["cpu_usage"]


def test_reingest_replaces_the_source(store: TelemetryStore) -> None:
    store.insert("spans", sample_spans(), "spans.json")
    assert store.counts() == {"spans": 80, "logs": 61, "metrics": 80}
    store.insert("spans", sample_spans().slice(0, 8), "spans.json")
    assert store.counts()["spans"] == 8
    store.insert("spans", sample_spans(), "other.json")
    assert store.counts()["spans"] == 88
    # other kinds of the same source id are untouched
    store.insert("logs", logs_table().slice(0, 1), "spans.json")
    assert store.counts() == {"spans": 88, "logs": 62, "metrics": 80}


def test_a_failing_write_leaves_the_store_as_it_was(
    store: TelemetryStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = store.spans(TraceQuery(ALL))
    calls = {"n": 0}
    real = pa.concat_tables

    def concat_then_fail(tables: list[pa.Table]) -> pa.Table:
        calls["n"] += 1
        if calls["n"] == 2:  # spans already deleted and inserted inside the transaction
            raise OSError("disk full")
        return real(tables)

    monkeypatch.setattr(store_module.pa, "concat_tables", concat_then_fail)
    with pytest.raises(OSError):
        store.insert_many(
            [("spans", sample_spans().slice(0, 4), "spans.json"), ("logs", logs_table(), "x")]
        )
    monkeypatch.undo()
    assert store.spans(TraceQuery(ALL)).equals(before)
    assert store.counts() == {"spans": 80, "logs": 61, "metrics": 80}


def test_bad_tables_are_refused_before_writing(store: TelemetryStore) -> None:
    with pytest.raises(InputError, match="lacks column"):
        store.insert_many(
            [("spans", sample_spans(), "new.json"), ("spans", pa.table({"x": [1]}), "bad.json")]
        )
    assert store.counts()["spans"] == 80
    bad = sample_spans().set_column(7, "start_ns", pa.array(["x"] * 80))
    with pytest.raises(InputError, match="start_ns"):
        store.insert("spans", bad, "bad.json")
    with pytest.raises(ValueError, match="unknown telemetry kind"):
        store.insert("events", sample_spans(), "bad.json")


def test_file_store_persists_and_reopens_read_only(tmp_path: Path) -> None:
    path = tmp_path / "t.duckdb"
    with TelemetryStore(path) as s:
        s.insert_many([("spans", sample_spans(), "a"), ("logs", logs_table(), "b")], batch_rows=10)
    with TelemetryStore(path, read_only=True) as s:
        assert s.counts() == {"spans": 80, "logs": 61, "metrics": 0}
        ext = s.extent("spans")
        assert ext is not None and ext.start == window(30, 31).start
        assert s.spans(TraceQuery(ext)).num_rows == 80
        assert s.services() == ["gateway", "order", "payment"]
        assert s.sources().num_rows == 2
    with pytest.raises(NotFoundError, match="run `tamo ingest` first"):
        TelemetryStore(tmp_path / "missing.duckdb", read_only=True)


def test_extent_covers_every_row(store: TelemetryStore) -> None:
    ext = store.extent()
    assert store.spans(TraceQuery(ext)).num_rows == 80
    assert store.logs(LogQuery(ext)).num_rows == 61
    assert store.series(MetricQuery("cpu_usage", ext)).num_rows == 80
    assert TelemetryStore(None).extent() is None


def test_from_case_holds_abnormal_and_baseline() -> None:
    case = LabelledCase(
        case_id="c1",
        dataset="nezha",
        system="TT",
        service="payment",
        fault_type="cpu",
        injected_at=None,
        window=window(0, 600),
    )
    ct = CaseTelemetry(case=case, spans=sample_spans(), baseline_logs=logs_table())
    s = TelemetryStore.from_case(ct)
    assert s.counts() == {"spans": 80, "logs": 61, "metrics": 0}
    assert s.path is None


def test_concurrent_inserts_from_threads() -> None:
    s = TelemetryStore(None)
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            for j in range(5):
                s.insert("spans", sample_spans(), f"src-{i}-{j % 2}")
                s.spans(TraceQuery(ALL, limit=5))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert s.counts()["spans"] == 4 * 2 * 80


def test_the_same_source_twice_in_one_batch_keeps_the_last() -> None:
    s = TelemetryStore(None)
    s.insert_many([("spans", sample_spans(), "a"), ("spans", sample_spans().slice(0, 3), "a")])
    assert s.counts()["spans"] == 3 and s.sources().num_rows == 1


def _bounded(t: pa.Table) -> tuple[int, int, pa.Table]:
    lo, hi = pc.min_max(t.column("start_ns")).values()
    return lo.as_py(), hi.as_py(), t


def test_batches_are_written_time_clustered() -> None:
    minutes = [
        spans_table([span(m, m, None, "web", 60 * m + 59 - i, 1.0) for i in range(3)])
        for m in range(20)
    ]
    parts = [_bounded(t) for t in reversed(minutes)]
    narrow = store_module._time_clustered(parts, "start_ns")
    starts = narrow.column("start_ns").to_pylist()
    assert starts[:3] == sorted(starts[:3], reverse=True)  # narrow parts: only reordered
    assert [s // (60 * S) for s in starts] == sorted(s // (60 * S) for s in starts)
    day = spans_table([span(i, i, None, "web", (i * 7919) % 3600, 1.0) for i in range(50)])
    wide = store_module._time_clustered([_bounded(day), _bounded(sample_spans())], "start_ns")
    assert wide.column("start_ns").to_pylist() == sorted(wide.column("start_ns").to_pylist())


def test_tables_in_another_column_order_or_with_metadata_are_stored_alike() -> None:
    spans = sample_spans()
    shuffled = spans.select(list(reversed(spans.column_names))).append_column(
        "extra", pa.array([1] * spans.num_rows)
    )
    tagged = spans.replace_schema_metadata({"origin": "adapter"})
    s = TelemetryStore(None)
    s.insert_many([("spans", shuffled, "a"), ("spans", tagged, "b")])
    stored = s.spans(TraceQuery(ALL))
    assert stored.schema == spans.schema
    assert stored.sort_by("span_id").equals(pa.concat_tables([spans, spans]).sort_by("span_id"))


def test_writes_leave_the_thread_setting_for_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Writes run single-threaded; a write, even a failing one, leaves reads all threads."""
    with TelemetryStore(tmp_path / "t.duckdb") as s:
        s._con.execute("SET threads = 2")
        s.insert("spans", sample_spans(), "a")
        assert s._rows("SELECT current_setting('threads')", []) == [(2,)]

        def fail(tables: list[pa.Table]) -> pa.Table:
            assert s._con.execute("SELECT current_setting('threads')").fetchall() == [(1,)]
            raise OSError("disk full")

        monkeypatch.setattr(store_module.pa, "concat_tables", fail)
        with pytest.raises(OSError):
            s.insert("spans", sample_spans(), "b")
        assert s._rows("SELECT current_setting('threads')", []) == [(2,)]
