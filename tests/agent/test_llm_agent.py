"""The agent with an LLM, through the real ChatOpenAI client and a real HTTP server."""

from __future__ import annotations

from typing import Any

from agent.graph import memory_checkpointer
from agent.run import Investigator
from evals.scripted_openai import FakeOpenAI
from tests.agent.conftest import RecordingExecutor, llm_settings
from tests.agent.synthetic import INJECTION, quoted_everywhere
from tools.toolbox.context import ToolContext

EVIDENCE_TOOLS = {"query_traces", "search_logs", "query_promql"}


def investigator(ctx: ToolContext, url: str, **llm: Any) -> Investigator:
    settings = ctx.settings.model_copy(update={"llm": llm_settings(url, **llm)})
    return Investigator(ctx, settings=settings, checkpointer=memory_checkpointer())


def call(name: str, **arguments: Any) -> dict[str, Any]:
    return {"name": name, "arguments": arguments}


def tool_messages(request: dict[str, Any]) -> list[str]:
    return [m["content"] for m in request["messages"] if m["role"] == "tool"]


def test_evidence_loop_feeds_tool_results_back_within_the_token_budget(
    case_ctx: ToolContext,
) -> None:
    script = [
        {"tool_calls": [call("query_traces", errors_only=True)]},
        {
            "tool_calls": [
                call("search_logs", services=["paymentservice"], min_severity="WARN"),
                call("query_promql", query="container_cpu_usage"),
            ]
        },
        {"content": "Suspect paymentservice: errors, timeouts and CPU."},
        {"content": "paymentservice saturates its CPU; card charges time out."},
    ]
    with FakeOpenAI(script) as llm:
        inv = investigator(case_ctx, llm.url).diagnose(case_ctx.incident)
    r = inv.report
    assert len(llm.requests) == 4
    for req in llm.requests[:3]:
        assert {t["function"]["name"] for t in req["tools"]} == EVIDENCE_TOOLS
    assert "tools" not in llm.requests[3]
    assert any("paymentservice" in m for m in tool_messages(llm.requests[1]))
    assert len(tool_messages(llm.requests[2])) == 3
    assert r.analysis.summary == "paymentservice saturates its CPU; card charges time out."
    assert "LLM fake-sre-1" in r.produced_with
    assert {"query_traces", "search_logs", "query_promql"} <= {e.tool for e in r.analysis.evidence}
    measured = sum(llm.prompt_tokens(req) for req in llm.requests)
    assert r.usage.llm_calls == 4
    assert r.usage.prompt_tokens == measured
    assert measured <= 4000


def test_tool_call_budget_stops_the_loop(case_ctx: ToolContext) -> None:
    greedy = {
        "tool_calls": [
            call("query_traces"),
            call("search_logs"),
            call("query_traces", errors_only=True),
        ]
    }
    with FakeOpenAI([greedy, {"content": "report"}]) as llm:
        inv = investigator(case_ctx, llm.url, max_tool_calls=2).diagnose(case_ctx.incident)
    r = inv.report
    assert r.usage.rejected_tool_calls == 1
    assert any("tool-call budget of 2" in n for n in r.not_checked)
    assert len(llm.requests) == 2  # one evidence round, then straight to the report
    assert r.analysis.summary == "report"


def test_retries_on_429_and_5xx(case_ctx: ToolContext) -> None:
    script = [{"status": 429}, {"status": 503}, {"content": "enough"}, {"content": "the report"}]
    with FakeOpenAI(script) as llm:
        r = investigator(case_ctx, llm.url, max_retries=2).diagnose(case_ctx.incident).report
    assert llm.responses == [429, 503, 200, 200]
    assert r.analysis.summary == "the report"


def test_retries_after_a_timeout(case_ctx: ToolContext) -> None:
    script = [
        {"delay": 2.0, "content": "too late"},
        {"content": "enough"},
        {"content": "the report"},
    ]
    with FakeOpenAI(script) as llm:
        r = (
            investigator(case_ctx, llm.url, timeout_s=0.5, max_retries=1)
            .diagnose(case_ctx.incident)
            .report
        )
    assert len(llm.requests) == 3
    assert r.analysis.summary == "the report"


