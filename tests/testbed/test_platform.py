"""The healthy platform: traces over OTLP, JSON logs, /metrics, snapshots, restart, load."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import httpx
import pytest

from testbed import Testbed, TestbedError
from testbed.catalog import CALLS, MODELS, MODULES
from tests.testbed.support import Collector, metric_value, read_logs
from tools.telemetry.ingest import parse_file
from tools.telemetry.local_prometheus import LocalPrometheus

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_trace_has_one_span_per_module_in_call_tree(bed: Testbed, collector: Collector) -> None:
    answer = bed.submit("summarise the incident", task_id="t-tree")
    assert answer["status"] == "success" and answer["model_version"] == MODELS["primary"]
    spans = collector.wait(lambda: collector.trace(answer["trace_id"]), len(MODULES))
    assert len(spans) == len(MODULES), spans
    by_id = {s.span_id: s for s in spans}
    assert sorted(s.module for s in spans) == sorted(MODULES)
    edges = {(by_id[s.parent_id].module, s.module) for s in spans if s.parent_id}
    assert edges == {(caller, callee) for caller, callees in CALLS.items() for callee in callees}
    assert all(s.attributes["task_id"] == "t-tree" for s in spans)
    assert not any(s.error for s in spans)
    llm = next(s for s in spans if s.module == "LLMAdapter")
    assert llm.attributes["model_version"] == MODELS["primary"]


def test_logs_are_json_lines_with_correlation_fields(bed: Testbed) -> None:
    bed.client.inject("callback-failure")
    answer = bed.submit("hello", task_id="t-logs")
    assert answer["status"] == "failed" and answer["error_code"] == "CALLBACK_FAILED"
    lines = [x for x in read_logs(bed, "WebhookDeliver") if x["task_id"] == "t-logs"]
    assert lines, "WebhookDeliver logged nothing for the failing task"
    for line in lines:
        assert set(line) >= {"ts", "level", "trace_id", "span_id", "task_id", "module", "message"}
        assert line["module"] == "WebhookDeliver" and line["level"] == "error"
        assert line["error_code"] == "WEBHOOK_UNREACHABLE"
        assert line["trace_id"] == answer["trace_id"] and len(line["span_id"]) == 16
    sender = [x for x in read_logs(bed, "CallbackSender") if x["task_id"] == "t-logs"]
    assert {x["error_code"] for x in sender} >= {"WEBHOOK_UNREACHABLE", "CALLBACK_FAILED"}


def test_metrics_endpoints_expose_seed_metrics_by_module(bed: Testbed) -> None:
    before = metric_value(bed, "AgentRouter", "agent_task_total", status="success")
    assert bed.submit("count me")["status"] == "success"
    assert metric_value(bed, "AgentRouter", "agent_task_total", status="success") == before + 1
    for module in MODULES:
        text = httpx.get(bed.urls[module] + "/metrics", timeout=5).text
        assert f'agent_task_latency_seconds_count{{module="{module}",service="{module}"}}' in text
        assert "agent_retry_total" in text or module in ("Vectorizer", "InferenceRPC")
    assert metric_value(bed, "LLMAdapter", "inference_latency_seconds_count") > 0
    assert metric_value(bed, "LLMAdapter", "agent_active_model", model=MODELS["primary"]) == 1


def test_snapshots_per_step_and_restore(bed: Testbed) -> None:
    assert bed.submit("snap", task_id="t-snap")["status"] == "success"
    snaps = bed.client.task("t-snap")["snapshots"]
    assert [s["step"] for s in snaps] == [0, 1, 2, 3]
    assert snaps[3]["state"]["callback"] == "delivered"
    assert snaps[2]["state"]["model_version"] == MODELS["primary"]
    restored = bed.client.restore_snapshot("t-snap", 1)
    assert restored["restored"]["state"]["vectorized_input"].startswith("embedded")
    assert [s["step"] for s in bed.client.task("t-snap")["snapshots"]] == [0, 1]
    again = bed.client.redispatch("t-snap", seq_no=1, from_step=2)
    assert again["status"] == "success" and again["dispatch_origin"] == "recovered"
    assert [s["step"] for s in bed.client.task("t-snap")["snapshots"]] == [0, 1, 2, 3]


def test_redispatch_is_idempotent_and_bounded(bed: Testbed) -> None:
    assert bed.submit("x", task_id="t-idem")["status"] == "success"
    first = bed.client.redispatch("t-idem", seq_no=1, from_step=3)
    assert first["status"] == "success"
    dup = bed.client.redispatch("t-idem", seq_no=1, from_step=3)
    assert dup["error_code"] == "DUPLICATE_DISPATCH"
    for seq in (2, 3):  # max_dispatches = 4 (first dispatch included)
        assert bed.client.redispatch("t-idem", seq_no=seq, from_step=3)["status"] == "success"
    limited = bed.client.redispatch("t-idem", seq_no=4, from_step=3)
    assert limited["error_code"] == "REDISPATCH_LIMIT"


def test_restart_is_a_new_process_on_the_same_port(bed: Testbed) -> None:
    before = bed.client.health()["modules"]["Vectorizer"]
    result = bed.client.restart("Vectorizer")
    after = bed.client.health()["modules"]["Vectorizer"]
    assert result["old_pid"] == before["pid"] != after["pid"] == result["pid"]
    assert after["url"] == before["url"] and after["restarts"] == before["restarts"] + 1
    assert httpx.get(after["url"] + "/health", timeout=5).json()["pid"] == after["pid"]
    assert bed.submit("after restart")["status"] == "success"


def test_skip_vectorizer(bed: Testbed, collector: Collector) -> None:
    bed.client.set_skip("Vectorizer")
    answer = bed.submit("skip it")
    assert answer["status"] == "success"
    collector.wait(lambda: collector.trace(answer["trace_id"]), len(MODULES) - 1)
    modules = {s.module for s in collector.trace(answer["trace_id"])}
    assert modules == set(MODULES) - {"Vectorizer"}


def test_control_api_rejects_bad_requests(bed: Testbed) -> None:
    for call, status in (
        (lambda: bed.client.inject("disk-full"), 404),
        (lambda: bed.client.restart("Nope"), 404),
        (lambda: bed.client.switch_model("gpt-9"), 400),
        (lambda: bed.client.set_skip("AgentRouter"), 400),
        (lambda: bed.client.inject("inference-hang", nope=1.0), 400),
    ):
        with pytest.raises(TestbedError) as info:
            call()
        assert info.value.status == status


def test_load_generator_is_bounded_and_spans_file_is_otlp_json(bed: Testbed) -> None:
    started = time.monotonic()
    report = bed.load(rate=20, duration_s=1.5, timeout_s=5)
    assert time.monotonic() - started < 1.5 + 5 + 2  # duration + one request timeout, at most
    assert report.sent + report.skipped == 30
    assert report.failure_rate == 0.0 and report.latency_quantile(0.95) > 0
    time.sleep(0.5)  # one export interval
    parsed = parse_file(bed.spans_dir / "AgentRouter.otlp.jsonl", fmt="otlp-json")
    assert parsed.spans.num_rows >= report.sent
    assert set(parsed.spans.column("service").to_pylist()) == {"AgentRouter"}


def test_real_prometheus_scrapes_every_module(bed: Testbed, tmp_path: Path) -> None:
    if shutil.which("prometheus") is None:
        pytest.skip("prometheus binary not installed")
    targets = bed.metrics_targets
    with LocalPrometheus(tmp_path, scrape_targets=targets, scrape_interval_s=0.5) as prom:
        bed.load(rate=10, duration_s=1)
        deadline = time.monotonic() + 20
        seen: set[str] = set()
        while time.monotonic() < deadline and seen != set(MODULES):
            time.sleep(0.5)
            resp = httpx.get(
                prom.url + "/api/v1/query",
                params={"query": "sum by (module) (agent_task_total)"},
                timeout=5,
            ).json()
            seen = {r["metric"]["module"] for r in resp["data"]["result"]}
    assert seen == set(MODULES)
