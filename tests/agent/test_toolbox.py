"""The tools on real (synthetic) telemetry: compact, typed, correct."""

from __future__ import annotations

import json

import pytest

from agent.tokens import count
from tests.agent.conftest import APPROVERS, TOOLBOX_TOOLS
from tests.agent.synthetic import BASELINE, INJECTION, quoted_everywhere
from tools.repair.identity import approving
from tools.repair.safety import Approval
from tools.toolbox import TOOLBOX
from tools.toolbox.context import ToolContext
from tools.toolbox.repair import setup
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


def test_search_logs_carries_hostile_text_as_flagged_data_and_stays_small(
    case_ctx: ToolContext,
) -> None:
    from agent.evidence import model_view

    r = TOOLBOX["search_logs"](case_ctx, min_severity="ERROR")
    assert r.by_severity == {"ERROR": 31}
    hostile = [s for s in strings(r.model_dump(mode="json")) if INJECTION in s]
    assert hostile, "the hostile log line must be reported (as data)"
    assert all(s.startswith("SYSTEM") for s in hostile)  # a value of its own, not prose
    (flag,) = r.flagged
    assert flag.source == "log of paymentservice" and "instruction-like" in flag.why
    assert "role marker" in flag.why
    assert quoted_everywhere(model_view(r))
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
    assert plan.strategy == "payment_restart" and plan.plan_id and plan.executable
    dry = TOOLBOX["execute_repair"](case_ctx, plan_id=plan.plan_id)
    assert dry.status == "dry-run-ok" and recorder.executed() == []
    refused = TOOLBOX["execute_repair"](case_ctx, plan_id=plan.plan_id, dry_run=False)
    assert refused.status == "refused" and recorder.executed() == []
    assert "no authenticated identity" in refused.detail
    with approving(Approval(approved=True, by="os:mallory")):
        outsider = TOOLBOX["execute_repair"](case_ctx, plan_id=plan.plan_id, dry_run=False)
    assert outsider.status == "refused" and "os:mallory is not in TAMO_REPAIR_APPROVERS" in (
        outsider.detail
    )
    with approving(Approval(approved=True, by=APPROVERS[0])):
        done = TOOLBOX["execute_repair"](case_ctx, plan_id=plan.plan_id, dry_run=False)
        again = TOOLBOX["execute_repair"](case_ctx, plan_id=plan.plan_id, dry_run=False)
    assert done.status == "success" and len(recorder.executed()) == 1
    assert again.resumed and len(recorder.executed()) == 1
    audit = setup(case_ctx).audit
    decisions = [(e.executed_by, e.status) for e in audit.entries(event="approval")]
    assert decisions == [
        ("unauthenticated", "refused"),
        ("os:mallory", "refused"),
        (APPROVERS[0], "approved"),
    ]
    assert audit.verify().ok


def test_execute_repair_has_no_approver_argument() -> None:
    """The approver is the authenticated principal, never an argument a model can write."""
    fields = set(TOOLBOX["execute_repair"].input_model.model_fields)
    assert fields == {"plan_id", "dry_run"}
    schema = TOOLBOX["execute_repair"].openai_schema()["function"]["parameters"]
    assert set(schema["properties"]) == {"plan_id", "dry_run"}


def test_a_plan_without_enough_confidence_is_plan_and_report_only(
    case_ctx: ToolContext, recorder, calibration
) -> None:
    calibration.p = 0.5
    plan = TOOLBOX["plan_repair"](case_ctx, service="paymentservice", fault_type="cpu_contention")
    assert plan.plan_id and not plan.executable
    assert plan.held_back == ["confidence 0.50 below 0.80"]
    with approving(Approval(approved=True, by=APPROVERS[0])):
        out = TOOLBOX["execute_repair"](case_ctx, plan_id=plan.plan_id, dry_run=False)
    assert out.status == "refused" and "evidence too weak" in out.detail
    assert recorder.executed() == []
    # a service that is not the top of the ranking has no confidence at all
    other = TOOLBOX["plan_repair"](case_ctx, service="frontend", fault_type="cpu_contention")
    assert other.plan_id is None or not other.executable


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
    assert full.policy.approvers == []  # nobody may approve until TAMO_REPAIR_APPROVERS names them


def test_allow_lists_read_comma_separated_from_the_environment(settings, monkeypatch) -> None:
    from tests.agent.synthetic import synthetic_case
    from tools.toolbox.repair import setup_from_settings

    monkeypatch.setenv("TAMO_REPAIR_APPROVERS", "os:alice, slack:U024BE7LH,mcp:bob")
    monkeypatch.setenv("TAMO_REPAIR_ALLOW_TARGETS", "checkout*,payment*")
    policy = setup_from_settings(ToolContext.from_case(synthetic_case(), settings)).policy
    assert policy.approvers == ["os:alice", "slack:U024BE7LH", "mcp:bob"]
    assert policy.allow_targets == ["checkout*", "payment*"]


def test_a_tool_listed_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="query_traces"):
        catalog(TOOLBOX["query_traces"], TOOLBOX["query_traces"])
