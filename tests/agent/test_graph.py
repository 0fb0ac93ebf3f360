"""The investigation graph without an LLM: complete reports, approval, resumption after a crash."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.report_model import NO_LLM, Report
from agent.run import Investigator
from tests.agent.conftest import RecordingExecutor, repair_ctx
from tools.core.settings import Settings
from tools.toolbox.context import ToolContext

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
        == "1. rollout_restart paymentservice: would rollout_restart paymentservice"
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
    done = later.decide(first.thread_id, True, "ann")
    assert done.pending_approval is None
    assert recorder.executed() == [("execute", "rollout_restart", "paymentservice")]
    assert done.report.remediation.status == "success"
    assert done.state["approval"].by == "ann"


def test_denied_plan_is_not_executed(
    case_ctx: ToolContext, recorder: RecordingExecutor, tmp_path: Path
) -> None:
    inv = Investigator(case_ctx, llm=False, checkpointer=tmp_path / "cp.sqlite")
    first = inv.diagnose(case_ctx.incident, request_repair=True, dry_run=False)
    done = inv.decide(first.thread_id, False, "bob", "not during peak")
    assert recorder.executed() == []
    assert done.report.remediation.status == "denied by bob"


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
        inv.decide(first.thread_id, True, "ann")
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
