"""Every fault shows the seed's symptoms and is cleared (or bypassed) by its repair action."""

from __future__ import annotations

import pytest

from testbed import FAULTS, MODELS, MODULES, Testbed
from tests.testbed.support import Collector, metric_value, read_logs

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def run_tasks(bed: Testbed, prefix: str, n: int = 3) -> list[dict]:
    return [bed.submit(f"prompt {i}", task_id=f"{prefix}-{i}") for i in range(n)]


def fault_state(bed: Testbed, name: str) -> dict | None:
    return next((f for f in bed.client.status()["faults"] if f["name"] == name), None)


def test_catalogue_names_targets_and_repairs(bed: Testbed) -> None:
    listed = {f["name"]: f for f in bed.client.faults()["faults"]}
    assert set(listed) == set(FAULTS) >= {
        "inference-hang", "model-timeout", "callback-failure", "retry-storm",
        "state-write-error", "span-drop", "context-loss",
    }  # fmt: skip
    for f in listed.values():
        assert f["target"] in MODULES and f["symptoms"] and (f["clears"] or f["bypasses"])


def test_inference_hang(bed: Testbed, collector: Collector) -> None:
    bed.client.inject("inference-hang", hang_s=2.0)
    failed = run_tasks(bed, "hang", 2)
    assert all(a["error_code"] == "MODEL_TIMEOUT" for a in failed)
    spans = collector.wait(lambda: collector.task_spans("hang-0"), 4)
    llm = next(s for s in spans if s.module == "LLMAdapter")
    assert llm.error and llm.attributes["error_code"] == "MODEL_TIMEOUT"
    assert llm.duration_s >= 2 * 0.8  # two attempts of infer_timeout_s
    assert metric_value(bed, "LLMAdapter", "agent_retry_total", reason="MODEL_TIMEOUT") >= 2
    assert any("inference timeout" in x["message"] for x in read_logs(bed, "LLMAdapter"))
    # the hung InferenceRPC spans end (late, slow) and are kept by the sampler
    hung = collector.wait(
        lambda: [s for s in collector.task_spans("hang-0") if s.module == "InferenceRPC"],
        timeout_s=6,
    )
    assert hung and max(s.duration_s for s in hung) >= 1.9

    bed.client.switch_model("fallback")  # bypass: the primary stays hung
    ok = bed.submit("after fallback")
    assert ok["status"] == "success" and ok["model_version"] == MODELS["fallback"]
    assert metric_value(bed, "LLMAdapter", "model_fallback_total") >= 1
    assert fault_state(bed, "inference-hang")["bypassed_by"] == ["switch_model(fallback)"]

    bed.client.switch_model("primary")  # undoing the bypass brings the symptom back
    assert bed.submit("primary again")["error_code"] == "MODEL_TIMEOUT"
    restart = bed.client.restart("InferenceRPC")  # the wedged queue dies with the process
    assert restart["cleared"] == ["inference-hang"] and fault_state(bed, "inference-hang") is None
    assert bed.submit("after restart")["model_version"] == MODELS["primary"]


def test_model_timeout_survives_restart_but_not_a_model_switch(
    bed: Testbed, collector: Collector
) -> None:
    bed.client.inject("model-timeout")
    failed = run_tasks(bed, "mto", 2)
    assert all(a["error_code"] == "MODEL_TIMEOUT" for a in failed)
    spans = collector.wait(
        lambda: [s for s in collector.task_spans("mto-0") if s.module == "InferenceRPC"]
    )
    assert len(spans) == 2 and all(s.attributes["error_code"] == "MODEL_TIMEOUT" for s in spans)
    assert bed.client.restart("InferenceRPC")["cleared"] == []  # a bad version is persistent
    assert bed.submit("still broken")["error_code"] == "MODEL_TIMEOUT"
    bed.client.switch_model("fallback")
    assert all(a["status"] == "success" for a in run_tasks(bed, "mto-fixed"))


def test_callback_failure_skip_flag_and_redispatch(bed: Testbed, collector: Collector) -> None:
    before = metric_value(bed, "CallbackSender", "callback_failure_total")
    bed.client.inject("callback-failure")
    failed = run_tasks(bed, "cbf", 2)
    assert all(a["error_code"] == "CALLBACK_FAILED" for a in failed)
    assert metric_value(bed, "CallbackSender", "callback_failure_total") == before + 2
    hooks = collector.wait(
        lambda: [s for s in collector.task_spans("cbf-0") if s.module == "WebhookDeliver"]
    )
    assert len(hooks) == 3
    assert all(s.attributes["error_code"] == "WEBHOOK_UNREACHABLE" for s in hooks)

    bed.client.set_skip("WebhookDeliver")  # callbacks go to the outbox instead
    deferred = bed.submit("deferred", task_id="cbf-deferred")
    assert deferred["status"] == "success" and deferred["callback"] == "deferred"
    assert bed.client.status()["outbox"] >= 1
    assert fault_state(bed, "callback-failure")["effective"] is False

    bed.client.clear("callback-failure")  # the endpoint is back: deliver the parked callback
    bed.client.set_skip("WebhookDeliver", False)
    again = bed.client.redispatch("cbf-deferred", seq_no=1, from_step=3)
    assert again["status"] == "success" and again["callback"] == "delivered"
    assert "cbf-deferred" not in str(bed.client.status()["outbox"])


