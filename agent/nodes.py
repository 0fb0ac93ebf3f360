"""The graph's nodes: each a small function from the state to the fields it changes.

Why the nodes call tools by name: the agent uses exactly the functions the MCP server exposes
(one definition of each tool), through :func:`agent.evidence.run_tool`, so counting, evidence
and error handling are the same for every step. Nothing the LLM writes reaches ``plan``: the plan
comes from the rule engine over the structured diagnosis, so injected text cannot change it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from langchain_core.runnables import RunnableConfig
from langgraph.runtime import Runtime
from langgraph.types import interrupt

from agent.corroborate import confirm_with_alert, corroborate
from agent.evidence import run_tool
from agent.gather import deterministic_gather, llm_gather
from agent.impact import baseline_windows, measure_impact
from agent.priority import assign_priority
from agent.report_builder import build_report
from agent.report_model import EvidenceItem, Impact
from agent.state import Approval, InvestigationState
from tools.core.errors import TamoError
from tools.core.settings import LLMSettings
from tools.repair.identity import approving
from tools.repair.safety import Approval as RepairApproval
from tools.telemetry.untrusted import quote
from tools.toolbox import warm

if TYPE_CHECKING:  # the OpenAI client loads only when an LLM is configured
    from langchain_openai import ChatOpenAI
from tools.toolbox.context import ToolContext
from tools.toolbox.repair import LIVE_ALERT
from tools.toolbox.spec import WindowInput
from tools.toolbox.traces import analysis_for
from tools.traces.alerting import TraceAlert


@dataclass
class AgentDeps:
    """What nodes need that is not state (not checkpointed): sources, the LLM, a listener."""

    ctx: ToolContext
    llm: ChatOpenAI | None
    llm_settings: LLMSettings
    on_event: Callable[[dict[str, Any]], None] | None = None


Rt = Runtime[AgentDeps]


def _run(state: InvestigationState, rt: Rt, name: str, args: dict[str, Any]) -> Any:
    """Run a pipeline tool; a failure is recorded under "not checked" and yields ``None``."""
    d = rt.context
    run = run_tool(d.ctx, state["usage"], state["evidence"], name, args, d.on_event)
    if run.error:
        state["not_checked"].append(f"{name} failed: {run.error}")
    return run.result


def _touched(state: InvestigationState) -> dict[str, Any]:
    return {
        "usage": state["usage"],
        "evidence": state["evidence"],
        "not_checked": state["not_checked"],
    }


def scope(state: InvestigationState, runtime: Rt) -> dict[str, Any]:
    from agent.report_model import Usage

    incident = state["incident"]
    ctx = runtime.context.ctx
    baseline_note = None
    alert = state.get("alert")
    if incident.baseline is None and alert is not None and alert.baseline is not None:
        incident = incident.model_copy(update={"baseline": alert.baseline})
        baseline_note = "the fault-free traffic the live alert learned normal from"
    if incident.baseline is None:  # one normal for every tool: impact, T1-T3, trace analytics
        try:
            now, base, baseline_note = baseline_windows(incident, ctx.traces)
        except TamoError:
            base = None
        if base is not None:
            incident = incident.model_copy(update={"window": now, "baseline": base})
    if ctx.incident != incident:
        ctx.scope(incident)
    return {
        "incident": incident,
        "baseline_note": baseline_note or state.get("baseline_note"),
        "usage": state.get("usage") or Usage(),
        "evidence": state.get("evidence") or [],
        "not_checked": state.get("not_checked") or [],
        "started_at": state.get("started_at") or time.time(),
        "dry_run": state.get("dry_run", True),
        "request_repair": state.get("request_repair", False),
    }


def _impact(state: InvestigationState, rt: Rt) -> Impact:
    """Every service of the window against normal (:mod:`agent.impact`), filed as evidence."""
    ctx = rt.context.ctx
    try:
        impact = measure_impact(state["incident"], ctx.traces, state.get("baseline_note"))
    except TamoError as exc:
        state["not_checked"].append(f"impact not measured: {exc}")
        return Impact()
    if impact.baseline is None:
        state["not_checked"].append("no baseline: impact is not compared with normal")
    base = impact.baseline_error_rate
    worst = ", ".join(f"{s.service} ({s.why})" for s in impact.services if s.affected) or "none"
    state["evidence"].append(
        EvidenceItem(
            id=f"E{len(state['evidence']) + 1}",
            tool="impact",
            query=f"entry spans per service vs {impact.baseline or 'no baseline'}",
            link=ctx.links.trace(impact.trace_ids[0]) if impact.trace_ids else None,
            summary=f"{len(impact.services)} services, affected: {worst}; users "
            f"{impact.error_rate:.1%} errors" + ("" if base is None else f" (normal {base:.1%})"),
        )
    )
    return impact


def gather(state: InvestigationState, runtime: Rt) -> dict[str, Any]:
    d = runtime.context
    warm(d.ctx)
    impact = _impact(state, runtime)
    args = (state["incident"], state["usage"], state["evidence"], state["not_checked"])
    if d.llm is not None:
        known = [s.service for s in impact.services]
        incident = llm_gather(
            d.llm, d.llm_settings, d.ctx, *args, on_event=d.on_event, known_services=known
        )
    else:
        incident = deterministic_gather(d.ctx, *args, on_event=d.on_event)
    if incident != state["incident"]:  # the learned tools study the scope the LLM chose
        d.ctx.scope(incident)
    return {**_touched(state), "impact": impact, "incident": incident}


def fuse(state: InvestigationState, runtime: Rt) -> dict[str, Any]:
    return {**_touched(state), "fusion": _run(state, runtime, "fuse_modalities", {})}


def localize(state: InvestigationState, runtime: Rt) -> dict[str, Any]:
    """T2's ranking, corroborated by the call-chain analytics (:mod:`agent.corroborate`)."""
    ranking = _run(state, runtime, "localize_root_cause", {})
    traced = _run(state, runtime, "analyze_traces", {"top_k": 3})
    if ranking is not None and traced is not None:
        ranking, note = corroborate(ranking, analysis_for(runtime.context.ctx, WindowInput()))
        if note:
            _note(state, "corroborate", "T2 ranking vs where anomalous traces start", note)
    alert = state.get("alert")
    if alert is not None:
        ranking, note = confirm_with_alert(ranking, alert)
        _note(state, "live_triage", "T2 ranking vs the live alert's trace triage", note)
    return {**_touched(state), "ranking": ranking}


