"""``tamo demo`` end to end on the real testbed, a real Prometheus and the real loop.

Two runs: the seed's chapter-7 incident must be found, repaired and verified; a strategy that
cannot fix the fault (restarting a process does not cure a bad model version) must fail
verification, be rolled back automatically and be reported as failed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from tamo.demo_cmd import register
from tools.repair import AuditLog

pytestmark = [
    pytest.mark.slow,
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("prometheus") is None, reason="prometheus not installed"),
]

WRONG_STRATEGY = """
x-verify: &verify
  window_s: 4
  timeout_s: 6
  interval_s: 0.25
  consecutive: 2
  checks:
    - {name: tasks_flowing, trace: span_count, service: AgentRouter, op: ">=", value: 3}
    - {name: task_errors, trace: error_ratio, service: AgentRouter, op: "<", value: 0.05}
strategies:
  - strategy_id: restart_does_not_help
    repair_class: restart
    auto: true
    condition: {root_cause: model_timeout, error_code: MODEL_TIMEOUT}
    actions:
      - switch_model: {target: InferenceRPC, params: {model: primary}}
      - graceful_restart: InferenceRPC
    rollback:
      - set_skip_flag: {target: Vectorizer, params: {enabled: false}}
    verify: *verify
"""


def _demo(args: list[str]) -> tuple[int, str]:
    app = typer.Typer()
    register(app)
    app.command("noop")(lambda: None)  # keep "demo" a sub-command
    r = CliRunner().invoke(app, ["demo", *args])
    return r.exit_code, r.output


def test_llm_hang_is_found_repaired_and_verified(tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    code, text = _demo(
        [
            "--scenario",
            "inference-hang",
            "--headless",
            "--json",
            str(out),
            "--out",
            str(tmp_path / "run"),
        ]
    )
    res = json.loads(out.read_text())
    assert code == 0, (text, res)
    assert res["scenario"] == "inference-hang" and res["detected"]
    assert res["root_cause"] == "InferenceRPC.inference_hang" and res["root_cause_correct"]
    assert res["strategy"] == "executor_restart_fallback" and res["recovered"]
    assert res["mttr_seconds"] > res["detect_seconds"] > 0
    assert res["before"]["failure_rate"] > res["after"]["failure_rate"]
    assert res["before"]["p95_latency_s"] > res["after"]["p95_latency_s"]
    log = AuditLog(tmp_path / "run" / "audit")
    assert log.verify().ok
    ids = {e.entry_id: e for e in log.entries()}
    assert set(res["audit_ids"]) <= set(ids)
    events = [ids[i].event for i in res["audit_ids"]]
    assert events[-2:] == ["verify", "finished"] and "approval" in events
    for name in ("heatmap", "repair_effect"):
        assert Path(res["artifacts"][name]).stat().st_size > 10_000
    dash = json.loads(Path(res["artifacts"]["grafana"]).read_text())
    assert {p["type"] for p in dash["panels"]} >= {"heatmap", "timeseries", "stat"}
    assert "InferenceRPC" in res["heatmap_counts"]


def test_unverified_repair_is_rolled_back_and_reported_failed(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text(WRONG_STRATEGY)
    out = tmp_path / "result.json"
    code, text = _demo(
        [
            "--scenario",
            "model-timeout",
            "--headless",
            "--json",
            str(out),
            "--out",
            str(tmp_path / "run"),
            "--strategies",
            str(tmp_path / "s.yaml"),
        ]
    )
    res = json.loads(out.read_text())
    assert code == 1, (text, res)
    assert res["root_cause_correct"] and res["strategy"] == "restart_does_not_help"
    assert res["repair_status"] == "failed" and not res["recovered"]
    assert res["rollback_applied"] and res["mttr_seconds"] is None
    assert "recovery not verified" in res["reason"]
    log = AuditLog(tmp_path / "run" / "audit")
    rollbacks = [e for e in log.entries(event="rollback_result")]
    assert [e.details["step"] for e in rollbacks] == ["undo:2", "undo:1", "step:3"]
    assert log.entries(event="finished")[0].rollback_applied
