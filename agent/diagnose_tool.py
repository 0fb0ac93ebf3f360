"""``diagnose_incident``: the whole investigation as one tool (listed beside the toolbox's tools).

Why it lives in ``agent/``: it runs the LangGraph investigation, and the toolbox (below the agent)
must not import the agent. It is described with the same :func:`~tools.toolbox.spec.tool`, and
the MCP server lists it beside the toolbox's tools, so it is exposed from this one definition.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from agent.graph import memory_checkpointer
from agent.report_model import Impact
from agent.run import Investigator
from tools.core.errors import TamoError
from tools.telemetry.model import Incident
from tools.telemetry.topology import edges_of
from tools.telemetry.untrusted import FlaggedText, clip, quote
from tools.toolbox.context import ToolContext
from tools.toolbox.spec import ScopeInput, tool


class DiagnoseInput(ScopeInput):
    question: str | None = Field(None, description="the alert text or question")
    trace_id: str | None = None
    edges: list[tuple[str, str]] | None = Field(
        None, description="service graph [[caller, callee], ...] if not ingested"
    )


class DiagnoseResult(BaseModel):
    investigation_id: str
    title: str
    priority: str
    impact: list[str] = Field(
        default_factory=list, description="users, then affected services: now vs normal"
    )
    root_cause: str | None
    confidence: float | None
    fault_type: str
    fault_probability: float
    summary: str
    evidence: list[str]
    remediation: str
    plan_id: str | None
    alternatives: list[str]
    flagged: list[FlaggedText]
    not_checked: list[str]
    tool_calls: int
    prompt_tokens: int


def impact_lines(i: Impact, k: int = 4) -> list[str]:
    """Users' figures, then the affected services (now vs normal), one line each."""
    base = "" if i.baseline is None else f" vs {i.baseline}"
    out = [f"users ({', '.join(i.entry_points) or '-'}): {i.error_rate:.1%} errors{base}"]
    for s in [s for s in i.services if s.affected][:k]:
        factor = f", p50 x{s.latency_factor:.2f}" if s.latency_factor else ""
        out.append(
            f"{s.service}: errors {s.baseline_error_rate or 0:.1%} -> {s.error_rate:.1%}"
            f"{factor} ({s.baseline_p50_ms} -> {s.p50_ms} ms), {s.rate_per_s:.1f} req/s"
        )
    return out


def investigator_of(ctx: ToolContext) -> Investigator:
    # In memory: an MCP/tool caller wants the report now; resumable runs use `tamo diagnose`.
    return ctx.cached("investigator", lambda: Investigator(ctx, checkpointer=memory_checkpointer()))


@tool(read_only=True, idempotent=True)
def diagnose_incident(inp: DiagnoseInput, ctx: ToolContext) -> DiagnoseResult:
    """Run the whole TAMO root-cause pipeline on a window and return a compact report: root cause
    with confidence, fault type, priority P0-P3, evidence with links, the matched repair plan
    (dry-run only, nothing executed) and alternatives. ~1-2 s offline. CALL THIS FIRST; drill
    down with query_traces/search_logs/query_promql only where it is unsure."""
    if inp.edges:  # this investigation's service graph (the store's stays as it is)
        ctx.remember("topology", edges_of(inp.edges, "diagnose_incident.edges"))
    base = ctx.incident
    window = ctx.window(inp.start, inp.end)
    same = base is not None and base.window == window
    incident = Incident(
        window=window,
        services=inp.services or [],
        trace_id=inp.trace_id,
        question=inp.question,
        baseline=base.baseline if same and base else None,
        system=base.system if same and base else None,
        task_id=base.task_id if same and base else None,
    )
    inv = investigator_of(ctx).diagnose(incident)
    r = inv.report
    if r is None:  # cannot happen without an approval request; never hand back half a result
        raise TamoError(f"investigation {inv.thread_id} ended without a report")
    plan = inv.state.get("plan") or {}
    rem = r.remediation
    return DiagnoseResult(
        investigation_id=inv.thread_id,
        title=clip(r.title, 120),
        priority=f"{r.priority.level} ({r.priority.rule})",
        impact=impact_lines(r.impact),
        root_cause=r.analysis.root_cause,
        confidence=r.analysis.root_cause_confidence,
        fault_type=r.analysis.fault_type,
        fault_probability=r.analysis.fault_probability,
        summary=r.analysis.summary[:600],
        # whole summaries: cutting one could split a quoted literal in it
        evidence=[f"{e.id} {e.summary} {e.link or ''}".strip() for e in r.analysis.evidence[:5]],
        remediation=f"{rem.status}: {rem.strategy or '-'} {'; '.join(rem.actions[:5])}",
        plan_id=plan.get("plan_id"),
        alternatives=[f"{quote(h.entity, 60)} {h.confidence:.2f}" for h in r.alternatives],
        flagged=r.flagged[:5],
        not_checked=r.not_checked[:5],
        tool_calls=r.usage.tool_calls,
        prompt_tokens=r.usage.prompt_tokens,
    )