def _note(state: InvestigationState, tool: str, query: str, summary: str) -> None:
    state["evidence"].append(
        EvidenceItem(id=f"E{len(state['evidence']) + 1}", tool=tool, query=query, summary=summary)
    )


def classify(state: InvestigationState, runtime: Rt) -> dict[str, Any]:
    return {**_touched(state), "fault": _run(state, runtime, "classify_fault", {})}


def match(state: InvestigationState, runtime: Rt) -> dict[str, Any]:
    found = _run(state, runtime, "match_fingerprint", {})
    names = [
        f"{m.fingerprint_id}: known {quote(m.root_cause, 80)} "
        f"(score {m.score:.2f}, fix {m.strategy or 'none recorded'})"
        for m in (found.matches if found is not None else [])
    ]
    return {**_touched(state), "fingerprints": names}


# What the rule engine's severity condition sees: the priority the report will carry.
SEVERITY_OF_PRIORITY = {"P0": "critical", "P1": "critical", "P2": "warn", "P3": "info"}


def _plan_metrics(impact: Impact, service: str) -> dict[str, float]:
    """Measured values strategy thresholds compare against: users' and the root cause's."""
    out = {"error_rate": impact.error_rate}
    if impact.p95_ms:
        out["p95_ms"] = impact.p95_ms
    own = next((s for s in impact.services if s.service == service), None)
    if own is not None:
        out["service_error_rate"] = own.error_rate
        if own.p95_ms:
            out["service_p95_ms"] = own.p95_ms
        if own.latency_factor:
            out["service_latency_factor"] = own.latency_factor
    return out


SEVERITY_RANK = {"info": 0, "warn": 1, "critical": 2}


def _alert_observations(alert: TraceAlert, args: dict[str, Any], service: str) -> dict[str, Any]:
    """What the live alert observed in the window, for the rule engine: its error codes, the
    higher of the two severities, the last good task, and (when the triage's suspect is the
    reported root cause) its fault type, which is in the system's published vocabulary where
    T3's labels are those of the data it was trained on."""
    codes = [*alert.error_codes, *(c for c in args["error_codes"] if c not in alert.error_codes)]
    severity = max(args["severity"], alert.severity, key=SEVERITY_RANK.__getitem__)
    out = {
        "error_codes": codes,
        "severity": severity,
        "last_good_task_id": alert.last_good_task_id,
        "task_ids": alert.task_ids,
        "trace_ids": [*alert.trace_ids, *args["trace_ids"]][:5],
        "evidence": [*args["evidence"], *alert.evidence()],
    }
    if alert.suspect == service:
        out["fault_type"] = alert.fault_type
    return out


