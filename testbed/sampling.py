"""Error-priority sampling (seed ch. 8): always keep error and slow traces, ratio-sample the rest.

Why three parts. A head sampler decides when a span *starts*, before anyone knows whether it
will fail or be slow; a pure tail sampler needs a collector that sees whole traces. We make the
tail decision inside the processes instead:

* :class:`ErrorPrioritySampler` (an SDK ``Sampler``) never drops a span. Spans whose start
  attributes already carry an ``error_code`` (the seed's ``ShouldSample``) and traces selected by
  the trace-id ratio get ``RECORD_AND_SAMPLE``; all others get ``RECORD_ONLY`` - recorded, but
  not (yet) chosen. The ratio test is on the trace id, so every process takes the same decision
  for a trace without relying on the propagated sampled flag.
* :class:`ErrorPriorityProcessor` (a ``SpanProcessor``) sees every ended span. Sampled spans are
  exported. Unsampled spans are buffered per trace until the *local root* (the span whose parent
  is remote or absent) ends; the whole local fragment is exported at once if any of its spans has
  status ERROR, an ``error_code`` attribute, or lasted at least ``slow_ms``.
* A :class:`KeepSet` shared by the processes carries that decision to the *other* fragments of
  the trace: a process that keeps a fragment marks its trace id, and every process holds its
  healthy unsampled fragments for ``hold_s`` and exports those whose trace gets marked meanwhile
  (a healthy TaskPreprocessor fragment that ended before InferenceRPC failed). Without a keep set,
  only the error path (errors propagate to the callers) of an unsampled trace is kept.

The SDK's ``BatchSpanProcessor`` ignores unsampled spans, so this processor batches itself: a
daemon thread flushes every ``interval_s`` to the exporters.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Protocol

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.sdk.trace.export import SpanExporter
from opentelemetry.sdk.trace.sampling import (
    Decision,
    Sampler,
    SamplingResult,
    TraceIdRatioBased,
)
from opentelemetry.trace import Link, SpanKind, StatusCode, get_current_span
from opentelemetry.trace.span import TraceState
from opentelemetry.util.types import Attributes

log = logging.getLogger(__name__)


class ErrorPrioritySampler(Sampler):
    """Sample errors always, other traces by trace-id ratio; record everything."""

    def __init__(self, ratio: float) -> None:
        self._ratio = TraceIdRatioBased(ratio)

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        parent_state = get_current_span(parent_context).get_span_context().trace_state
        if attributes and attributes.get("error_code"):
            return SamplingResult(Decision.RECORD_AND_SAMPLE, attributes, parent_state)
        result = self._ratio.should_sample(parent_context, trace_id, name, kind, attributes)
        decision = (
            Decision.RECORD_AND_SAMPLE if result.decision.is_sampled() else Decision.RECORD_ONLY
        )
        return SamplingResult(decision, attributes, parent_state)

    def get_description(self) -> str:
        return f"ErrorPrioritySampler({self._ratio.get_description()})"


class KeepSet(Protocol):
    """Trace ids some process decided to keep, visible to every process of the platform."""

    def mark(self, trace_ids: Sequence[str]) -> None: ...

    def which(self, trace_ids: Sequence[str]) -> set[str]: ...


def is_priority(span: ReadableSpan, slow_ms: float) -> bool:
    """An error (status or ``error_code``) or slow span: always worth keeping."""
    if span.status.status_code is StatusCode.ERROR:
        return True
    if span.attributes and span.attributes.get("error_code"):
        return True
    if span.start_time is None or span.end_time is None:
        return False
    return (span.end_time - span.start_time) / 1e6 >= slow_ms


class ErrorPriorityProcessor(SpanProcessor):
    """Keeps sampled spans and whole local fragments containing an error or slow span.

    ``drop_spans`` is polled per span: while it returns true every span is discarded and
    ``on_drop`` is called (the testbed's ``span-drop`` fault, an overflowing export buffer).
    ``on_export(n)`` is called with the number of spans handed to the exporters. With a
    ``keep_set``, healthy unsampled fragments wait ``hold_s`` for their trace to be marked.
    """

    def __init__(
        self,
        exporters: Sequence[SpanExporter],
        *,
        slow_ms: float,
        interval_s: float = 0.2,
        drop_spans: Callable[[], bool] = lambda: False,
        on_drop: Callable[[], None] = lambda: None,
        on_export: Callable[[int], None] = lambda n: None,
        max_pending_traces: int = 10_000,
        keep_set: KeepSet | None = None,
        hold_s: float = 15.0,
    ) -> None:
        self._exporters = list(exporters)
        self._slow_ms = slow_ms
        self._interval_s = interval_s
        self._drop_spans = drop_spans
        self._on_drop = on_drop
        self._on_export = on_export
        self._max_pending = max_pending_traces
        self._keep_set = keep_set
        self._hold_s = hold_s
        self._pending: OrderedDict[int, list[ReadableSpan]] = OrderedDict()
        # healthy fragments waiting for a keep decision: trace id -> (deadline, spans)
        self._held: OrderedDict[int, tuple[float, list[ReadableSpan]]] = OrderedDict()
        self._marks: list[str] = []
        self._queue: list[ReadableSpan] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="span-export", daemon=True)
        self._thread.start()

    def on_start(self, span: object, parent_context: Context | None = None) -> None:
        return None

    def on_end(self, span: ReadableSpan) -> None:
        if self._drop_spans():
            self._on_drop()
            return
        ctx = span.context
        with self._lock:
            if ctx.trace_flags.sampled:
                self._queue.append(span)
                return
            fragment = self._pending.setdefault(ctx.trace_id, [])
            fragment.append(span)
            local_root = span.parent is None or span.parent.is_remote
            if local_root:
                del self._pending[ctx.trace_id]
                if any(is_priority(s, self._slow_ms) for s in fragment):
                    self._queue.extend(fragment)
                    self._marks.append(format(ctx.trace_id, "032x"))
                    self._release(ctx.trace_id)
                elif self._keep_set is not None:
                    deadline = time.monotonic() + self._hold_s
                    spans = self._held.pop(ctx.trace_id, (0.0, []))[1] + fragment
                    self._held[ctx.trace_id] = (deadline, spans)
            while len(self._pending) > self._max_pending:  # a root that never ended
                self._pending.popitem(last=False)
            while len(self._held) > self._max_pending:
                self._held.popitem(last=False)

    def _release(self, trace_id: int) -> None:
        """Queue the held fragments of ``trace_id`` (caller holds the lock)."""
        held = self._held.pop(trace_id, None)
        if held is not None:
            self._queue.extend(held[1])

    def _run(self) -> None:
        while not self._stopped:
            self._wake.wait(self._interval_s)
            self._wake.clear()
            self._flush()

    def _share_decisions(self) -> None:
        """Publish this process's keep marks; release held fragments others marked."""
        assert self._keep_set is not None
        with self._lock:
            marks, self._marks = self._marks, []
            held = [format(t, "032x") for t in self._held]
        try:
            if marks:
                self._keep_set.mark(marks)
            kept = self._keep_set.which(held) if held else set()
        except Exception:  # sampling must never break the module
            log.exception("keep set unavailable")
            return
        now = time.monotonic()
        with self._lock:
            for trace_id in kept:
                self._release(int(trace_id, 16))
            while self._held and next(iter(self._held.values()))[0] <= now:
                self._held.popitem(last=False)  # nobody kept this trace: sampled out

    def _flush(self) -> None:
        if self._keep_set is not None:
            self._share_decisions()
        with self._lock:
            batch, self._queue = self._queue, []
        if not batch:
            return
        for exporter in self._exporters:
            try:
                exporter.export(batch)
            except Exception:  # an exporter failure must never break the module
                log.exception("span export failed")
        self._on_export(len(batch))

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        self._flush()
        return True

    def shutdown(self) -> None:
        self._stopped = True
        self._wake.set()
        self._thread.join(timeout=2)
        self._flush()
        for exporter in self._exporters:
            exporter.shutdown()
