"""The store API and its client: every store method answers the same through ``tamo serve``'s
routes as on the file, writes stay atomic, and ``open_store`` finds a running server."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from starlette.applications import Starlette

from tests.telemetry.test_store import ALL, logs_table, metrics_table, sample_spans, window
from tools.core.errors import BackendError, NotFoundError, TamoError
from tools.telemetry.sources import LogQuery, MetricQuery, TraceQuery
from tools.telemetry.store import TelemetryStore
from tools.telemetry.store_api import store_routes
from tools.telemetry.store_client import RemoteStore, ServerFile, open_store


class _Server:
    """The store routes on a free loopback port, in a thread."""

    def __init__(self, store: TelemetryStore) -> None:
        app = Starlette(routes=store_routes(store, server_info={"store": str(store.path)}))
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        cfg = uvicorn.Config(app, log_level="warning", lifespan="off")
        self.server = uvicorn.Server(cfg)
        self.thread = threading.Thread(
            target=lambda: asyncio.run(self.server.serve(sockets=[self.sock])), daemon=True
        )

    def __enter__(self) -> _Server:
        self.thread.start()
        while not self.server.started:
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture
def pair() -> Iterator[tuple[TelemetryStore, RemoteStore]]:
    local = TelemetryStore(None)
    local.insert("spans", sample_spans(), "spans.json")
    local.insert("logs", logs_table(), "logs.jsonl")
    local.insert("metrics", metrics_table(), "metrics.prom")
    with _Server(local) as srv, RemoteStore(srv.url) as remote:
        yield local, remote


def test_every_read_answers_as_on_the_file(pair: tuple[TelemetryStore, RemoteStore]) -> None:
    local, remote = pair
    w = window(0, 400)
    assert remote.spans(TraceQuery(w, services=["payment"], errors_only=True)).equals(
        local.spans(TraceQuery(w, services=["payment"], errors_only=True))
    )
    assert remote.logs(LogQuery(ALL, query="refused")).equals(
        local.logs(LogQuery(ALL, query="refused"))
    )
    assert remote.series(MetricQuery("cpu_usage", ALL, step_s=60)).equals(
        local.series(MetricQuery("cpu_usage", ALL, step_s=60))
    )
    tid = local.spans(TraceQuery(ALL, limit=1))["trace_id"][0].as_py()
    assert remote.trace(tid).equals(local.trace(tid))
    g_remote, g_local = remote.call_graph(ALL), local.call_graph(ALL)
    assert set(g_remote.edges) == set(g_local.edges)
    assert g_remote.edges["order", "payment"] == g_local.edges["order", "payment"]
    assert remote.extent() == local.extent() and remote.extent("logs") == local.extent("logs")
    assert remote.counts() == local.counts()
    assert remote.services() == local.services() and remote.metric_names() == ["cpu_usage"]
    assert remote.sources().equals(local.sources())


def test_errors_name_the_field_and_unknown_traces_are_not_found(
    pair: tuple[TelemetryStore, RemoteStore],
) -> None:
    _, remote = pair
    with pytest.raises(NotFoundError):
        remote.trace("f" * 32)
    with pytest.raises(BackendError, match="window") as exc:
        remote._post("spans", query={"window": {"start": "yesterday"}})
    assert "HTTP 400" in str(exc.value)
    with pytest.raises(BackendError, match=r"query\.limit"):
        remote._post("spans", query={"window": ALL, "limit": "many"})
    with pytest.raises(BackendError, match=r"query\.limt"):  # a misspelt filter is refused
        remote._post("spans", query={"window": ALL, "limt": 5})


def test_writes_through_the_api_are_atomic_and_replace_by_source(
    pair: tuple[TelemetryStore, RemoteStore], tmp_path: Path
) -> None:
    local, remote = pair
    before = local.counts()
    spans = sample_spans()
    assert remote.insert_many([("spans", spans, "again.json")])["spans"] == spans.num_rows
    assert remote.insert("spans", spans.slice(0, 3), "again.json") == 3  # replaces the source
    assert local.counts()["spans"] == before["spans"] + 3
    bad = spans.drop_columns(["trace_id"])
    with pytest.raises(BackendError, match="trace_id"):
        remote.insert_many([("logs", logs_table(), "new.jsonl"), ("spans", bad, "bad.json")])
    assert local.counts()["logs"] == before["logs"]  # the whole request was refused
    f = tmp_path / "spans.jsonl"
    f.write_text(json.dumps({"traceID": "1" * 32, "spanID": "2" * 16, "operationName": "x"}) + "\n")
    with pytest.raises(TamoError):  # a bad file fails before anything is sent
        remote.ingest_file(f, "jaeger-json")
    assert local.counts()["spans"] == before["spans"] + 3


def test_open_store_prefers_a_live_server_and_ignores_a_stale_file(tmp_path: Path) -> None:
    path = tmp_path / "telemetry.duckdb"
    with TelemetryStore(path) as s:
        s.insert("spans", sample_spans(), "spans.json")
    ServerFile.location(path).write_text(
        json.dumps({"store": str(path.resolve()), "url": "http://127.0.0.1:9", "pid": 2**22 + 7})
    )
    with open_store(path, read_only=True) as s:  # the pid is dead: the file itself
        assert isinstance(s, TelemetryStore) and s.counts()["spans"] == 80
    with TelemetryStore(path) as owner, _Server(owner) as srv:
        sf = ServerFile.write(path, srv.url)
        assert sf.pid == os.getpid()
        with open_store(path, read_only=True) as s:
            assert isinstance(s, RemoteStore) and s.counts()["spans"] == 80
        sf.remove()
    assert not ServerFile.location(path).exists()


def test_a_lock_held_elsewhere_is_one_line_naming_the_process(tmp_path: Path) -> None:
    path = tmp_path / "telemetry.duckdb"
    TelemetryStore(path).close()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import duckdb, time; c = duckdb.connect({str(path)!r}); print('ok', flush=True); "
            "time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ok"
        with pytest.raises(TamoError) as exc:
            open_store(path, read_only=True)
        msg = str(exc.value)
        assert f"process {holder.pid}" in msg and "tamo serve" in msg
        assert "Conflicting lock" not in msg and "\n" not in msg
    finally:
        holder.kill()
        holder.wait()