def plan(state: InvestigationState, runtime: Rt) -> dict[str, Any]:
    ranking, fault, impact = state.get("ranking"), state.get("fault"), state["impact"]
    if ranking is None or not ranking.ranking:
        state["not_checked"].append("no root cause ranked: no repair planned")
        return {**_touched(state), "plan": None}
    top = ranking.ranking[0]
    args = {
        "service": top.entity,
        "fault_type": fault.fault_type if fault else "unknown",
        "error_codes": impact.error_codes,
        "metrics": _plan_metrics(impact, top.entity),
        "severity": SEVERITY_OF_PRIORITY[assign_priority(impact).level],
        "trace_ids": impact.trace_ids,
        "incident_id": runtime.context.ctx.incident_key(),
        "evidence": [f"fingerprint: {f}" for f in state.get("fingerprints", [])],
    }
    alert = state.get("alert")
    if alert is not None:
        args.update(_alert_observations(alert, args, top.entity))
        runtime.context.ctx.remember(LIVE_ALERT, alert)  # evidence plan_repair may count
    planned = _run(state, runtime, "plan_repair", args)
    view = None
    if planned is not None:
        view = {**planned.model_dump(mode="json"), "plan": planned.plan}
    if planned is not None and planned.plan_id:
        dry = _run(state, runtime, "execute_repair", {"plan_id": planned.plan_id, "dry_run": True})
        view["dry_run_result"] = dry.model_dump(mode="json") if dry is not None else None
        if any(e.tool == "scope" for e in state["evidence"]):
            # the ranking studied a scope the model's text chose (agent.scope_choice): what it
            # found is shown, but a model's words must never be what makes a repair act
            view["executable"] = False
            view["held_back"] = [*view["held_back"], "the LLM chose the scope of the analysis"]
    return {**_touched(state), "plan": view}


def report(state: InvestigationState, runtime: Rt, config: RunnableConfig) -> dict[str, Any]:
    d = runtime.context
    rep, narrative = build_report(state, d.llm, d.llm_settings, state.get("narrative"))
    d.ctx.file_report(config["configurable"]["thread_id"], rep)
    return {**_touched(state), "report": rep, "narrative": narrative}


def after_report(state: InvestigationState) -> str:
    p = state.get("plan")
    # a plan held back for weak evidence is shown, never put to a person to approve
    wants = state.get("request_repair") and p is not None and p.get("plan_id") and p["executable"]
    return "approve" if wants and state.get("approval") is None else "end"


def approve(state: InvestigationState, runtime: Rt) -> dict[str, Any]:
    """Pause for a human: the value passed to ``Command(resume=...)`` is the decision."""
    p = state["plan"]
    answer = interrupt(
        {
            "kind": "repair_approval",
            "plan_id": p["plan_id"],
            "strategy": p["strategy"],
            "actions": p["actions"],
            "dry_run": state.get("dry_run", True),
            "question": "Approve this repair plan?",
        }
    )
    if isinstance(answer, dict):
        decision = Approval(
            approved=bool(answer.get("approved")),
            by=answer.get("by"),
            reason=answer.get("reason"),
            at=datetime.now(UTC),
        )
    else:
        decision = Approval(approved=bool(answer), at=datetime.now(UTC))
    return {"approval": decision}


def after_approval(state: InvestigationState) -> str:
    a = state.get("approval")
    return "execute" if a is not None and a.approved else "final"


def _register_plan(state: InvestigationState, runtime: Rt) -> str:
    """After a restart the context is new: give it back the plan the state recorded."""
    p = state["plan"]
    runtime.context.ctx.remember(f"plan:{p['plan_id']}", p["plan"])
    return p["plan_id"]


def execute(state: InvestigationState, runtime: Rt) -> dict[str, Any]:
    plan_id = _register_plan(state, runtime)
    a = state["approval"]
    # the decision came from the front that authenticated the person (Investigator.decide)
    with approving(RepairApproval(approved=a.approved, by=a.by or "", reason=a.reason or "")):
        result = _run(
            state,
            runtime,
            "execute_repair",
            {"plan_id": plan_id, "dry_run": state.get("dry_run", True)},
        )
    return {**_touched(state), "execution": result.model_dump(mode="json") if result else None}


def verify(state: InvestigationState, runtime: Rt) -> dict[str, Any]:
    """The repair engine verifies after acting; record what it found."""
    ex = state.get("execution")
    if ex is None or ex.get("dry_run"):
        return {"verification": {"ok": True, "detail": "dry run: nothing to verify"}}
    ok = ex.get("status") == "success" and ex.get("verified") is not False
    return {"verification": {"ok": ok, "detail": ex.get("verification") or ex.get("detail", "")}}


def after_verify(state: InvestigationState) -> str:
    v = state.get("verification") or {}
    return "final" if v.get("ok") else "rollback"


def rollback(state: InvestigationState, runtime: Rt) -> dict[str, Any]:
    """The repair engine rolls back a failed repair itself; record it or escalate."""
    ex = state.get("execution") or {}
    if ex.get("rolled_back"):
        return {"rolled_back": True}
    if ex.get("executed"):
        state["not_checked"].append(
            f"repair {ex.get('plan_id')} failed and was NOT rolled back automatically: "
            "roll back by hand"
        )
    return {"rolled_back": False, "not_checked": state["not_checked"]}
