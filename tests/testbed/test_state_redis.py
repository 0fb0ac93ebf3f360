"""The SQLite and Redis state backends behave the same; a testbed runs and restores on Redis.

Every behavioural check runs against both backends (``store`` is parametrized); the Redis one
talks to a real ``redis-server`` started on a free loopback port in a tmp dir, without
persistence, and stopped after the module. Separate handles stand in for separate processes:
each holds its own connection, exactly as every module process does.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import redis

from testbed import Testbed, TestbedError
from testbed.config import REDIS_URL_ENV, StaticConfig
from testbed.state import StateBackend, open_store, snapshot_key
from tests.conftest import free_port


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A private ``redis-server`` on a free loopback port; skipped when it is not installed."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server not installed: apt-get install redis-server (make setup as root)")
    workdir = tmp_path_factory.mktemp("redis")
    for _ in range(3):  # another process may take the free port between probe and bind
        port = free_port()
        proc = subprocess.Popen(
            [
                binary,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        url = f"redis://127.0.0.1:{port}/0"
        client = redis.Redis.from_url(url)
        deadline = time.monotonic() + 10
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        client.close()
        if proc.poll() is None and time.monotonic() < deadline:
            try:
                yield url
            finally:
                proc.terminate()
                proc.wait(timeout=10)
            return
        proc.kill()
        proc.wait()
    pytest.fail("redis-server did not start on a free loopback port")


def _static(tmp_path: Path, backend: str, redis_url: str) -> StaticConfig:
    return StaticConfig(workdir=tmp_path, redis_url=redis_url if backend == "redis" else None)


@pytest.fixture(params=["sqlite", "redis"])
def static(request: pytest.FixtureRequest, tmp_path: Path) -> StaticConfig:
    """Config selecting one backend; the Redis database is emptied first."""
    if request.param == "sqlite":
        return _static(tmp_path, "sqlite", "")
    url = request.getfixturevalue("redis_url")
    with redis.Redis.from_url(url) as client:
        client.flushdb()
    return _static(tmp_path, "redis", url)


@pytest.fixture
def store(static: StaticConfig) -> Iterator[StateBackend]:
    s = open_store(static)
    yield s
    s.close()


def test_snapshots_round_trip_in_step_order(store: StateBackend) -> None:
    for step in (2, 0, 3, 1):
        key = store.write_snapshot("t1", step, {"step": step, "nested": {"a": [1, 2]}})
        assert key == f"agent_state_snapshot:t1:{step}"
    store.write_snapshot("t1", 2, {"step": 2, "rewritten": True})
    store.write_snapshot("t2", 0, {"other": True})
    assert store.read_snapshot("t1", 3) == {"step": 3, "nested": {"a": [1, 2]}}
    assert store.read_snapshot("t1", 4) is None
    assert store.read_snapshot("missing", 0) is None
    assert [s for s, _ in store.snapshots("t1")] == [0, 1, 2, 3]
    assert dict(store.snapshots("t1"))[2] == {"step": 2, "rewritten": True}
    assert store.snapshots("t2") == [(0, {"other": True})]
    assert store.snapshots("missing") == []


def test_truncate_after_drops_later_steps_only(store: StateBackend) -> None:
    for step in range(4):
        store.write_snapshot("t", step, {"step": step})
    store.write_snapshot("u", 3, {"step": 3})
    assert store.truncate_after("t", 1) == 2
    assert [s for s, _ in store.snapshots("t")] == [0, 1]
    assert store.read_snapshot("t", 2) is None
    assert store.truncate_after("t", 1) == 0
    assert store.read_snapshot("u", 3) == {"step": 3}
    store.write_snapshot("t", 2, {"step": 2, "again": True})  # a resumed task writes on
    assert [s for s, _ in store.snapshots("t")] == [0, 1, 2]


def test_dispatch_dedup_and_count(store: StateBackend) -> None:
    assert store.claim_dispatch("t", 0, "user") == 1
    assert store.claim_dispatch("t", 0, "user") is None
    assert store.claim_dispatch("t", 1, "recovered") == 2
    assert store.claim_dispatch("t", 1, "recovered") is None
    assert store.claim_dispatch("t", 5, "recovered") == 3
    assert store.claim_dispatch("other", 0, "user") == 1


RACE_ROUNDS = 200  # a race that shows 1 run in 6 at 1 round cannot hide over 200


def test_concurrent_handles_claim_each_dispatch_once(static: StaticConfig) -> None:
    """Eight handles (one connection each, like module processes) race for the same seq_nos,
    released together by a barrier, for ``RACE_ROUNDS`` fresh tasks."""
    handles = [open_store(static) for _ in range(8)]
    start = threading.Barrier(len(handles))

    def claim(i: int, task: str) -> list[int | None]:
        start.wait()
        return [handles[i].claim_dispatch(task, seq, f"h{i}") for seq in range(5)]

    try:
        with ThreadPoolExecutor(len(handles)) as pool:
            for n in range(RACE_ROUNDS):
                task = f"race-{n}"
                runs = [pool.submit(claim, i, task) for i in range(len(handles))]
                counts = sorted(c for r in runs for c in r.result() if c is not None)
                # each seq_no won exactly once, and counts never repeat
                assert counts == [1, 2, 3, 4, 5], f"round {n}: {counts}"
    finally:
        for h in handles:
            h.close()


def test_outbox_parks_in_order_and_hands_out_once(store: StateBackend) -> None:
    store.park_callback("a", {"answer": "A"})
    store.park_callback("b", {"answer": "B"})
    store.park_callback("c", {"answer": "C"})
    store.park_callback("a", {"answer": "A2"})  # re-parked: newest payload, moves to the end
    assert store.outbox() == ["b", "c", "a"]
    assert store.take_callback("a") == {"answer": "A2"}
    assert store.take_callback("a") is None
    assert store.take_callback("never") is None
    assert store.outbox() == ["b", "c"]


def test_concurrent_takers_get_a_payload_once(static: StaticConfig) -> None:
    """Six handles race to take the same parked callbacks, ``RACE_ROUNDS`` times."""
    handles = [open_store(static) for _ in range(6)]
    start = threading.Barrier(len(handles))

    def take(h: StateBackend, names: list[str]) -> list[dict | None]:
        start.wait()
        return [h.take_callback(name) for name in names]

    try:
        with ThreadPoolExecutor(len(handles)) as pool:
            for n in range(RACE_ROUNDS):
                names = [f"cb{n}-{i}" for i in range(3)]
                for i, name in enumerate(names):
                    handles[0].park_callback(name, {"n": i})
                runs = [pool.submit(take, h, names) for h in handles]
                payloads = sorted(p["n"] for r in runs for p in r.result() if p is not None)
                assert payloads == [0, 1, 2], f"round {n}: {payloads}"
        assert handles[0].outbox() == []
    finally:
        for h in handles:
            h.close()


def test_keep_set_is_shared_between_handles(static: StaticConfig) -> None:
    writer, reader = open_store(static), open_store(static)
    try:
        ids = [f"{i:032x}" for i in range(1200)]  # more than one lookup chunk
        writer.mark(ids[::3])
        writer.mark(ids[:2])  # marking again is harmless
        writer.mark([])
        assert reader.which(ids) == set(ids[::3]) | set(ids[:2])
        assert reader.which([]) == set()
        # state written by one handle survives it (a restarted module sees it)
        writer.write_snapshot("t", 0, {"x": 1})
        writer.close()
        assert reader.read_snapshot("t", 0) == {"x": 1}
    finally:
        reader.close()


# --- Redis specifics ------------------------------------------------------------------------


def test_redis_uses_seed_keys_and_native_expiry(redis_url: str, tmp_path: Path) -> None:
    with redis.Redis.from_url(redis_url, decode_responses=True) as client:
        client.flushdb()
        store = open_store(_static(tmp_path, "redis", redis_url))
        try:
            store.write_snapshot("task-9", 2, {"answer": "x"})
            store.mark(["ab" * 16])
            store.claim_dispatch("task-9", 0, "user")
        finally:
            store.close()
        assert client.get(snapshot_key("task-9", 2)) == '{"answer": "x"}'
        assert client.keys("agent_state_snapshot:*") == ["agent_state_snapshot:task-9:2"]
        assert 0 < client.ttl("testbed:kept:" + "ab" * 16) <= 300
        assert client.hgetall("testbed:dispatches:task-9") == {"0": "user"}
    assert not (tmp_path / "state.sqlite").exists()


def test_unreachable_redis_names_the_url_without_password(tmp_path: Path) -> None:
    url = f"redis://:s3cret@127.0.0.1:{free_port()}/0"
    with pytest.raises(TestbedError) as err:
        open_store(StaticConfig(workdir=tmp_path, redis_url=url))
    assert f"127.0.0.1:{url.rsplit(':', 1)[1].split('/')[0]}" in str(err.value)
    assert "s3cret" not in str(err.value)
    with pytest.raises(TestbedError, match="unavailable"):
        Testbed(tmp_path / "bed", redis_url=url).start()


def test_env_selects_redis(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(REDIS_URL_ENV, "redis://127.0.0.1:1/4")
    assert Testbed(tmp_path).static.redis_url == "redis://127.0.0.1:1/4"
    assert Testbed(tmp_path, redis_url="redis://127.0.0.1:2/0").static.redis_url.endswith(":2/0")
    monkeypatch.delenv(REDIS_URL_ENV)
    assert Testbed(tmp_path).static.redis_url is None


@pytest.mark.e2e
@pytest.mark.slow
def test_testbed_on_redis_runs_tasks_and_restores(redis_url: str, tmp_path: Path) -> None:
    url = redis_url.rsplit("/", 1)[0] + "/1"  # its own database: no other test touches it
    with redis.Redis.from_url(url, decode_responses=True) as client:
        client.flushdb()
        with Testbed(tmp_path, redis_url=url, spans_jsonl=False, infer_timeout_s=0.8) as tb:
            assert tb.describe()["state"] == url
            answers = [tb.submit(f"question {i}", task_id=f"rt-{i}") for i in range(3)]
            assert [a["status"] for a in answers] == ["success"] * 3
            for i in range(3):
                keys = [snapshot_key(f"rt-{i}", s) for s in range(4)]
                assert all(client.exists(k) for k in keys)
            assert [s["step"] for s in tb.client.task("rt-1")["snapshots"]] == [0, 1, 2, 3]

            restored = tb.client.restore_snapshot("rt-1", step=1)["restored"]
            assert restored["step"] == 1 and restored["dropped"] == 2
            assert restored["state"]["prompt"] == "question 1"
            assert not client.exists(snapshot_key("rt-1", 2))

            again = tb.client.redispatch("rt-1", seq_no=1, from_step=2)
            assert again["status"] == "success"
            snaps = tb.client.task("rt-1")["snapshots"]
            assert [s["step"] for s in snaps] == [0, 1, 2, 3]
            assert snaps[3]["state"]["parent_trace_id"] == answers[1]["trace_id"]
            assert client.hlen("testbed:dispatches:rt-1") == 2
            dup = tb.client.redispatch("rt-1", seq_no=1, from_step=2)
            assert dup["error_code"] == "DUPLICATE_DISPATCH"
        assert not (tmp_path / "state.sqlite").exists()