def test_retry_storm_cleared_by_restart(bed: Testbed, collector: Collector) -> None:
    before = metric_value(bed, "CallbackSender", "agent_retry_total")
    bed.client.inject("retry-storm")
    failed = run_tasks(bed, "storm", 2)
    assert all(a["error_code"] == "CALLBACK_RETRY_EXHAUSTED" for a in failed)
    assert metric_value(bed, "CallbackSender", "agent_retry_total") - before == 2 * 7
    assert metric_value(bed, "WebhookDeliver", "webhook_duplicate_total") >= 2 * 7
    hooks = collector.wait(
        lambda: [s for s in collector.task_spans("storm-0") if s.module == "WebhookDeliver"], 8
    )
    assert len(hooks) == 8
    assert bed.client.restart("CallbackSender")["cleared"] == ["retry-storm"]
    assert all(a["status"] == "success" for a in run_tasks(bed, "storm-fixed"))


def test_state_write_error_cleared_by_restore(bed: Testbed) -> None:
    before = metric_value(bed, "AgentRouter", "agent_state_write_error_total")
    bed.client.inject("state-write-error")
    failed = run_tasks(bed, "swe", 2)
    assert all(a["error_code"] == "STATE_WRITE_ERROR" for a in failed)
    assert metric_value(bed, "AgentRouter", "agent_state_write_error_total") == before + 4
    assert bed.client.restart("AgentRouter")["cleared"] == []  # the corrupt head is persistent
    assert bed.submit("still broken")["error_code"] == "STATE_WRITE_ERROR"
    assert bed.client.restore_snapshot()["cleared"] == ["state-write-error"]
    assert all(a["status"] == "success" for a in run_tasks(bed, "swe-fixed"))


def test_span_drop_breaks_the_chain_until_restart(bed: Testbed, collector: Collector) -> None:
    bed.client.inject("span-drop")
    answer = bed.submit("drop", task_id="drop-0")
    assert answer["status"] == "success"
    spans = collector.wait(lambda: collector.trace(answer["trace_id"]), len(MODULES) - 1)
    assert "LLMAdapter" not in {s.module for s in spans}
    ids = {s.span_id for s in spans}
    orphan = next(s for s in spans if s.module == "InferenceRPC")
    assert orphan.parent_id and orphan.parent_id not in ids  # a dangling parent: broken chain
    assert metric_value(bed, "LLMAdapter", "span_dropped_total") >= 1
    assert bed.client.restart("LLMAdapter")["cleared"] == ["span-drop"]
    fixed = bed.submit("complete again")
    assert len(collector.wait(lambda: collector.trace(fixed["trace_id"]), len(MODULES))) == 8


def test_context_loss_splits_the_task_into_two_traces(bed: Testbed, collector: Collector) -> None:
    bed.client.inject("context-loss")
    answer = bed.submit("lost", task_id="ctx-0")
    assert answer["status"] == "success"
    spans = collector.wait(lambda: collector.task_spans("ctx-0"), len(MODULES))
    traces = {s.trace_id for s in collector.task_spans("ctx-0")}
    assert len(traces) == 2, spans
    root_trace = {s.module for s in collector.trace(answer["trace_id"])}
    assert {"ModelExecutor", "LLMAdapter", "InferenceRPC"}.isdisjoint(root_trace)
    executor = next(s for s in collector.task_spans("ctx-0") if s.module == "ModelExecutor")
    assert executor.parent_id == ""  # a new root
    logs = [x for x in read_logs(bed, "ModelExecutor") if x["task_id"] == "ctx-0"]
    assert any(x["error_code"] == "CONTEXT_LOST" for x in logs)
    assert metric_value(bed, "ModelExecutor", "trace_context_lost_total") >= 1
    assert bed.client.restart("ModelExecutor")["cleared"] == ["context-loss"]
    # rebuild the broken chain from the last good snapshot, tagged with the repair
    rebuilt = bed.client.redispatch("ctx-0", seq_no=1, from_step=2, recovery_strategy="rebuild")
    assert rebuilt["status"] == "success"
    spans = collector.wait(lambda: collector.trace(rebuilt["trace_id"]), 6)
    assert len(spans) == 6
    router = next(s for s in spans if s.module == "AgentRouter")
    assert router.attributes["recovery_strategy"] == "rebuild"
    assert router.attributes["parent_trace_id"] == answer["trace_id"]
    assert all(s.attributes["task_id"] == "ctx-0" for s in collector.trace(rebuilt["trace_id"]))
