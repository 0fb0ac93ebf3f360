"""A live alert opens an investigation of the diagnose graph: triage, codes and severity reach the
rule engine, the approval pause is answered by the authenticated principal, execution follows."""

from __future__ import annotations

from pathlib import Path

from agent.corroborate import confirm_with_alert
from agent.respond import incident_of, respond
from agent.run import Investigator
from tests.agent.conftest import RecordingExecutor
from tests.agent.synthetic import ABNORMAL, BASELINE, synthetic_case
from tools.core.settings import Settings
from tools.learned.results import RankedEntity, RootCauseRanking
from tools.repair import AuditLog, SafetyPolicy
from tools.repair.strategy import parse_strategies
from tools.toolbox.context import ToolContext
from tools.toolbox.repair import RepairSetup, configure
from tools.traces.alerting import TraceAlert

# applies only when the alert's fault type, error code and severity all reach the engine
STRATEGY = """
strategies:
  - strategy_id: queue_restart
    description: "restart the wedged payment queue"
    repair_class: restart
    executor: recorder
    condition:
      root_cause: queue_wedged
      error_code: PAYMENT_QUEUE_FULL
      severity: critical
    actions:
      - rollout_restart: "{service}"
"""


def alert(suspect: str = "paymentservice", share: float = 0.8) -> TraceAlert:
    return TraceAlert(
        window=ABNORMAL,
        baseline=BASELINE,
        raised_at=0.0,
        traces=40,
        anomalous=30,
        suspect=suspect,
        fault_type="queue_wedged",
        share=share,
        votes={f"{suspect}|queue_wedged": 24},
        error_codes=["PAYMENT_QUEUE_FULL"],
        severity="critical",
        task_ids=["task-9"],
        last_good_task_id="task-3",
    )


def ctx(
    settings: Settings, recorder: RecordingExecutor, tmp_path: Path, *, accept_share: bool = True
) -> ToolContext:
    """The alert front's context; its policy accepts the triage's (uncalibrated) vote share as
    ``tamo demo``'s does, unless ``accept_share`` is False (the production default)."""
    c = ToolContext.from_case(synthetic_case(), settings)
    configure(
        c,
        RepairSetup(
            strategies=parse_strategies(STRATEGY, "alert-strategies.yaml"),
            executors={"recorder": recorder},
            policy=SafetyPolicy(
                allow_targets=["*"], approvers=["os:sre"], accept_uncalibrated=accept_share
            ),
            audit=AuditLog(tmp_path / "audit"),
        ),
    )
    return c


def test_an_alert_is_investigated_planned_approved_and_executed(
    settings: Settings, recorder: RecordingExecutor, tmp_path: Path
) -> None:
    inv = Investigator(ctx(settings, recorder, tmp_path), llm=False, checkpointer=tmp_path / "c")
    done = respond(inv, alert(), "os:sre")
    s = done.state
    assert s["approval"].approved and s["approval"].by == "os:sre"
    assert recorder.executed() == [("execute", "rollout_restart", "paymentservice")]
    d = s["plan"]["plan"]["diagnosis"]
    assert d["fault_type"] == "queue_wedged" and d["severity"] == "critical"
    assert d["error_codes"][0] == "PAYMENT_QUEUE_FULL" and d["last_good_task_id"] == "task-3"
    assert any("point at paymentservice" in e for e in d["evidence"])
    assert any(e.tool == "live_triage" for e in s["evidence"])
    assert s["incident"].baseline == BASELINE  # normal is what the alert learned from
    assert done.report.remediation.status == "success"


def test_a_production_policy_does_not_take_the_vote_share_for_a_calibrated_confidence(
    settings: Settings, recorder: RecordingExecutor, tmp_path: Path
) -> None:
    c = ctx(settings, recorder, tmp_path, accept_share=False)
    inv = Investigator(c, llm=False, checkpointer=tmp_path / "c")
    done = respond(inv, alert(), "os:sre")
    assert done.pending_approval is None and recorder.executed() == []
    assert "approval" not in done.state or not done.state["approval"].approved


def test_without_an_alert_the_same_graph_cannot_plan_that_repair(
    settings: Settings, recorder: RecordingExecutor, tmp_path: Path
) -> None:
    inv = Investigator(ctx(settings, recorder, tmp_path), llm=False, checkpointer=tmp_path / "c")
    done = inv.diagnose(incident_of(alert()), request_repair=True, dry_run=False)
    assert done.pending_approval is None and recorder.executed() == []


def ranking(*entities: str) -> RootCauseRanking:
    return RootCauseRanking(
        ranking=[RankedEntity(entity=e, score=1.0 - 0.3 * i) for i, e in enumerate(entities)]
    )


def test_a_clear_triage_majority_is_reported_first_with_t2_beside_it() -> None:
    out, note = confirm_with_alert(ranking("frontend", "paymentservice"), alert())
    assert out.services == ["paymentservice", "frontend"] and "T2 ranks frontend" in note


def test_a_split_triage_leaves_the_ranking_alone() -> None:
    out, note = confirm_with_alert(ranking("frontend", "paymentservice"), alert(share=0.3))
    assert out.services == ["frontend", "paymentservice"] and "stands" in note


def test_without_t2_the_triage_ranks_alone() -> None:
    out, note = confirm_with_alert(None, alert("cartservice"))
    assert out.services == ["cartservice"] and "no T2 ranking" in note
