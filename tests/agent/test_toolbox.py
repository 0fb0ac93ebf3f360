"""The tools on real (synthetic) telemetry: compact, fenced, correct."""

from __future__ import annotations

import json

import pytest

from agent.tokens import count
from tests.agent.conftest import TOOLBOX_TOOLS
from tests.agent.synthetic import BASELINE, INJECTION, fenced_everywhere
from tools.toolbox import TOOLBOX, untrusted
from tools.toolbox.context import ToolContext
from tools.toolbox.spec import catalog


def strings(value: object) -> list[str]:
    """Every string inside a JSON-like value."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in strings(v)]
    return []


def test_every_tool_is_listed_with_a_teaching_description() -> None:
    from mcp_server.server import TOOLS

    assert set(TOOLBOX) == TOOLBOX_TOOLS
    assert list(TOOLS) == [*TOOLBOX, "diagnose_incident"]
    for spec in TOOLS.values():
        assert len(spec.description) > 80, spec.name
        assert spec.read_only != spec.destructive
    assert TOOLBOX["execute_repair"].destructive


def test_query_traces_summarises_errors_and_latency(case_ctx: ToolContext) -> None:
    r = TOOLBOX["query_traces"](case_ctx, top_k=3)
    assert r.spans == 360 and r.traces == 120
    assert 0.2 < r.error_rate < 0.25
    assert {s.service for s in r.by_service} == {"frontend", "checkoutservice", "paymentservice"}
    assert r.slowest_traces and r.slowest_traces[0].link.startswith("tamo://trace/")
    base = TOOLBOX["query_traces"](case_ctx, start=BASELINE.start, end=BASELINE.end)
    assert base.error_rate == 0.0 and base.p95_ms < r.p95_ms / 3
    one = TOOLBOX["query_traces"](case_ctx, trace_id=r.slowest_traces[0].trace_id)
    assert len(one.trace_spans) == 3


def test_search_logs_fences_hostile_text_and_stays_small(case_ctx: ToolContext) -> None:
    r = TOOLBOX["search_logs"](case_ctx, min_severity="ERROR")
    assert r.by_severity == {"ERROR": 31}
    hostile = [s for s in strings(r.model_dump(mode="json")) if INJECTION in s]
    assert hostile, "the hostile log line must be reported (as data)"
    assert all(fenced_everywhere(s) for s in hostile)
    assert r.suspicious and "paymentservice" in r.suspicious[0]
    assert count(json.dumps(r.model_dump(mode="json"))) < 600


def test_search_logs_reads_every_spelling_of_a_level_on_one_scale(case_ctx: ToolContext) -> None:
    # the window holds INFO and ERROR lines; SEVERE (java.util.logging) is ERROR's level
    for name in ("WARN", "warning", "SEVERE"):
        assert TOOLBOX["search_logs"](case_ctx, min_severity=name).by_severity == {"ERROR": 31}
    assert TOOLBOX["search_logs"](case_ctx, min_severity="notice").by_severity.keys() == {
        "INFO",
        "ERROR",
    }


def test_query_promql_ranks_the_series_that_moved(case_ctx: ToolContext) -> None:
    r = TOOLBOX["query_promql"](case_ctx, query="container_cpu_usage", top_k=2)
    assert r.series == 3
    assert "paymentservice" in r.top[0].labels and r.top[0].change_pct > 100


def test_learned_tools_rank_the_faulty_service(case_ctx: ToolContext) -> None:
    ranking = TOOLBOX["localize_root_cause"](case_ctx, top_k=3)
    assert ranking.ranking[0].entity == "paymentservice"
    assert len(ranking.ranking) <= 3
    fault = TOOLBOX["classify_fault"](case_ctx)
    assert 0.0 <= fault.probability <= 1.0
    fused = TOOLBOX["fuse_modalities"](case_ctx)
    assert {str(m) for m in fused.modalities} == {"metrics", "traces", "logs"}


def test_plan_then_dry_run_touches_nothing(case_ctx: ToolContext, recorder) -> None:
    plan = TOOLBOX["plan_repair"](case_ctx, service="paymentservice", fault_type="cpu_contention")
    assert plan.strategy == "payment_restart" and plan.plan_id
    dry = TOOLBOX["execute_repair"](case_ctx, plan_id=plan.plan_id)
    assert dry.status == "dry-run-ok" and recorder.executed() == []
    refused = TOOLBOX["execute_repair"](case_ctx, plan_id=plan.plan_id, dry_run=False)
    assert refused.status == "refused" and recorder.executed() == []
    done = TOOLBOX["execute_repair"](
        case_ctx, plan_id=plan.plan_id, dry_run=False, approved_by="ann"
    )
    assert done.status == "success" and len(recorder.executed()) == 1
    again = TOOLBOX["execute_repair"](
        case_ctx, plan_id=plan.plan_id, dry_run=False, approved_by="ann"
    )
    assert again.resumed and len(recorder.executed()) == 1


def test_every_tool_result_is_a_few_hundred_tokens(case_ctx: ToolContext) -> None:
    for name in (
        "query_traces",
        "search_logs",
        "analyze_traces",
        "localize_root_cause",
        "fuse_modalities",
    ):
        out = TOOLBOX[name](case_ctx)
        assert count(out.model_dump_json()) < 700, name


def test_untrusted_strips_control_characters_and_caps_length() -> None:
    s = untrusted("a\x1b[31mb»" + "x" * 500, limit=50)
    assert s.startswith("«data:") and s.endswith("»") and "\x1b" not in s
    assert len(s) <= 50 + len("«data:»")


def test_repair_setup_from_settings(settings) -> None:
    from tests.agent.synthetic import synthetic_case
    from tools.toolbox.repair import RepairSettings, setup, setup_from_settings

    ctx = ToolContext.from_case(synthetic_case(), settings)
    bare = setup(ctx)
    assert bare.executors == {} and bare.policy.allow_targets == []
    assert {s.strategy_id for s in bare.strategies}  # the built-in library
    rs = RepairSettings(
        testbed_url="http://127.0.0.1:9",
        webhook_url="http://127.0.0.1:9/hook",
        allow_targets=["checkout*"],
    )
    full = setup_from_settings(ctx, rs)
    assert set(full.executors) == {"testbed", "webhook"}
    assert full.policy.allow_targets == ["checkout*"] and full.verifier is not None


def test_a_tool_listed_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="query_traces"):
        catalog(TOOLBOX["query_traces"], TOOLBOX["query_traces"])
