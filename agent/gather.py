"""Evidence gathering: the LLM chooses queries within a budget, or a fixed plan runs without one.

Why a budget on both calls and tokens: HolmesGPT-style loops spend tens of thousands of tokens
re-reading tool output. Here the model sees only compact summaries, may make at most
``max_tool_calls`` calls, and the loop stops early when the next request would push the
diagnosis past ``max_prompt_tokens`` (leaving room for the report call). Only read-only evidence
tools are offered; a call to anything else is refused and counted.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage

from agent import scope_choice
from agent.evidence import model_view, run_tool
from agent.prompts import render
from agent.report_model import EvidenceItem, Usage
from agent.tokens import count_messages
from tools.core.settings import LLMSettings
from tools.telemetry.model import Incident
from tools.telemetry.untrusted import clip, model_json
from tools.toolbox import TOOLBOX
from tools.toolbox.context import ToolContext

if TYPE_CHECKING:  # the OpenAI client loads only when an LLM is configured
    from langchain_openai import ChatOpenAI

EVIDENCE_TOOLS = ("query_traces", "search_logs", "query_promql")
REPORT_RESERVE_TOKENS = 720  # the report call (~670 measured); the loop never eats into it


def scope_text(incident: Incident) -> str:
    """The incident's scope as one JSON document (the alert text and names are data)."""
    scope: dict[str, Any] = {
        "window": [incident.window.start.isoformat(), incident.window.end.isoformat()]
    }
    if incident.services:
        scope["services"] = [clip(s, 80) for s in incident.services]
    if incident.trace_id:
        scope["trace"] = clip(incident.trace_id, 64)
    if incident.system:
        scope["system"] = clip(incident.system, 40)
    if incident.question:
        scope["alert_or_question"] = clip(incident.question, 300)
    return model_json(scope)


def _wire(messages: list[BaseMessage]) -> list[dict[str, Any]]:
    out = []
    for m in messages:
        d: dict[str, Any] = {"role": m.type, "content": m.content}
        if isinstance(m, AIMessage) and m.tool_calls:
            d["tool_calls"] = [{"name": t["name"], "args": t["args"]} for t in m.tool_calls]
        out.append(d)
    return out


def _record_usage(usage: Usage, ai: AIMessage, estimate: int) -> None:
    usage.llm_calls += 1
    meta = ai.usage_metadata
    usage.prompt_tokens += meta["input_tokens"] if meta else estimate
    usage.completion_tokens += meta["output_tokens"] if meta else 0


def _compact_older_rounds(rounds: list[list[tuple[ToolMessage, str]]]) -> None:
    """Results the model has already reasoned over shrink to their one-line summary; only the
    latest round stays in full. This keeps each call's prompt nearly flat instead of growing
    with every result ever returned."""
    for round_ in rounds[:-1]:
        for msg, short in round_:
            msg.content = model_json({"earlier_result_summary": short})


def llm_gather(
    llm: ChatOpenAI,
    settings: LLMSettings,
    ctx: ToolContext,
    incident: Incident,
    usage: Usage,
    evidence: list[EvidenceItem],
    not_checked: list[str],
    on_event: Callable[[dict[str, Any]], None] | None = None,
    known_services: list[str] | None = None,
) -> Incident:
    """The evidence loop: model proposes tool calls (evidence, and once the scope the learned
    tools study), we run them, until done or out of budget. Returns the incident as scoped."""
    from openai import APIError

    tools = [TOOLBOX[n].openai_schema() for n in EVIDENCE_TOOLS]
    model = llm.bind_tools(tools)
    budget = settings.max_tool_calls
    messages: list[BaseMessage] = [
        SystemMessage(render("sre_system")),
        HumanMessage(render("gather", scope=scope_text(incident), budget=budget)),
    ]
    calls = 0
    rounds: list[list[tuple[ToolMessage, str]]] = []
    while True:
        _compact_older_rounds(rounds)
        estimate = count_messages(_wire(messages), tools)
        if usage.prompt_tokens + estimate + REPORT_RESERVE_TOKENS > settings.max_prompt_tokens:
            not_checked.append("evidence loop stopped early: prompt-token budget reached")
            return incident
        try:
            ai = model.invoke(messages)
        except APIError as exc:
            not_checked.append(
                f"LLM evidence loop failed ({type(exc).__name__}); deterministic evidence only"
            )
            return deterministic_gather(ctx, incident, usage, evidence, not_checked, on_event)
        _record_usage(usage, ai, estimate)
        messages.append(ai)
        if on_event and ai.content:
            on_event({"type": "llm", "text": ai.content})
        if not ai.tool_calls:
            return _scoped(incident, str(ai.content), known_services or [], evidence, not_checked)
        rounds.append([])
        for tc in ai.tool_calls:
            short = ""
            if tc["name"] not in EVIDENCE_TOOLS:
                usage.rejected_tool_calls += 1
                reply = (
                    f"refused: {tc['name']} is not available here (read-only evidence tools only)"
                )
            elif calls >= budget:
                usage.rejected_tool_calls += 1
                reply = "refused: tool-call budget exhausted; answer now"
            else:
                calls += 1
                run = run_tool(ctx, usage, evidence, tc["name"], tc["args"], on_event)
                reply = (
                    model_view(run.result)
                    if run.result is not None
                    else model_json({"error": clip(run.error, 300)})
                )
                short = run.evidence.summary if run.evidence else reply
            msg = ToolMessage(reply, tool_call_id=tc["id"])
            messages.append(msg)
            rounds[-1].append((msg, short or reply))
        if calls >= budget:
            not_checked.append(f"evidence loop stopped: tool-call budget of {budget} used")
            return incident


def _scoped(
    incident: Incident,
    answer: str,
    known: list[str],
    evidence: list[EvidenceItem],
    not_checked: list[str],
) -> Incident:
    """The incident narrowed to the scope the model's answer names (:mod:`agent.scope_choice`)."""
    args = scope_choice.parse_scope_line(answer)
    if args is None:
        return incident
    narrowed, said = scope_choice.apply_scope(incident, args, known)
    if narrowed is None:
        not_checked.append(f"LLM scope {said}; the whole scope was analysed")
        return incident
    evidence.append(
        EvidenceItem(
            id=f"E{len(evidence) + 1}",
            tool="scope",
            query=f"SCOPE {args}"[:200],
            summary=f"LLM {said}",
        )
    )
    return narrowed


def deterministic_gather(
    ctx: ToolContext,
    incident: Incident,
    usage: Usage,
    evidence: list[EvidenceItem],
    not_checked: list[str],
    on_event: Callable[[dict[str, Any]], None] | None = None,
) -> Incident:
    """Without an LLM: the caller's scope is kept; evidence is the error spans of the window,
    then warning/error logs of the worst services."""
    run = run_tool(ctx, usage, evidence, "query_traces", {"errors_only": True}, on_event)
    worst = [s.service for s in run.result.by_service[:3]] if run.result is not None else []
    args: dict[str, Any] = {"min_severity": "WARN"}
    if worst:
        args["services"] = worst
    logs = run_tool(ctx, usage, evidence, "search_logs", args, on_event)
    for r in (run, logs):
        if r.error:
            not_checked.append(f"{r.name} failed: {r.error}")
    not_checked.append(
        "metrics were read by the fusion step only; no PromQL drill-down without an LLM"
    )
    return incident
