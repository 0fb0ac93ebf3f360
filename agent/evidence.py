"""Running a tool for the agent: validate, call, count, and file the result as evidence.

Why one funnel: every tool call the agent makes — chosen by the LLM or by the deterministic
planner — passes here, so the tool-call counter, the evidence list (each item with its query and
a link) and the compact text the model sees are produced the same way in both modes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from agent.report_model import EvidenceItem, Usage
from agent.tokens import count
from tools.telemetry.untrusted import clip, model_json, quote
from tools.toolbox import TOOLBOX
from tools.toolbox.context import ToolContext

MAX_RESULT_TOKENS = 220
# Fields a person needs in the report but the model does not need to reason (links, echoes of
# its own query, the window it already knows): dropped from what the model reads.
_NOT_FOR_MODEL = {"window", "link", "query", "truncated"}


# Tools whose results become evidence items of the report (the others feed later steps).
SUMMARISED = frozenset(
    {
        "query_traces",
        "search_logs",
        "query_promql",
        "fuse_modalities",
        "localize_root_cause",
        "classify_fault",
        "analyze_traces",
    }
)


@dataclass
class ToolRun:
    name: str
    args: dict[str, Any]
    result: BaseModel | None
    error: str | None
    evidence: EvidenceItem | None


def summarise(name: str, r: Any) -> tuple[str, str, str | None]:
    """(one-line summary, source query, link) for the evidence list of the report.

    Prose built from fixed words and numbers; every telemetry-derived string in it (service,
    operation, log example, metric labels, cluster reason) is a :func:`quote` d literal.
    """
    if name == "query_traces":
        worst = ", ".join(
            f"{quote(s.service, 60)} {s.errors}/{s.spans} err p95 {s.p95_ms}ms"
            for s in r.by_service[:3]
        )
        link = r.slowest_traces[0].link if r.slowest_traces else None
        return (
            f"{r.spans} spans in {r.traces} traces, error rate {r.error_rate:.1%}, "
            f"p95 {r.p95_ms} ms; worst: {worst or 'none'}",
            r.query,
            link,
        )
    if name == "search_logs":
        top = r.patterns[0] if r.patterns else None
        sev = ", ".join(f"{quote(k, 20)} {v}" for k, v in r.by_severity.items())
        text = f"{r.lines} log lines; by severity {sev or 'none'}"
        if top:
            text += (
                f"; top pattern ×{top.count} from "
                f"{', '.join(quote(x, 60) for x in top.services)}: {quote(top.example)}"
            )
        if r.flagged:
            text += f"; {len(r.flagged)} line(s) flagged as suspicious data (see Flagged)"
        return text, r.query, top.link if top else None
    if name == "query_promql":
        top = r.top[0] if r.top else None
        text = f"{r.series} series of {quote(r.query, 120)}"
        if top:
            text += (
                f"; most changed {quote(top.labels, 100)} {top.first}→{top.last} "
                f"({top.change_pct}%)"
            )
        return text, r.query, r.link
    if name == "localize_root_cause":
        ranks = ", ".join(f"{quote(e.entity, 60)} {e.score:.2f}" for e in r.ranking[:3])
        return f"T2 ranking: {ranks or 'empty'}", "localize_root_cause(window)", None
    if name == "classify_fault":
        return (
            f"T3 fault type {quote(r.fault_type, 40)} p={r.probability:.2f}"
            + (" (low confidence)" if r.low_confidence else ""),
            "classify_fault(window)",
            None,
        )
    if name == "fuse_modalities":
        top = ", ".join(quote(e.entity, 60) for e in r.top_anomalies[:3])
        return (
            f"T1 fused {r.entities} entities × {len(r.channels)} channels over "
            f"{', '.join(str(m) for m in r.modalities)}; most anomalous: {top or 'none'}",
            "fuse_modalities(window)",
            None,
        )
    if name == "analyze_traces":
        top = r.clusters[0] if r.clusters else None
        text = (
            f"{r.anomalous}/{r.traces} traces anomalous vs {quote(r.baseline, 40)}, "
            f"{len(r.clusters)} clusters"
        )
        if top:
            text += f"; largest ×{top.size} at {quote(top.root_span, 80)}: {quote(top.reason)}"
            if top.known_root_cause:
                text += f" (KNOWN: {quote(top.known_root_cause, 80)})"
        link = top.sample_traces[0] if top and top.sample_traces else None
        return text, "analyze_traces(window)", link
    return model_json(r.model_dump(mode="json", exclude_none=True))[:200], name, None


def _for_model(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _for_model(v) for k, v in value.items() if k not in _NOT_FOR_MODEL and v != []}
    if isinstance(value, list):
        return [_for_model(v) for v in value]
    return value


def _shrunk(value: Any, items: int, chars: int) -> Any:
    """``value`` with every list cut to ``items`` and every string to ``chars`` (valid data)."""
    if isinstance(value, dict):
        return {k: _shrunk(v, items, chars) for k, v in value.items()}
    if isinstance(value, list):
        return [_shrunk(v, items, chars) for v in value[:items]]
    if isinstance(value, str):
        return clip(value, chars)
    return value


_SHRINK_STEPS = [(20, 160), (5, 160), (5, 80), (3, 60), (2, 40), (1, 24), (0, 16)]


def model_view(result: BaseModel) -> str:
    """The result as the LLM sees it: hardened compact JSON of at most ``MAX_RESULT_TOKENS``.

    Too long, it is shrunk as *data* — lists cut, strings clipped, ``cut`` set — never by
    cutting the JSON text, which could end in the middle of a string.
    """
    data = _for_model(result.model_dump(mode="json", exclude_none=True))
    text = model_json(data)
    if count(text) <= MAX_RESULT_TOKENS:
        return text
    for items, chars in _SHRINK_STEPS:
        text = model_json({**_shrunk(data, items, chars), "cut": "narrow the query for more"})
        if count(text) <= MAX_RESULT_TOKENS:
            break
    return text


def run_tool(
    ctx: ToolContext,
    usage: Usage,
    evidence: list[EvidenceItem],
    name: str,
    args: dict[str, Any],
    on_event: Callable[[dict[str, Any]], None] | None = None,
) -> ToolRun:
    """Run tool ``name`` with ``args``; errors become a result the caller can show, not a crash."""
    spec = TOOLBOX[name]
    usage.tool_calls += 1
    if on_event:
        on_event({"type": "tool_call", "tool": name, "args": args})
    try:
        result = spec(ctx, **args)
    except Exception as exc:  # a tool error is evidence too: the model may retry differently
        msg = f"{type(exc).__name__}: {exc}"
        if on_event:
            on_event({"type": "tool_error", "tool": name, "error": msg})
        return ToolRun(name, args, None, msg, None)
    item = None
    if name in SUMMARISED:
        text, query, link = summarise(name, result)
        item = EvidenceItem(
            id=f"E{len(evidence) + 1}",
            tool=name,
            query=query,
            link=link,
            summary=text,
            flagged=list(getattr(result, "flagged", [])),
        )
        evidence.append(item)
    if on_event:
        summary = item.summary if item else ""
        on_event({"type": "tool_result", "tool": name, "summary": summary, "result": result})
    return ToolRun(name, args, result, None, item)
