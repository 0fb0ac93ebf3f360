"""Faults on the repair loop: each is one clear line, the audit chain stays valid, no action runs
twice and nothing the audit log acknowledged is lost.

Covered: the audit disk full (ENOSPC while announcing an action, and after it ran; a real
file-size limit in a subprocess), the audit lock held by a stuck process, a corrupt audit index
and a corrupt audit line, Prometheus unreachable while verifying, clocks that disagree between
hosts, and a corrupt testbed state store. The executor process killed mid-action is
``test_crash_resume.py``.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest
from typer.testing import CliRunner

from tests.conftest import free_port
from tests.repair.test_runner import diagnosis, make
from tests.repair.webhook_server import WebhookServer
from tools.core.errors import InputError, TamoError
from tools.repair import AuditLog, RepairExecutor, Verifier
from tools.repair.audit import AuditWriteError
from tools.telemetry.backends.prometheus import PrometheusClient
from tools.telemetry.sources import MetricQuery

REPO = Path(__file__).resolve().parents[2]


def audit_verify(directory: Path) -> tuple[int, str]:
    """``tamo audit verify`` as a user runs it: exit code and its output."""
    import typer

    from tamo.repair_cmd import register

    app = typer.Typer()
    register(app)
    r = CliRunner().invoke(app, ["audit", "verify", "--audit-dir", str(directory)])
    return r.exit_code, r.output


def disk_full_on(monkeypatch: pytest.MonkeyPatch, event: str, seq_no: int | None = None) -> None:
    """``os.write`` of the audit log fails with ENOSPC for the entry announcing ``event``."""
    import tools.repair.audit as audit

    real = os.write

    def write(fd: int, data: bytes) -> int:
        entry = json.loads(data)
        if entry["event"] == event and seq_no in (None, entry["seq_no"]):
            real(fd, data[: len(data) // 2])  # half of it reached the disk, then it was full
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd, data)

    monkeypatch.setattr(audit.os, "write", write)


def test_disk_full_before_an_action_runs_nothing_and_keeps_the_chain(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with WebhookServer() as hook:
        plan, runner, _ = make(tmp_path, hook, metric=1.0)
        disk_full_on(monkeypatch, "action_intent")
        with pytest.raises(AuditWriteError) as err:
            runner.run(plan)
        assert str(err.value) == (
            f"{tmp_path / 'audit.jsonl'}: cannot record audit entry (No space left on device); "
            "nothing was recorded"
        )
        assert hook.modes("execute") == []  # write-ahead: not announced, not done
        kept = [e.event for e in AuditLog(tmp_path).entries()]
        assert kept == ["plan", "run_started", "precheck", "dry_run", "dry_run", "approval"]
        assert audit_verify(tmp_path)[0] == 0
        monkeypatch.undo()  # space again: the task resumes and completes, each action once
        out = runner.run(plan)
        assert out.status == "success" and out.resumed
        keys = [c["idempotency_key"] for c in hook.modes("execute")]
        assert len(keys) == len(set(keys)) == 2
    code, text = audit_verify(tmp_path)
    assert code == 0 and "chain intact" in text


def test_disk_full_after_an_action_never_sends_it_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with WebhookServer() as hook:
        plan, runner, _ = make(tmp_path, hook, metric=1.0)
        disk_full_on(monkeypatch, "action_result", seq_no=1)
        with pytest.raises(AuditWriteError):
            runner.run(plan)
        assert [c["action"] for c in hook.modes("execute")] == ["switch_model"]
        monkeypatch.undo()
        out = runner.run(plan)
        # its result was never recorded: in doubt, and the receiver does not dedupe -> not re-sent
        assert out.skipped == [1] and out.executed == [2]
        assert [c["action"] for c in hook.modes("execute")] == ["switch_model", "graceful_restart"]
    assert ("action_result", 1, "in_doubt") in [
        (e.event, e.seq_no, e.status) for e in AuditLog(tmp_path).entries()
    ]
    assert AuditLog(tmp_path).verify().ok


def test_a_real_file_size_limit_leaves_no_torn_entry(tmp_path: Path) -> None:
    """RLIMIT_FSIZE in a child process: the write fails for real (EFBIG), the child prints one
    line, and the log it leaves verifies with every earlier entry in place."""
    log = AuditLog(tmp_path)
    for i in range(3):
        log.record("plan", f"task-{i}", details={"n": i})
    size = (tmp_path / "audit.jsonl").stat().st_size
    child = f"""
import resource, signal, sys
from pathlib import Path
from tools.repair.audit import AuditLog
from tools.core.errors import TamoError
log = AuditLog(Path({str(tmp_path)!r}))
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, ({size} + 200, {size} + 200))
try:
    log.record("plan", "big", details={{"blob": "x" * 5000}})
except TamoError as exc:
    print(exc)
    sys.exit(3)
