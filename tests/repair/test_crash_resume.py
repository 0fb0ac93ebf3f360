"""Kill ``tamo repair execute`` (SIGKILL, a real subprocess) in the middle of an action, start it
again, and check that no action reached the target twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.repair.webhook_server import WebhookServer
from tools.repair import AuditLog

STRATEGY = """
- strategy_id: two_step_restart
  repair_class: restart
  auto: true
  executor: webhook
  condition: {fault_type: inference_hang}
  actions:
    - switch_model: {target: InferenceRPC, params: {model: fallback}}
    - graceful_restart: InferenceRPC
"""

CLI = (
    "import sys, typer; from tamo.repair_cmd import register; "
    "app = typer.Typer(); register(app); app()"
)


def _cli(args: list[str]) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    return subprocess.Popen(
        [sys.executable, "-c", CLI, *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@pytest.mark.slow
def test_killed_mid_action_never_repeats_an_action(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text(STRATEGY)
    (tmp_path / "d.json").write_text(
        json.dumps(
            {
                "service": "InferenceRPC",
                "fault_type": "inference_hang",
                "error_codes": ["MODEL_TIMEOUT"],
                "detected_at": "2026-11-26T13:46:00Z",
                "confidence": 0.95,
                "evidence_modalities": ["traces", "metrics"],
            }
        )
    )
    calls = tmp_path / "calls.jsonl"
    with WebhookServer(delay_s=4.0, log_file=calls) as hook:
        args = [
            "repair",
            "execute",
            "--diagnosis",
            str(tmp_path / "d.json"),
            "--strategies",
            str(tmp_path / "s.yaml"),
            "--webhook",
            hook.url,
            "--allow",
            "InferenceRPC",
            "--audit-dir",
            str(tmp_path / "audit"),
        ]
        first = _cli(args)
        deadline = time.time() + 60
        while not hook.modes("execute") and time.time() < deadline:
            assert first.poll() is None, first.communicate()[0]
            time.sleep(0.05)
        first.send_signal(signal.SIGKILL)  # the first action is in flight at the target
        first.wait(10)
        log = AuditLog(tmp_path / "audit")
        assert [e.event for e in log.entries()][-1] == "action_intent"

        second = _cli(args)
        out, _ = second.communicate(timeout=60)
        assert second.returncode == 0, out
        assert "(resumed)" in out
    executed = [
        json.loads(line)
        for line in calls.read_text().splitlines()
        if json.loads(line)["mode"] == "execute"
    ]
    keys = [c["idempotency_key"] for c in executed]
    assert len(keys) == len(set(keys)) == 2  # each action reached the target exactly once
    assert [c["action"] for c in executed] == ["switch_model", "graceful_restart"]
    events = [(e.event, e.seq_no, e.status) for e in AuditLog(tmp_path / "audit").entries()]
    assert ("action_result", 1, "in_doubt") in events
    assert ("action_result", 2, "success") in events
    assert events[-1] == ("finished", None, "success")
    assert AuditLog(tmp_path / "audit").verify().ok
    check = _cli(["audit", "verify", "--audit-dir", str(tmp_path / "audit")])
    out, _ = check.communicate(timeout=60)
    assert check.returncode == 0 and "chain intact" in out
