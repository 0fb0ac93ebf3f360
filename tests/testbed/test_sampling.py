"""The error-priority sampler keeps error and slow traces and ratio-samples the rest."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    Status,
    StatusCode,
    TraceFlags,
    set_span_in_context,
)

from testbed.otlp_json import OtlpJsonFileExporter
from testbed.sampling import ErrorPriorityProcessor, ErrorPrioritySampler


class Memory(SpanExporter):
    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []
        self.lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        with self.lock:
            self.spans.extend(spans)
        return SpanExportResult.SUCCESS

    def names(self) -> list[str]:
        return sorted(s.name for s in self.spans)


class SharedKeep:
    """A keep set shared by two 'processes' (the testbed uses its SQLite state store)."""

    def __init__(self) -> None:
        self.ids: set[str] = set()

    def mark(self, trace_ids: Sequence[str]) -> None:
        self.ids.update(trace_ids)

    def which(self, trace_ids: Sequence[str]) -> set[str]:
        return self.ids & set(trace_ids)


def pipeline(
    ratio: float, drop: list[bool] | None = None, keep: SharedKeep | None = None
) -> tuple[TracerProvider, Memory]:
    memory = Memory()
    provider = TracerProvider(sampler=ErrorPrioritySampler(ratio))
    provider.add_span_processor(
        ErrorPriorityProcessor(
            [memory],
            slow_ms=50,
            interval_s=0.01,
            drop_spans=lambda: bool(drop and drop[0]),
            keep_set=keep,
            hold_s=0.5,
        )
    )
    return provider, memory


def remote_parent(trace_id: int) -> Context:
    parent = SpanContext(trace_id, 0xABC, is_remote=True, trace_flags=TraceFlags(0))
    return set_span_in_context(NonRecordingSpan(parent))


def test_keep_set_keeps_healthy_fragments_of_error_traces_in_other_processes() -> None:
    keep = SharedKeep()
    early, early_spans = pipeline(0.0, keep=keep)  # e.g. TaskPreprocessor, done before the error
    late, _ = pipeline(0.0, keep=keep)  # e.g. LLMAdapter, which fails
    error_trace, healthy_trace = 0x1234, 0x5678
    with early.get_tracer("t").start_as_current_span("sibling", context=remote_parent(error_trace)):
        pass
    with early.get_tracer("t").start_as_current_span("alone", context=remote_parent(healthy_trace)):
        pass
    with late.get_tracer("t").start_as_current_span(
        "failing", context=remote_parent(error_trace)
    ) as s:
        s.set_status(Status(StatusCode.ERROR))
    late.force_flush()  # publishes the mark
    early.force_flush()  # finds it and releases the held sibling
    assert early_spans.names() == ["sibling"]
    time.sleep(0.6)  # past hold_s: the healthy trace is sampled out for good
    early.force_flush()
    assert early_spans.names() == ["sibling"]
    early.shutdown()
    late.shutdown()


def test_ratio_zero_keeps_only_error_and_slow_fragments() -> None:
    provider, memory = pipeline(0.0)
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("healthy-root"), tracer.start_as_current_span("child"):
        pass
    with tracer.start_as_current_span("error-root"):
        with tracer.start_as_current_span("error-child") as child:
            child.set_status(Status(StatusCode.ERROR, "boom"))
        with tracer.start_as_current_span("ok-sibling"):
            pass
    with tracer.start_as_current_span("slow-root"):
        time.sleep(0.06)
    with tracer.start_as_current_span("coded", attributes={"error_code": "MODEL_TIMEOUT"}):
        pass
    provider.force_flush()
    # the whole local fragment of an error trace is kept, siblings included
    assert memory.names() == ["coded", "error-child", "error-root", "ok-sibling", "slow-root"]
    provider.shutdown()


def test_ratio_one_keeps_everything_and_decisions_agree_across_processes() -> None:
    provider, memory = pipeline(1.0)
    with provider.get_tracer("t").start_as_current_span("a"):
        pass
    provider.force_flush()
    assert memory.names() == ["a"]
    half = ErrorPrioritySampler(0.5)
    trace_id = 0x0000000000000000_00000000000000FF  # low 64 bits decide TraceIdRatioBased
    decisions = {half.should_sample(None, trace_id, "x").decision for _ in range(5)}
    assert len(decisions) == 1  # deterministic per trace id: every module decides alike
    provider.shutdown()


def test_drop_switch_discards_even_error_spans() -> None:
    drop = [True]
    provider, memory = pipeline(1.0, drop)
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("lost") as span:
        span.set_status(Status(StatusCode.ERROR))
    drop[0] = False
    with tracer.start_as_current_span("kept"):
        pass
    provider.force_flush()
    assert memory.names() == ["kept"]
    provider.shutdown()


def test_otlp_json_file_uses_hex_ids(tmp_path: Path) -> None:
    path = tmp_path / "spans.jsonl"
    provider = TracerProvider()
    provider.add_span_processor(
        ErrorPriorityProcessor([OtlpJsonFileExporter(path)], slow_ms=1000, interval_s=0.01)
    )
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("parent") as parent, tracer.start_as_current_span("child"):
        trace_id = format(parent.get_span_context().trace_id, "032x")
    provider.shutdown()
    spans = [
        s
        for line in path.read_text().splitlines()
        for rs in json.loads(line)["resourceSpans"]
        for ss in rs["scopeSpans"]
        for s in ss["spans"]
    ]
    assert {s["traceId"] for s in spans} == {trace_id}
    child = next(s for s in spans if s["name"] == "child")
    parent_span = next(s for s in spans if s["name"] == "parent")
    assert child["parentSpanId"] == parent_span["spanId"] and len(child["spanId"]) == 16