"""
    r = subprocess.run(
        [sys.executable, "-c", child],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 3, r.stderr
    assert r.stdout.strip().endswith("nothing was recorded") and "\n" not in r.stdout.strip()
    assert "Traceback" not in r.stderr
    assert (tmp_path / "audit.jsonl").stat().st_size == size
    after = AuditLog(tmp_path)
    assert [e.task_id for e in after.entries()] == ["task-0", "task-1", "task-2"]
    assert after.verify().ok


def test_a_stuck_process_holding_the_audit_lock_is_one_error_not_a_hang(tmp_path: Path) -> None:
    log = AuditLog(tmp_path, lock_timeout_s=0.2)
    with open(tmp_path / "audit.lock", "a") as fh:  # another open file: a separate flock
        fcntl.flock(fh, fcntl.LOCK_EX)
        with pytest.raises(TamoError, match=r"audit log locked by another process for 0\.2 s"):
            log.record("plan", "t")
    log.record("plan", "t")
    assert log.verify().ok and len(log.entries()) == 1


def test_a_corrupt_index_is_rebuilt_from_the_jsonl(tmp_path: Path) -> None:
    log = AuditLog(tmp_path)
    for i in range(4):
        log.record("plan", f"t{i}")
    log.close()
    (tmp_path / "audit.sqlite").write_bytes(b"this is not a database" * 100)
    again = AuditLog(tmp_path)
    assert [e.task_id for e in again.entries()] == ["t0", "t1", "t2", "t3"]
    assert again.verify().ok
    assert list(tmp_path.glob("audit.sqlite.corrupt-*"))  # set aside, not deleted


def test_a_corrupt_audit_line_is_named_by_file_and_line(tmp_path: Path) -> None:
    log = AuditLog(tmp_path)
    for i in range(3):
        log.record("plan", f"t{i}")
    lines = (tmp_path / "audit.jsonl").read_text().splitlines()
    lines[1] = lines[1][:40] + "<garbage>"
    (tmp_path / "audit.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError) as err:
        AuditLog(tmp_path).verify()
    assert err.value.source == f"{tmp_path / 'audit.jsonl'}:2"


def test_prometheus_unreachable_while_verifying_rolls_back_and_says_why(tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    with WebhookServer() as hook:
        plan, runner, _ = make(tmp_path, hook, metric=1.0)
        runner.verifier = Verifier(PrometheusClient(dead))
        out = runner.run(plan)
        assert out.status == "failed" and out.rollback_applied
        assert out.reason.startswith("recovery not verified (p95: ") and dead in out.reason
        assert "\n" not in out.reason
        again = runner.run(plan)  # the recorded outcome, nothing re-sent
        assert again.resumed and again.executed == []
        keys = [c["idempotency_key"] for c in hook.modes("execute")]
        assert len(keys) == len(set(keys)) == 3  # two actions and the rollback step, once each
    assert AuditLog(tmp_path).verify().ok


def test_an_audit_history_from_the_future_refuses_to_repair(tmp_path: Path) -> None:
    """Another host, its clock 10 minutes ahead, started this task: TTLs and verification
    windows across the two clocks mean nothing, so the repair is refused until they agree."""
    with WebhookServer() as hook:
        plan, runner, _ = make(tmp_path, hook, metric=1.0)
        ahead = datetime.now(UTC) + timedelta(minutes=10)
        AuditLog(tmp_path).record("plan", plan.task_id, ts=ahead.isoformat(timespec="milliseconds"))
        out = runner.run(plan)
        assert out.status == "refused" and "in the future: clocks differ" in out.reason
        assert hook.calls == []
    assert AuditLog(tmp_path).verify().ok


def test_a_trace_source_with_its_clock_behind_fails_verification_safely(tmp_path: Path) -> None:
    """Its samples after the repair are stamped before it: no evidence of recovery, so the
    repair counts as not verified (rolled back), and the note says what that can mean."""
    from tests.repair.test_runner import Metrics

    class Behind(Metrics):
        """A source whose clock is 5 minutes behind: it answers only for its own "now"."""

        def series(self, query: MetricQuery) -> pa.Table:
            t = super().series(query)
            stamped = query.window.end_ns - 300 * 10**9
            return t.slice(0, 0) if stamped < query.window.start_ns else t

    with WebhookServer() as hook:
        plan, runner, _ = make(tmp_path, hook, metric=1.0)
        runner.verifier = Verifier(Behind(1.0))
        out = runner.run(plan)
    assert out.status == "failed" and "its clock behind ours" in out.reason
    assert AuditLog(tmp_path).verify().ok


def test_a_corrupt_state_store_is_one_line(tmp_path: Path) -> None:
    from testbed.client import TestbedError
    from testbed.state import StateStore

    path = tmp_path / "state.sqlite"
    path.write_bytes(b"\x00garbage" * 500)
    with pytest.raises(TestbedError) as err:
        StateStore(path)
    assert "state store unusable" in str(err.value) and str(path) in str(err.value)
    assert path.read_bytes().startswith(b"\x00garbage")  # nothing overwritten


def test_the_runner_gate_holds_with_faults_too(tmp_path: Path) -> None:
    """A diagnosis without evidence is refused before the audit could fill or a call be made."""
    with WebhookServer() as hook:
        plan, runner, _ = make(tmp_path, hook, metric=1.0)
        weak = plan.model_copy(update={"diagnosis": diagnosis(confidence=None)})
        assert isinstance(runner, RepairExecutor)
        out = runner.run(weak)
        assert out.status == "refused" and hook.calls == []
