"""The repair run end to end against a real loopback webhook: safety, approval, write-ahead
audit, verification and automatic rollback."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from tests.repair.webhook_server import WebhookServer
from tools.repair import (
    Approval,
    AuditLog,
    Diagnosis,
    RepairExecutor,
    RepairMetrics,
    RuleEngine,
    SafetyPolicy,
    Verifier,
    auto_approver,
)
from tools.repair.executors import WebhookExecutor
from tools.repair.strategy import parse_strategies
from tools.telemetry.model import METRIC_SCHEMA
from tools.telemetry.sources import MetricQuery

STRATEGY = """
- strategy_id: restart_then_check
  repair_class: restart
  auto: {auto}
  executor: webhook
  condition: {{fault_type: inference_hang}}
  prechecks: [hot_restart_supported]
  actions:
    - switch_model: {{target: InferenceRPC, params: {{model: fallback}}}}
    - graceful_restart: "{{module}}"
  rollback:
    - notify: {{target: "{{module}}"}}
  max_attempts: 2
  verify:
    timeout_s: 1.0
    interval_s: 0.05
    consecutive: 2
    checks:
      - name: p95
        promql: histogram_quantile(0.95, sum by (le) (rate(x_bucket{{module="{{module}}"}}[5s])))
        op: "<"
        value: 2.0
"""


class Metrics:
    """A MetricSource whose value is what the test says the system currently shows."""

    def __init__(self, value: float | None) -> None:
        self.value = value
        self.queries: list[str] = []

    def series(self, query: MetricQuery) -> pa.Table:
        self.queries.append(query.name_or_promql)
        if self.value is None:
            return METRIC_SCHEMA.empty_table()
        return pa.Table.from_pylist(
            [
                {
                    "name": "q",
                    "service": None,
                    "pod": None,
                    "labels": "{}",
                    "ts_ns": query.window.end_ns,
                    "value": self.value,
                }
            ],
            schema=METRIC_SCHEMA,
        )


def diagnosis(**evidence: Any) -> Diagnosis:
    """The chapter's incident with enough evidence to act on (unless ``evidence`` says less)."""
    return Diagnosis(
        **{"confidence": 0.95, "evidence_modalities": ["traces", "metrics"], **evidence},
        service="InferenceRPC",
        fault_type="inference_hang",
        trace_ids=["abc453"],
        error_codes=["MODEL_TIMEOUT"],
        detected_at=datetime(2026, 1, 1, tzinfo=UTC),
    )


def make(
    tmp_path: Path,
    hook: WebhookServer,
    metric: float | None,
    *,
    auto: bool = True,
    allow: tuple[str, ...] = ("InferenceRPC",),
    approver=None,
):
    (s,) = parse_strategies(STRATEGY.format(auto=str(auto).lower()), "t.yaml")
    plan = RuleEngine([s]).pick(diagnosis())
    assert plan is not None
    metrics = Metrics(metric)
    runner = RepairExecutor(
        {"webhook": WebhookExecutor(hook.url)},
        AuditLog(tmp_path),
        SafetyPolicy(allow_targets=list(allow), approvers=["os:alice", "os:bob"]),
        verifier=Verifier(metrics),
        approver=approver,
        metrics=RepairMetrics(),
    )
    return plan, runner, metrics


def events(tmp_path: Path) -> list[tuple[str, int | None, str]]:
    return [(e.event, e.seq_no, e.status) for e in AuditLog(tmp_path).entries()]


def test_verified_repair_is_fully_audited(tmp_path: Path) -> None:
    with WebhookServer() as hook:
        plan, runner, metrics = make(tmp_path, hook, metric=1.1)
        out = runner.run(plan)
        assert out.status == "success", (out.reason, out.verification)
        assert out.recovered and out.executed == [1, 2]
        assert [c["mode"] for c in hook.calls] == [
            "precheck",
            "dry_run",
            "dry_run",
            "execute",
            "execute",
        ]
        assert [c["idempotency_key"] for c in hook.modes("execute")] == [
            f"{plan.task_id}:1",
            f"{plan.task_id}:2",
        ]
        assert 'module="InferenceRPC"' in metrics.queries[0]
    assert events(tmp_path) == [
        ("plan", None, "info"),
        ("run_started", None, "started"),
        ("precheck", 1, "success"),
        ("dry_run", 1, "success"),
        ("dry_run", 2, "success"),
        ("approval", None, "approved"),
        ("action_intent", 1, "started"),
        ("action_result", 1, "success"),
        ("action_intent", 2, "started"),
        ("action_result", 2, "success"),
        ("verify", None, "success"),
        ("finished", None, "success"),
    ]
    log = AuditLog(tmp_path)
    assert log.verify().ok
    final = log.entries(event="finished")[0]
    assert final.fallback_used is False and final.trace_id == "abc453"
    assert final.root_cause == "InferenceRPC.inference_hang"
    text = runner.metrics.exposition().decode()
    assert 'repair_success_total{strategy_id="restart_then_check"} 1.0' in text
    assert "auto_fix_success_rate 1.0" in text
    # handing the same plan in again changes nothing: the recorded outcome comes back
    with WebhookServer() as hook2:
        plan2, runner2, _ = make(tmp_path, hook2, metric=1.1)
        again = runner2.run(plan2)
        assert again.resumed and again.status == "success" and hook2.calls == []


