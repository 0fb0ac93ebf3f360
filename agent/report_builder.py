"""Building the report from the state: structured sections by rule, narrative by LLM or template.

Why split this way: every section a decision depends on (root cause, fault type, impact,
priority, remediation) is computed from tool results, so it is the same with or without a model.
The LLM only writes the explanatory summary (the TAMO SRE prompt); without a key a template
writes it and the report says it was produced without an LLM.
"""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING, Any

from langchain_core.messages import HumanMessage, SystemMessage

from agent.priority import assign_priority
from agent.prompts import render
from agent.report_model import NO_LLM, Analysis, Hypothesis, Impact, Remediation, Report
from agent.state import InvestigationState
from agent.tokens import count
from tools.core.settings import LLMSettings
from tools.learned.results import RootCauseRanking
from tools.telemetry.untrusted import model_json, quote

if TYPE_CHECKING:  # the OpenAI client loads only when an LLM is configured
    from langchain_openai import ChatOpenAI


def _causal_chain(state: InvestigationState) -> list[str]:
    """Root cause first, then the services its strongest causal edges lead to."""
    ranking = state.get("ranking")
    if ranking is None or not ranking.ranking:
        return []
    chain = [ranking.ranking[0].entity]
    edges = sorted(ranking.causal_edges, key=lambda e: -e.weight)
    while len(chain) < 4:
        nxt = next(
            (e.effect for e in edges if e.cause == chain[-1] and e.effect not in chain), None
        )
        if nxt is None:
            break
        chain.append(nxt)
    return chain


def _remediation(state: InvestigationState) -> Remediation:
    p = state.get("plan")
    if p is None or not p.get("plan_id"):
        reasons = p.get("reasons", []) if p else []
        return Remediation(status="none-matched", reasons=reasons)
    dry = p.get("dry_run_result") or {}
    ex = state.get("execution")
    approval = state.get("approval")
    if not p.get("executable"):
        status = "held back (plan and report only): " + "; ".join(p.get("held_back", []))
    elif ex is not None:
        status = ex["status"]
    elif approval is not None and not approval.approved:
        status = f"denied by {approval.by or 'approver'}"
    elif state.get("request_repair"):
        status = "awaiting-approval"
    else:
        status = "proposed (approval required to execute)"
    results = [ex["detail"]] if ex else []
    verification = None
    v = state.get("verification")
    if v is not None:
        verification = ("passed: " if v.get("ok") else "failed: ") + (v.get("detail") or "")
    if state.get("rolled_back"):
        results.append("rolled back")
    return Remediation(
        status=status,
        strategy=p["strategy"],
        description=p.get("description", ""),
        reasons=p.get("reasons", []),
        actions=p["actions"],
        dry_run=dry.get("detail"),
        results=results,
        verification=verification,
        rollback_plan=p.get("rollback", []),
    )


def _template_summary(a: Analysis, impact: Impact, level: str) -> str:
    if a.root_cause is None:
        return "No root cause could be ranked from the available telemetry."
    chain = (
        f" Causal chain: {' → '.join(quote(x, 60) for x in a.causal_chain)}."
        if len(a.causal_chain) > 1
        else ""
    )
    fault = (
        f"the fault type is uncertain (best guess {a.fault_type}, {a.fault_probability:.0%})"
        if a.fault_low_confidence
        else f"the fault looks like {a.fault_type} ({a.fault_probability:.0%})"
    )
    p = a.root_cause_confidence
    return (
        f"{quote(a.root_cause, 60)} is the most likely root cause "
        f"({'confidence not calibrated' if p is None else f'{p:.0%}'}); "
        f"{fault}.{chain} {impact.requests} requests in the window, error rate "
        f"{impact.error_rate:.1%}; priority {level}."
    )


def _impact_view(i: Impact) -> dict[str, Any]:
    """The impact for the model: users' figures and the affected services (names are data)."""
    users: dict[str, Any] = {"error_rate": round(i.error_rate, 4), "p95_ms": i.p95_ms}
    if i.baseline is not None:
        users["normal"] = {"error_rate": i.baseline_error_rate or 0, "p95_ms": i.baseline_p95_ms}
    return {"users": users, "affected": {s.service: s.why for s in i.services if s.affected}}


def _llm_summary(
    llm: ChatOpenAI, state: InvestigationState, a: Analysis, rep: Report
) -> tuple[str | None, int, int]:
    # One JSON document: every value (service names, evidence with its quoted telemetry) is a
    # hardened JSON string that no content can close.
    context = model_json(
        {
            "impact": _impact_view(rep.impact),
            "priority": {"level": rep.priority.level, "rule": rep.priority.rule},
            "remediation": {
                "strategy": rep.remediation.strategy,
                "actions": rep.remediation.actions,
            },
            "alternatives": [[h.entity, h.confidence] for h in rep.alternatives],
            "evidence": [e.summary for e in a.evidence[:5]],
            "flagged_telemetry": [f.model_dump() for f in rep.flagged[:3]],
        }
    )
    prompt = render(
        "report",
        root_cause=model_json({"service": a.root_cause, "confidence": a.root_cause_confidence}),
        fault_type=model_json({"fault_type": a.fault_type, "probability": a.fault_probability}),
        context=context,
    )
    messages = [SystemMessage(render("sre_system")), HumanMessage(prompt)]
    ai = llm.invoke(messages)
    meta = ai.usage_metadata
    prompt_tokens = meta["input_tokens"] if meta else count(render("sre_system") + prompt)
    return str(ai.content).strip(), prompt_tokens, meta["output_tokens"] if meta else 0


