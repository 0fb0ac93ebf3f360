from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tools.repair import Diagnosis, RuleEngine, load_strategies
from tools.repair.diagnosis import AlarmLevel
from tools.repair.strategy import parse_strategies


@pytest.fixture(scope="module")
def engine() -> RuleEngine:
    return RuleEngine(load_strategies())


def chapter7() -> Diagnosis:
    """The seed's chapter-7 incident: inference hangs, MODEL_TIMEOUT, P95 11.8 s."""
    return Diagnosis(
        service="InferenceRPC",
        module="InferenceRPC",
        fault_type="inference_hang",
        error_codes=["MODEL_TIMEOUT"],
        metrics={"p95_latency_s": 11.8, "failure_rate": 0.187},
        severity=AlarmLevel.CRITICAL,
        confidence=0.93,
        trace_ids=["abc453"],
        detected_at=datetime(2025, 4, 27, 13, 46, tzinfo=UTC),
    )


def test_chapter7_picks_restart_with_fallback(engine: RuleEngine) -> None:
    plan = engine.pick(chapter7())
    assert plan is not None
    assert plan.strategy_id == "executor_restart_fallback"
    assert [(a.seq_no, a.type, a.target) for a in plan.actions] == [
        (1, "switch_model", "InferenceRPC"),
        (2, "graceful_restart", "InferenceRPC"),
    ]
    assert plan.rollback[0].seq_no == 3 and plan.rollback[0].params == {"model": "primary"}
    assert 'error_code "MODEL_TIMEOUT" observed' in plan.reasons  # telemetry names are quoted
    assert 'module "InferenceRPC" ~ InferenceRPC' in plan.reasons
    # the weaker fallback-only strategy is listed as an alternative, with a lower score
    alt = {a.strategy_id: a.score for a in plan.alternatives}
    assert alt["model_fallback_switch"] < plan.score
    assert plan.auto and plan.fallback_used
    assert plan.task_id == chapter7().repair_task_id()  # stable across processes


@pytest.mark.parametrize(
    ("fault", "module", "code", "strategy"),
    [
        ("model_timeout", "InferenceRPC", "MODEL_TIMEOUT", "model_fallback_switch"),
        ("callback_failure", "WebhookDeliver", "WEBHOOK_UNREACHABLE", "callback_skip_delivery"),
        ("retry_storm", "CallbackSender", "CALLBACK_RETRY_EXHAUSTED", "callback_sender_restart"),
        ("state_write_error", "AgentRouter", "STATE_WRITE_ERROR", "state_snapshot_rollback"),
        ("span_drop", "LLMAdapter", "SPAN_DROPPED", "span_exporter_restart"),
        ("context_loss", "ModelExecutor", "CONTEXT_LOST", "context_propagation_restart"),
        ("cpu_contention", "frontend", None, "k8s_scale_out_cpu"),
        ("network_delay", "cartservice", None, "network_delay_escalate"),
    ],
)
def test_each_fault_gets_its_strategy(
    engine: RuleEngine, fault: str, module: str, code: str | None, strategy: str
) -> None:
    d = Diagnosis(service=module, fault_type=fault, error_codes=[code] if code else [])
    plan = engine.pick(d)
    assert plan is not None and plan.strategy_id == strategy
    assert all("{" not in a.target for a in plan.actions)


def test_unknown_fault_on_platform_module_needs_approval(engine: RuleEngine) -> None:
    plan = engine.pick(Diagnosis(service="Vectorizer", fault_type="weird", severity="critical"))
    assert plan is not None and plan.strategy_id == "module_restart_generic"
    assert not plan.auto
    assert engine.pick(Diagnosis(service="mystery", fault_type="weird")) is None


def test_rejections_say_why() -> None:
    (s,) = parse_strategies(
        """
- strategy_id: slow_only
  repair_class: restart
  condition: {module: LLMAdapter, metric: "p95_latency_s > 8000ms", severity: critical}
  actions: [graceful_restart: "{module}"]
""",
        "x",
    )
    eng = RuleEngine([s])
    fast = Diagnosis(service="LLMAdapter", fault_type="x", metrics={"p95_latency_s": 1.2})
    (m,) = eng.rank(fast)
    assert not m.matched
    assert "p95_latency_s=1.2 fails p95_latency_s > 8" in m.reasons
    assert "severity warn below critical" in m.reasons
    assert eng.pick(Diagnosis(service="LLMAdapter", fault_type="x")) is None  # not measured
    slow = Diagnosis(
        service="LLMAdapter", fault_type="x", severity="critical", metrics={"p95_latency_s": 9.3}
    )
    plan = eng.pick(slow)
    assert plan is not None and plan.actions[0].target == "LLMAdapter"
    assert plan.score == 3 + 2 + 1