def test_unverified_repair_is_rolled_back_and_reported_failed(tmp_path: Path) -> None:
    with WebhookServer() as hook:
        plan, runner, _ = make(tmp_path, hook, metric=9.3)
        out = runner.run(plan)
        assert out.status == "failed" and not out.recovered and out.rollback_applied
        assert "recovery not verified (p95)" in out.reason
        assert out.verification is not None and out.verification.checks[0].value == 9.3
        # inverse of each executed action, newest first, then the strategy's rollback step
        rb = [(c["mode"], c["action"]) for c in hook.calls if c["mode"] in ("rollback",)]
        assert rb == [("rollback", "graceful_restart"), ("rollback", "switch_model")]
        assert hook.modes("execute")[-1]["action"] == "notify"
    ev = events(tmp_path)
    assert ("verify", None, "failed") in ev and ev[-1] == ("finished", None, "failed")
    assert sum(1 for e in ev if e[0] == "rollback_result") == 3
    text = runner.metrics.exposition().decode()
    assert "rollback_latency_seconds_count 1.0" in text
    assert "auto_fix_success_rate 0.0" in text


def test_no_data_is_not_recovery(tmp_path: Path) -> None:
    with WebhookServer() as hook:
        plan, runner, _ = make(tmp_path, hook, metric=None)
        out = runner.run(plan)
        assert out.status == "failed"
        assert out.verification.checks[0].note.startswith("no data after the repair")


def test_allow_list_and_approval_refuse_before_any_action(tmp_path: Path) -> None:
    with WebhookServer() as hook:
        plan, runner, _ = make(tmp_path / "a", hook, metric=1.0, allow=("CallbackSender",))
        out = runner.run(plan)
        assert out.status == "refused" and "not in the allow-list: InferenceRPC" in out.reason
        plan, runner, _ = make(tmp_path / "b", hook, metric=1.0, auto=False)
        out = runner.run(plan)
        assert out.status == "refused" and "approval required" in out.reason
        plan, runner, _ = make(
            tmp_path / "c",
            hook,
            metric=1.0,
            auto=False,
            approver=lambda p: Approval(approved=False, by="os:alice", reason="change freeze"),
        )
        out = runner.run(plan)
        assert out.reason == "not approved by os:alice: change freeze"
        assert hook.modes("execute") == []
        plan, runner, _ = make(
            tmp_path / "d",
            hook,
            metric=1.0,
            auto=False,
            approver=lambda p: Approval(approved=True, by="os:bob"),
        )
        assert runner.run(plan).status == "success"
    assert ("approval", None, "approved") in events(tmp_path / "d")
    assert AuditLog(tmp_path / "d").entries(event="approval")[0].executed_by == "os:bob"


@pytest.mark.parametrize(
    ("by", "why"),
    [
        ("os:mallory", "os:mallory is not in TAMO_REPAIR_APPROVERS"),
        ("alice", "alice is not in TAMO_REPAIR_APPROVERS"),  # a bare name is no principal
        ("", "no authenticated identity approved the repair"),
    ],
)
def test_an_approval_without_an_allow_listed_identity_is_refused_and_audited(
    tmp_path: Path, by: str, why: str
) -> None:
    with WebhookServer() as hook:
        plan, runner, _ = make(
            tmp_path,
            hook,
            metric=1.0,
            auto=False,
            approver=lambda p: Approval(approved=True, by=by),
        )
        out = runner.run(plan)
        assert out.status == "refused" and out.reason == f"approval refused: {why}"
        assert hook.modes("execute") == []
    (entry,) = AuditLog(tmp_path).entries(event="approval")
    assert (entry.executed_by, entry.status) == (by or "unauthenticated", "refused")
    assert entry.details["refused"] == why and AuditLog(tmp_path).verify().ok


def test_automatic_approvals_count_only_where_the_policy_allows_them(tmp_path: Path) -> None:
    with WebhookServer() as hook:
        plan, runner, _ = make(tmp_path, hook, metric=1.0, auto=True)
        runner.policy = runner.policy.model_copy(update={"allow_auto": False})
        runner.approver = auto_approver()
        out = runner.run(plan)
    assert out.reason == (
        "approval refused: automatic approval (policy:demo-auto-approve) not allowed"
    )