_VERDICT = re.compile(r"^\s*`?VERDICT:\s*(?P<who>[^`\n]+?)`?\s*$", re.MULTILINE)


def split_verdict(text: str) -> tuple[str, str | None]:
    """(the narrative without its verdict line, the service the model named)."""
    found = list(_VERDICT.finditer(text))
    if not found:
        return text, None
    who = found[-1].group("who").strip().strip("<>*\"' ")
    return _VERDICT.sub("", text).strip(), who or None


def _judgement(a: Analysis, ranking: RootCauseRanking | None, who: str) -> None:
    """Keep the model's verdict; where it differs from the ranking, say both with evidence."""
    a.llm_root_cause = who
    if a.root_cause is None or who == a.root_cause:
        return
    ranked = {r.entity: r for r in (ranking.ranking if ranking else [])}
    top = ranked.get(a.root_cause)

    def why(entity: str) -> str:
        r = ranked.get(entity)
        if r is None:
            return f"{entity} is not in the ranking's top {len(ranked)}"
        moved = "; ".join(f"{e.channel} {e.detail}".strip() for e in r.evidence[:2])
        return f"{entity} score {r.score:.2f}" + (f" ({moved})" if moved else "")

    a.disagreement = (
        f"The LLM judges {who} the root cause; the ranking puts {a.root_cause} first. "
        f"Ranking: {why(a.root_cause) if top else a.root_cause}; {why(who)}. "
        "The plan follows the ranking; weigh both."
    )


def build_report(
    state: InvestigationState,
    llm: ChatOpenAI | None,
    settings: LLMSettings,
    narrative: str | None,
) -> tuple[Report, str | None]:
    """The report for the current state; the LLM narrative is written once and then reused."""
    incident = state["incident"]
    ranking, fault, fusion = state.get("ranking"), state.get("fault"), state.get("fusion")
    top = ranking.ranking[0] if ranking and ranking.ranking else None
    not_checked = list(state["not_checked"])
    analysis = Analysis(
        summary="",
        root_cause=top.entity if top else None,
        # the calibrated probability, never the relative score (the top is always 1.0)
        root_cause_confidence=ranking.confidence if top else None,
        fault_type=fault.fault_type if fault else "unknown",
        fault_probability=round(fault.probability, 4) if fault else 0.0,
        fault_low_confidence=fault.low_confidence if fault else True,
        causal_chain=_causal_chain(state),
        evidence=state["evidence"],
        known_incidents=state.get("fingerprints") or [],
    )
    impact = state.get("impact") or Impact()
    alternatives = [
        Hypothesis(
            entity=r.entity,
            confidence=round(r.score, 4),
            why="; ".join(f"{e.channel} {e.detail}".strip() for e in r.evidence[:2]),
        )
        for r in (ranking.ranking[1:4] if ranking else [])
    ]
    if fault:
        alternatives += [
            Hypothesis(entity=f"fault type {k}", confidence=round(v, 4))
            for k, v in list(fault.alternatives.items())[:2]
        ]
    modalities = [
        str(m) for m in (fusion.modalities if fusion else ranking.modalities if ranking else [])
    ]
    for m in ("metrics", "traces", "logs"):
        if m not in modalities:
            not_checked.append(f"{m}: no data in the window")
    usage = state["usage"]
    rep = Report(
        title=f"Incident {incident.window.start:%Y-%m-%d %H:%M} UTC"
        + (
            f": {quote(analysis.root_cause, 60)} {analysis.fault_type}"
            if analysis.root_cause
            else ""
        ),
        window=incident.window,
        services=incident.services,
        produced_with=NO_LLM if llm is None else f"LLM {settings.model} + TAMO learned tools",
        analysis=analysis,
        impact=impact,
        priority=assign_priority(impact),
        remediation=_remediation(state),
        alternatives=alternatives,
        modalities_used=modalities,
        not_checked=not_checked,
        usage=usage,
    )
    if narrative is None and llm is not None:
        from openai import APIError

        try:
            narrative, p_tok, c_tok = _llm_summary(llm, state, analysis, rep)
            usage.llm_calls += 1
            usage.prompt_tokens += p_tok
            usage.completion_tokens += c_tok
        except APIError as exc:
            rep.not_checked.append(f"LLM summary failed ({type(exc).__name__}); template used")
            rep.produced_with = f"{NO_LLM}; LLM {settings.model} gathered evidence"
    if narrative:
        text, who = split_verdict(narrative)
        rep.analysis.summary = text
        if who:
            _judgement(rep.analysis, ranking, who)
    else:
        rep.analysis.summary = _template_summary(analysis, impact, rep.priority.level)
    usage.seconds = round(time.time() - state["started_at"], 3)
    rep.usage = usage
    return rep, narrative
