from __future__ import annotations

import json
import multiprocessing as mp
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tools.repair.audit import AuditLog


def _append_many(directory: str, tag: str, n: int) -> None:
    log = AuditLog(Path(directory))
    for i in range(n):
        log.record("action_intent", f"task-{tag}", seq_no=i, status="started")


def test_chain_verifies_and_queries(tmp_path: Path) -> None:
    log = AuditLog(tmp_path)
    a = log.record(
        "plan",
        "repair-1",
        strategy_id="s1",
        trace_id="abc942",
        root_cause="LLMAdapter.Timeout",
        details={"x": 1},
    )
    b = log.record(
        "finished",
        "repair-1",
        strategy_id="s1",
        status="success",
        duration_ms=823,
        fallback_used=True,
    )
    log.record("plan", "repair-2", strategy_id="s2")
    assert (a.seq, b.seq) == (1, 2) and b.prev_hash == a.hash
    assert log.verify().ok and log.verify().entries == 3
    assert [e.seq for e in log.entries(task_id="repair-1")] == [1, 2]
    assert [e.seq for e in log.entries(strategy_id="s2")] == [3]
    assert log.get(a.entry_id).details == {"x": 1} and log.get("2").status == "success"
    # the seed's audit fields are all there
    row = json.loads(log.jsonl.read_text().splitlines()[1])
    for k in (
        "trace_id",
        "task_id",
        "detected_at",
        "root_cause",
        "strategy_id",
        "executed_by",
        "status",
        "duration_ms",
        "fallback_used",
        "rollback_applied",
    ):
        assert k in row
    pkg = log.export(task_id="repair-1")
    assert pkg["chain"]["ok"] and len(pkg["entries"]) == 2


def test_edit_delete_and_truncation_are_detected(tmp_path: Path) -> None:
    log = AuditLog(tmp_path)
    for i in range(4):
        log.record("action_result", "t", seq_no=i, status="success")
    lines = log.jsonl.read_text().splitlines(keepends=True)
    edited = json.loads(lines[1])
    edited["status"] = "failed"
    log.jsonl.write_text(lines[0] + json.dumps(edited) + "\n" + "".join(lines[2:]))
    r = log.verify()
    assert not r.ok and r.first_bad_seq == 2 and "edited" in r.problem
    log.jsonl.write_text(lines[0] + "".join(lines[2:]))
    r = log.verify()
    assert not r.ok and r.first_bad_seq == 2 and "deleted" in r.problem
    log.jsonl.write_text("".join(lines[:3]))
    r = log.verify()
    assert not r.ok and "truncated" in r.problem


def test_sqlite_catches_up_after_a_crash_between_writes(tmp_path: Path) -> None:
    log = AuditLog(tmp_path)
    log.record("plan", "t")
    log.record("action_intent", "t", seq_no=1)
    log.close()
    with sqlite3.connect(tmp_path / "audit.sqlite") as db:  # simulate: JSONL written, index not
        db.execute("DELETE FROM audit WHERE seq = 2")
    with open(tmp_path / "audit.jsonl", "a") as fh:
        fh.write('{"seq": 3, "torn')  # and a torn line from a crash mid-write
    reopened = AuditLog(tmp_path)
    assert [e.event for e in reopened.entries(task_id="t")] == ["plan", "action_intent"]
    reopened.record("action_result", "t", seq_no=1)
    assert reopened.verify().ok and reopened.verify().entries == 3


def test_concurrent_processes_keep_one_chain(tmp_path: Path) -> None:
    """Two processes append 100 entries each at once: one chain, 200 entries, none lost."""
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_append_many, args=(str(tmp_path), t, 100)) for t in "ab"]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    log = AuditLog(tmp_path)
    assert log.verify().ok
    assert len(log.entries()) == 200
    for tag in "ab":
        assert [e.seq_no for e in log.entries(task_id=f"task-{tag}")] == list(range(100))


def test_concurrent_handles_in_threads_keep_one_chain(tmp_path: Path) -> None:
    """Eight handles (as in the MCP server's worker threads), released together, 25 appends
    each: 200 entries in one valid chain, seq numbers 1..200 with no gap or repeat."""
    handles = [AuditLog(tmp_path) for _ in range(8)]
    start = threading.Barrier(len(handles))

    def append(i: int) -> None:
        start.wait()
        for n in range(25):
            handles[i].record("plan", f"t{i}", seq_no=n)

    with ThreadPoolExecutor(len(handles)) as pool:
        list(pool.map(append, range(len(handles))))
    log = AuditLog(tmp_path)
    assert log.verify().ok
    assert [e.seq for e in log.entries()] == list(range(1, 201))