@pytest.mark.parametrize(
    ("evidence", "why"),
    [
        ({"confidence": None}, "no calibrated confidence for the root cause"),
        ({"confidence": 0.6}, "confidence 0.60 below 0.80"),
        (
            {"confidence": 0.95, "confidence_calibrated": False},
            "the confidence is an alert's vote share, not a calibrated probability",
        ),
        (
            {"evidence_modalities": ["logs"]},
            "evidence from 1 modality (logs), needs 2 or a knowledge-base match",
        ),
    ],
)
def test_weak_evidence_refuses_before_anything_runs(
    tmp_path: Path, evidence: dict[str, Any], why: str
) -> None:
    """A log line alone (one modality) or an uncalibrated score never picks a repair target."""
    with WebhookServer() as hook:
        (s,) = parse_strategies(STRATEGY.format(auto="true"), "t.yaml")
        plan = RuleEngine([s]).pick(diagnosis(**evidence))
        _, runner, _ = make(tmp_path, hook, metric=1.0)
        out = runner.run(plan)
        assert out.status == "refused" and why in out.reason and hook.calls == []
    assert "plan and report only" in out.reason


def test_a_knowledge_base_match_stands_in_for_the_second_modality(tmp_path: Path) -> None:
    with WebhookServer() as hook:
        (s,) = parse_strategies(STRATEGY.format(auto="true"), "t.yaml")
        plan = RuleEngine([s]).pick(diagnosis(evidence_modalities=["logs"], kb_match=True))
        _, runner, _ = make(tmp_path, hook, metric=1.1)
        assert runner.run(plan).status == "success"


def test_failed_precheck_and_dry_run_refuse(tmp_path: Path) -> None:
    with WebhookServer(fail_modes={"precheck"}) as hook:
        plan, runner, _ = make(tmp_path / "a", hook, metric=1.0)
        out = runner.run(plan)
        assert out.status == "refused" and "pre-check hot_restart_supported failed" in out.reason
    with WebhookServer(fail_modes={"dry_run"}) as hook:
        plan, runner, _ = make(tmp_path / "b", hook, metric=1.0)
        assert "dry run of switch_model" in runner.run(plan).reason
        assert hook.modes("execute") == []


def test_interrupted_action_is_never_sent_twice(tmp_path: Path) -> None:
    """An intent logged without a result (the process died mid-action) is not re-sent."""
    with WebhookServer() as hook:
        plan, runner, _ = make(tmp_path, hook, metric=1.0)
        log = AuditLog(tmp_path)
        log.record("plan", plan.task_id, strategy_id=plan.strategy_id)
        log.record("run_started", plan.task_id)
        log.record("approval", plan.task_id, status="approved")
        log.record("action_intent", plan.task_id, seq_no=1, status="started")
        out = runner.run(plan)
        assert out.resumed and out.status == "success"
        assert out.skipped == [1] and out.executed == [2]
        assert [c["action"] for c in hook.modes("execute")] == ["graceful_restart"]
        assert hook.modes("dry_run") == []  # no fresh dry run/prechecks once actions began
    assert ("action_result", 1, "in_doubt") in events(tmp_path)


def test_max_attempts_and_ttl(tmp_path: Path) -> None:
    with WebhookServer(fail_modes={"dry_run"}) as hook:
        plan, runner, _ = make(tmp_path, hook, metric=1.0)
        assert runner.run(plan).status == "refused"
        assert runner.run(plan).status == "refused"
        out = runner.run(plan)
        assert "used all 2 attempts" in out.reason
        assert len(hook.modes("dry_run")) == 2
    with WebhookServer() as hook:
        plan, runner, _ = make(tmp_path / "ttl", hook, metric=1.0)
        runner.clock = lambda: datetime.now(UTC).timestamp() + 10_000
        AuditLog(tmp_path / "ttl").record("plan", plan.task_id)
        assert "older than its TTL" in runner.run(plan).reason
        assert hook.calls == []


def test_audit_export_is_json(tmp_path: Path) -> None:
    with WebhookServer() as hook:
        plan, runner, _ = make(tmp_path, hook, metric=1.0)
        runner.run(plan)
    pkg = AuditLog(tmp_path).export(task_id=plan.task_id)
    json.dumps(pkg)
    assert pkg["entries"][0]["details"]["diagnosis"]["fault_type"] == "inference_hang"


def test_plan_is_logged_once_across_runs(tmp_path: Path) -> None:
    with WebhookServer(fail_modes={"dry_run"}) as hook:
        plan, runner, _ = make(tmp_path, hook, metric=1.0)
        runner.run(plan)
        runner.run(plan)
    assert [e.event for e in AuditLog(tmp_path).entries()].count("plan") == 1