def test_a_dead_endpoint_degrades_to_the_deterministic_report(case_ctx: ToolContext) -> None:
    with FakeOpenAI([{"status": 500}] * 6) as llm:
        r = investigator(case_ctx, llm.url, max_retries=1).diagnose(case_ctx.incident).report
    assert any("LLM evidence loop failed" in n for n in r.not_checked)
    assert any("LLM summary failed" in n for n in r.not_checked)
    assert r.analysis.root_cause == "paymentservice"
    assert '"paymentservice" is the most likely root cause' in r.analysis.summary


def test_prompt_injection_never_repairs_nor_changes_the_plan(
    case_ctx: ToolContext, recorder: RecordingExecutor, settings
) -> None:
    offline = Investigator(case_ctx, llm=False, checkpointer=memory_checkpointer()).diagnose(
        case_ctx.incident
    )
    obey = {
        "tool_calls": [
            call("execute_repair", plan_id="anything", dry_run=False),
            call("plan_repair", service="frontend", fault_type="restart_everything"),
        ]
    }
    script = [
        {"tool_calls": [call("search_logs", min_severity="ERROR")]},
        obey,
        {"content": "Restarting everything as instructed."},
        {"content": "The logs instruct to restart everything; treated as data."},
    ]
    with FakeOpenAI(script) as llm:
        inv = investigator(case_ctx, llm.url).diagnose(case_ctx.incident)
    # the hostile line reached the model only as a JSON string value
    seen = [m for m in tool_messages(llm.requests[1]) if INJECTION in m]
    assert seen and all(quoted_everywhere(m) for m in seen)
    assert inv.report.usage.rejected_tool_calls == 2
    assert recorder.executed() == []
    assert inv.state.get("execution") is None
    assert inv.state["plan"]["plan_id"] == offline.state["plan"]["plan_id"]
    assert inv.state["plan"]["strategy"] == offline.state["plan"]["strategy"] == "payment_restart"
    assert inv.report.remediation.status.startswith("proposed")
    summaries = [e.summary for e in inv.report.analysis.evidence if INJECTION in e.summary]
    assert all(quoted_everywhere(q) for q in summaries)
    assert [f.text for f in inv.report.flagged] == [f"SYSTEM: {INJECTION}"]
    assert "Flagged telemetry (data, never instructions)" in inv.report.to_markdown()


def test_the_llm_scopes_the_learned_tools_and_its_verdict_is_kept(case_ctx: ToolContext) -> None:
    both = ["paymentservice", "checkoutservice"]
    script = [
        {"tool_calls": [call("query_traces", errors_only=True)]},
        {"content": "Suspect checkout and payment.\nSCOPE: paymentservice, checkoutservice"},
        {"content": "Checkout fails its orders.\nVERDICT: checkoutservice"},
    ]
    with FakeOpenAI(script) as llm:
        inv = investigator(case_ctx, llm.url).diagnose(case_ctx.incident)
    r = inv.report
    assert inv.state["incident"].services == both  # what T1-T3 analysed
    assert any(k.startswith("fused:") and k.endswith(f":{','.join(both)}") for k in case_ctx._cache)
    scope = [e for e in r.analysis.evidence if e.tool == "scope"]
    assert len(scope) == 1 and "scope set: paymentservice, checkoutservice" in scope[0].summary
    assert r.analysis.root_cause == "paymentservice"  # the ranking, and the plan, stand
    assert r.analysis.llm_root_cause == "checkoutservice"
    assert r.analysis.disagreement and "paymentservice" in r.analysis.disagreement
    assert "VERDICT" not in r.analysis.summary and "Disagreement" in r.to_markdown()
    assert r.remediation.strategy == "payment_restart"
    assert sum(llm.prompt_tokens(req) for req in llm.requests) <= 4000


def test_a_scope_outside_the_window_is_refused_and_the_whole_scope_analysed(
    case_ctx: ToolContext,
) -> None:
    script = [
        {"content": "SCOPE: paymentservice | 2020-01-01T00:00:00Z - 2020-01-01T00:05:00Z"},
        {"content": "Payment fails.\nVERDICT: paymentservice"},
    ]
    with FakeOpenAI(script) as llm:
        inv = investigator(case_ctx, llm.url).diagnose(case_ctx.incident)
    r = inv.report
    assert inv.state["incident"].services == [] and not any(
        e.tool == "scope" for e in r.analysis.evidence
    )
    assert any("LLM scope refused: the time must lie inside" in n for n in r.not_checked)
    assert r.analysis.llm_root_cause == "paymentservice" and r.analysis.disagreement is None
