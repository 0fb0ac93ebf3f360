"""The closed loop over live telemetry: learn normal -> watch -> diagnose -> plan -> repair.

Why a class of its own: the demo, the benchmark and an operator's long-running watcher all do
the same thing against different systems. The loop only sees sources (a ``TraceSource`` for
spans, a ``MetricSource`` for PromQL) and a :class:`RepairExecutor`; it never learns what fault
was injected or where. Every stage is reported through ``on_event`` as it happens, which is what
the demo prints live.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, Field

from tools.core.errors import TamoError
from tools.core.fault_catalog import ErrorCodeMeaning
from tools.repair.detect import LiveTraceDetector, WindowVerdict, complete_traces, diagnose
from tools.repair.diagnosis import Diagnosis
from tools.repair.engine import RepairPlan, RuleEngine
from tools.repair.runner import RepairExecutor, RepairOutcome
from tools.repair.verify import latest_worst
from tools.telemetry.model import TimeWindow
from tools.telemetry.sources import MetricSource, TraceSource


class LoopEvent(BaseModel):
    stage: str  # baseline, watch, detect, localize, strategy, approval, execute, verify, report
    at: float  # unix seconds
    message: str
    data: dict = Field(default_factory=dict)


class Detection(BaseModel):
    detected_at: float
    verdict: WindowVerdict
    diagnosis: Diagnosis


def _now() -> datetime:
    return datetime.now(UTC)


def _window(seconds: float, end: datetime | None = None) -> TimeWindow:
    end = end or _now()
    return TimeWindow(start=end - timedelta(seconds=seconds), end=end)


class ClosedLoop:
    """One watcher over one system. ``symptom_queries`` are PromQL expressions whose current
    values are attached to the diagnosis (``p95_latency_s``, ``failure_rate`` ...)."""

    def __init__(
        self,
        traces: TraceSource,
        metrics: MetricSource | None,
        engine: RuleEngine,
        runner: RepairExecutor,
        *,
        symptom_queries: dict[str, str] | None = None,
        window_s: float = 8.0,
        settle_s: float = 0.4,
        poll_s: float = 0.25,
        confirm_polls: int = 2,
        on_event: Callable[[LoopEvent], None] | None = None,
        error_codes: Mapping[str, ErrorCodeMeaning] | None = None,
    ) -> None:
        self.traces = traces
        self.metrics = metrics
        self.engine = engine
        self.runner = runner
        self.symptom_queries = symptom_queries or {}
        self.window_s = window_s
        self.settle_s = settle_s
        self.poll_s = poll_s
        self.confirm_polls = confirm_polls  # one slow blip is not an incident
        self.on_event = on_event
        self.error_codes = error_codes  # the system's published meanings of its error codes
        self.detector: LiveTraceDetector | None = None

    def emit(self, stage: str, message: str, **data: object) -> None:
        if self.on_event:
            self.on_event(LoopEvent(stage=stage, at=time.time(), message=message, data=data))

    def _complete(self, seconds: float) -> pa.Table:
        spans = self.traces.spans(_window(seconds))
        cutoff = time.time_ns() - int(self.settle_s * 1e9)
        return complete_traces(spans, cutoff)

    def learn_baseline(self, seconds: float) -> int:
        """Fit the detector on the complete traces of the last ``seconds`` (fault-free)."""
        base = self._complete(seconds)
        if base.num_rows == 0:
            raise TamoError(
                "no complete traces to learn normal behaviour from", source="closed loop baseline"
            )
        self.detector = LiveTraceDetector(base, error_codes=self.error_codes)
        if self.runner.verifier is not None:  # "no worse than normal" checks compare with it
            self.runner.verifier.baseline = _window(seconds)
        n = len(pc.unique(base["trace_id"]))
        self.emit("baseline", f"learned normal behaviour from {n} fault-free traces", traces=n)
        return n

    def symptoms(self) -> dict[str, float]:
        """Current values of the symptom queries (missing data is left out)."""
        out: dict[str, float] = {}
        if self.metrics is None:
            return out
        for name, q in self.symptom_queries.items():
            try:
                v = latest_worst(self.metrics.series(q, _window(3.0), 1.0), ">")
            except TamoError:
                continue
            if v is not None:
                out[name] = round(v, 4)
        return out

    def last_good_task(self, before: datetime) -> str | None:
        """Task id of the newest error-free trace root that ended before ``before``."""
        spans = self.traces.spans(_window(60.0, before))
        if spans.num_rows == 0:
            return None
        roots = spans.filter(
            pc.and_kleene(pc.is_null(spans["parent_id"]), pc.not_equal(spans["status"], "error"))
        )
        if roots.num_rows == 0:
            return None
        newest = roots.sort_by([("end_ns", "descending")]).slice(0, 20)
        for attrs in newest["attributes"].to_pylist():
            task = json.loads(attrs).get("task_id") if attrs else None
            if task:
                return str(task)
        return None

    def watch(self, timeout_s: float, stop: Callable[[], bool] | None = None) -> Detection | None:
        """Judge a sliding window every ``poll_s`` until ``confirm_polls`` windows in a row are
        alarming (or ``timeout_s``); the last one is diagnosed."""
        if self.detector is None:
            raise TamoError("learn_baseline first", source="closed loop")
        deadline = time.time() + timeout_s
        streak = 0
        while time.time() < deadline and not (stop and stop()):
            verdict = self.detector.judge(self._complete(self.window_s))
            streak = streak + 1 if self.detector.alarming(verdict) else 0
            if streak >= self.confirm_polls:
                at = time.time()
                self.emit(
                    "detect",
                    f"{verdict.anomalous}/{verdict.traces} recent traces are anomalous",
                    traces=verdict.traces,
                    anomalous=verdict.anomalous,
                    codes=verdict.codes,
                )
                window_start = datetime.fromtimestamp(at - self.window_s, tz=UTC)
                d = diagnose(
                    verdict,
                    metrics=self.symptoms(),
                    last_good_task_id=self.last_good_task(window_start),
                )
                if d is not None:
                    self.emit(
                        "localize",
                        f"root cause: {d.label} (confidence {d.confidence:.2f})",
                        module=d.component,
                        fault_type=d.fault_type,
                        evidence=d.evidence,
                        metrics=d.metrics,
                    )
                    return Detection(detected_at=at, verdict=verdict, diagnosis=d)
            time.sleep(self.poll_s)
        return None

    def repair(self, diagnosis: Diagnosis) -> tuple[RepairPlan | None, RepairOutcome | None]:
        plan = self.engine.pick(diagnosis)
        if plan is None:
            reasons = [
                f"{m.strategy_id}: {'; '.join(m.reasons)}" for m in self.engine.rank(diagnosis)[:3]
            ]
            self.emit("strategy", "no strategy applies", rejected=reasons)
            return None, None
        self.emit(
            "strategy",
            f"{plan.strategy_id} (score {plan.score:g}): {plan.description}",
            strategy_id=plan.strategy_id,
            reasons=plan.reasons,
            actions=[f"{a.type} {a.target} {a.params or ''}".strip() for a in plan.actions],
            alternatives=[a.strategy_id for a in plan.alternatives],
        )
        return plan, self.runner.run(plan)
