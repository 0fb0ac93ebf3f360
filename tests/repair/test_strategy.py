from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tools.core.errors import ConfigError
from tools.repair.strategy import KNOWN_ACTIONS, MetricThreshold, load_strategies, parse_strategies

SEED_STRATEGY = """
- strategy_id: executor_restart_fallback
  repair_class: restart
  condition:
    module: "LLMAdapter"
    error_code: "MODEL_TIMEOUT"
    latency_gt: 8.0
  actions:
    - graceful_restart: executor
    - switch_model: {target: InferenceRPC, params: {model: rule_engine_v2}}
  rollback:
    - restore_snapshot: true
"""


def test_builtin_library_covers_every_testbed_fault_and_generic_k8s() -> None:
    lib = {s.strategy_id: s for s in load_strategies()}
    faults = {f for s in lib.values() for f in s.condition.fault_type}
    for fault in (
        "inference_hang",
        "model_timeout",
        "callback_failure",
        "retry_storm",
        "state_write_error",
        "span_drop",
        "context_loss",
        "cpu_contention",
        "memory_leak",
        "network_delay",
        "exception",
    ):
        assert fault in faults, fault
    assert {s.executor for s in lib.values()} == {"testbed", "kubernetes", "webhook"}
    for s in lib.values():
        assert all(a.type in KNOWN_ACTIONS for a in [*s.actions, *s.rollback])


def test_seed_shorthands_parse() -> None:
    (s,) = parse_strategies(SEED_STRATEGY, "seed.yaml")
    assert s.condition.module == ["LLMAdapter"]
    assert s.condition.error_code == ["MODEL_TIMEOUT"]
    assert str(s.condition.metric[0]) == "p95_latency_s > 8"
    assert (s.actions[0].type, s.actions[0].target) == ("graceful_restart", "executor")
    assert s.actions[1].params == {"model": "rule_engine_v2"}
    assert s.rollback[0].type == "restore_snapshot"
    assert s.auto is False  # approval needed unless a strategy says otherwise


def test_error_names_file_line_and_field(tmp_path: Path) -> None:
    bad = SEED_STRATEGY.replace("graceful_restart: executor", "reboot_everything: executor")
    f = tmp_path / "bad.yaml"
    f.write_text(bad)
    with pytest.raises(ConfigError) as exc:
        load_strategies(f)
    msg = str(exc.value)
    assert msg.startswith(f"{f}:9:"), msg  # the line of the bad action
    assert "executor_restart_fallback" in msg and "actions[0]" in msg
    assert "reboot_everything" in msg


def test_missing_field_and_empty_condition_are_reported(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"field actions: Field required"):
        parse_strategies("- {strategy_id: a, repair_class: restart, condition: {module: X}}", "x")
    with pytest.raises(ConfigError, match="condition needs at least one"):
        parse_strategies(
            "- {strategy_id: a, repair_class: restart, condition: {severity: warn},"
            " actions: [{type: notify}]}",
            "x",
        )
    with pytest.raises(ConfigError, match=r"x.yaml:1: invalid YAML"):
        parse_strategies("- a: [b", "x.yaml")


def test_duplicate_ids_across_files(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(SEED_STRATEGY)
    (tmp_path / "b.yaml").write_text(SEED_STRATEGY)
    with pytest.raises(ConfigError, match="duplicate strategy_id 'executor_restart_fallback'"):
        load_strategies(tmp_path)
    with pytest.raises(ConfigError, match="not found"):
        load_strategies(tmp_path / "nope.yaml")


@given(
    name=st.from_regex(r"[a-z_][a-z0-9_]{0,20}", fullmatch=True),
    op=st.sampled_from([">", ">=", "<", "<=", "=="]),
    value=st.integers(min_value=0, max_value=10**6),
    unit=st.sampled_from(["", "ms", "s", "%"]),
)
def test_threshold_text_roundtrip(name: str, op: str, value: int, unit: str) -> None:
    t = MetricThreshold.model_validate(f"{name} {op} {value}{unit}")
    scale = {"": 1.0, "s": 1.0, "ms": 0.001, "%": 0.01}[unit]
    assert (t.metric, t.op) == (name, op)
    assert t.value == pytest.approx(value * scale)


@given(st.text(max_size=30))
def test_threshold_parser_never_crashes(text: str) -> None:
    with contextlib.suppress(ValueError):
        MetricThreshold.model_validate(text)
