"""The investigation graph without an LLM: complete reports, approval, resumption after a crash."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.report_model import NO_LLM, Report
from agent.run import Investigator
from tests.agent.conftest import APPROVERS, Calibration, RecordingExecutor, repair_ctx
from tools.core.settings import Settings
from tools.toolbox.context import ToolContext
from tools.toolbox.repair import setup

SECTIONS = [
    "## Analysis",
    "### Evidence",
    "## Impact",
    "## Priority",
    "## Remediation",
    "## Alternative hypotheses",
    "## Modalities used",
    "## Not checked",
]


class Crash(Exception):
    """Stands for the process dying at an unlucky moment."""


def test_offline_report_has_every_section(case_ctx: ToolContext, tmp_path: Path) -> None:
    inv = Investigator(case_ctx, llm=False, checkpointer=tmp_path / "cp.sqlite")
    result = inv.diagnose(case_ctx.incident)
    r = result.report
    assert r.produced_with == NO_LLM
    assert r.analysis.root_cause == "paymentservice" and r.analysis.root_cause_confidence > 0.5
    assert r.analysis.causal_chain[0] == "paymentservice"
    assert len(r.analysis.evidence) >= 5
    assert all(e.query for e in r.analysis.evidence)
    assert any(e.link and e.link.startswith("tamo://trace/") for e in r.analysis.evidence)
    # users (frontend) see no errors, only the latency; payment fails a third of its requests
    assert r.impact.entry_points == ["frontend"] and r.impact.error_rate == 0.0
    assert r.impact.baseline == "the given baseline window"
    assert r.impact.latency_change_pct > 100
    pay = next(s for s in r.impact.services if s.service == "paymentservice")
    assert pay.error_rate > 0.2 and pay.baseline_error_rate == 0.0 and pay.affected
    assert {"paymentservice", "checkoutservice", "frontend"} <= set(r.impact.affected_services)
    assert r.priority.level == "P1" and "latency" in r.priority.rule
    assert r.remediation.strategy == "payment_restart"
    assert (
        r.remediation.dry_run
        == '1. rollout_restart "paymentservice": "would rollout_restart paymentservice"'
    )
    assert r.alternatives and r.alternatives[0].entity != "paymentservice"
    assert set(r.modalities_used) == {"metrics", "traces", "logs"}
    assert r.not_checked
    assert r.usage.tool_calls >= 9 and r.usage.prompt_tokens == 0
    md = r.to_markdown()
    assert all(s in md for s in SECTIONS) and NO_LLM in md
    assert Report.model_validate_json(r.to_json()) == r
    blocks = r.to_slack_blocks(approval_id=result.thread_id)
    assert blocks[0]["type"] == "header" and blocks[-1]["type"] == "actions"
    assert json.dumps(blocks)


def test_approval_pauses_then_a_new_process_executes(
    case_ctx: ToolContext, recorder: RecordingExecutor, settings: Settings, tmp_path: Path
) -> None:
    cp = tmp_path / "cp.sqlite"
    first = Investigator(case_ctx, llm=False, checkpointer=cp).diagnose(
        case_ctx.incident, request_repair=True, dry_run=False
    )
    assert first.pending_approval["strategy"] == "payment_restart"
    assert first.report.remediation.status == "awaiting-approval"
    assert recorder.executed() == []
    later = Investigator(
        repair_ctx(settings, recorder, tmp_path / "audit"), llm=False, checkpointer=cp
    )
    done = later.decide(first.thread_id, True, APPROVERS[0])
    assert done.pending_approval is None
    assert recorder.executed() == [("execute", "rollout_restart", "paymentservice")]
    assert done.report.remediation.status == "success"
    assert done.state["approval"].by == APPROVERS[0]


def test_denied_plan_is_not_executed(
    case_ctx: ToolContext, recorder: RecordingExecutor, tmp_path: Path
) -> None:
    inv = Investigator(case_ctx, llm=False, checkpointer=tmp_path / "cp.sqlite")
    first = inv.diagnose(case_ctx.incident, request_repair=True, dry_run=False)
    done = inv.decide(first.thread_id, False, APPROVERS[0], "not during peak")
    assert recorder.executed() == []
    assert done.report.remediation.status == f"denied by {APPROVERS[0]}"
    (denial,) = setup(case_ctx).audit.entries(event="approval")
    assert (denial.executed_by, denial.status) == (APPROVERS[0], "denied")


@pytest.mark.parametrize("by", ["os:mallory", "slack:U0STRANGER", None, ""])
def test_a_decision_by_anyone_but_an_approver_decides_nothing(
    case_ctx: ToolContext, recorder: RecordingExecutor, tmp_path: Path, by: str | None
) -> None:
    inv = Investigator(case_ctx, llm=False, checkpointer=tmp_path / "cp.sqlite")
    first = inv.diagnose(case_ctx.incident, request_repair=True, dry_run=False)
    for approved in (True, False):
        out = inv.decide(first.thread_id, approved, by)
        assert out.refused and "decision refused" in out.refused
        assert out.pending_approval is not None  # still waiting for an approver
    assert recorder.executed() == []
    entries = setup(case_ctx).audit.entries(event="approval")
    assert [(e.executed_by, e.status) for e in entries] == [
        (by or "unauthenticated", "refused")
    ] * 2
    assert setup(case_ctx).audit.verify().ok


def test_weak_evidence_is_plan_and_report_only(
    case_ctx: ToolContext, recorder: RecordingExecutor, tmp_path: Path, calibration: Calibration
) -> None:
    calibration.p = 0.4
    inv = Investigator(case_ctx, llm=False, checkpointer=tmp_path / "cp.sqlite")
    out = inv.diagnose(case_ctx.incident, request_repair=True, dry_run=False)
    assert out.pending_approval is None  # never put to a person
    assert out.report.remediation.strategy == "payment_restart"
    assert out.report.remediation.status == (
        "held back (plan and report only): confidence 0.40 below 0.80"
    )
    assert recorder.executed() == []


def test_crash_after_repair_resumes_without_repeating_it(
    case_ctx: ToolContext, recorder: RecordingExecutor, settings: Settings, tmp_path: Path
) -> None:
    cp = tmp_path / "cp.sqlite"

    def die_after_repair(ev: dict) -> None:
        if ev["type"] == "tool_result" and ev["tool"] == "execute_repair" and recorder.executed():
            raise Crash

    inv = Investigator(case_ctx, llm=False, checkpointer=cp, on_event=die_after_repair)
    first = inv.diagnose(case_ctx.incident, request_repair=True, dry_run=False)
    with pytest.raises(Crash):
        inv.decide(first.thread_id, True, APPROVERS[0])
    assert len(recorder.executed()) == 1
    restarted = Investigator(
        repair_ctx(settings, recorder, tmp_path / "audit"), llm=False, checkpointer=cp
    )
    done = restarted.resume(first.thread_id)
    assert len(recorder.executed()) == 1, "the repair ran again after the restart"
    assert done.state["execution"]["resumed"] is True
    assert done.report.remediation.status == "success"


def test_resume_of_unknown_investigation_is_a_clear_error(
    case_ctx: ToolContext, tmp_path: Path
) -> None:
    from tools.core.errors import NotFoundError

    inv = Investigator(case_ctx, llm=False, checkpointer=tmp_path / "cp.sqlite")
    with pytest.raises(NotFoundError, match="no investigation"):
        inv.resume("inv-missing")
