"""The live alert source: "an incident is open now", from the spans arriving in a store.

Why only an alert: deciding *that* something is wrong must be fast and continuous (a verdict every
quarter second), while deciding *what* is wrong and what to do about it is the investigation's
job (:mod:`agent.graph`, the same graph ``tamo diagnose`` runs). So the watcher learns normal
behaviour once from fault-free traffic, judges a sliding window of complete traces with
:class:`~tools.traces.live.LiveTraceDetector`, and feeds each trace's verdict, once, to a
sequential test (:class:`~tools.core.sequential.BernoulliCusum`): normal traffic's own anomalous
rate, learned from the baseline, against the rate an incident worth paging causes. The alarm
fires as soon as the traces since the most likely change point make the incident that much more
likely (a hang is certain after a few hung traces; a trickle of odd traces needs more), with a
threshold set from a false-alarm budget (``false_alarms_per_day`` at the baseline's traffic
rate), not from a fixed window. It then raises a :class:`TraceAlert`: the window, the baseline
it was judged against, and what the call-chain triage observed (its leading suspect, the error
codes and the severity). The investigation treats that triage as trace-analytics evidence next
to the learned tools.

Nothing here knows which fault was injected; the window and the baseline are all it sees.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Literal

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, Field

from tools.core.errors import TamoError
from tools.core.fault_catalog import ErrorCodeMeaning
from tools.core.sequential import BernoulliCusum, laplace_rate, threshold_for
from tools.telemetry.model import TimeWindow
from tools.telemetry.sources import TraceSource
from tools.traces.live import LiveTraceDetector, WindowVerdict, complete_traces


class TraceAlert(BaseModel):
    """An open incident as the live trace triage saw it (observations, not a diagnosis)."""

    window: TimeWindow
    baseline: TimeWindow | None = None  # the fault-free traffic normal was learned from
    raised_at: float  # unix seconds
    traces: int
    anomalous: int
    suspect: str  # the service most anomalous traces were triaged to
    fault_type: str  # what the triage named for it (structure or the published error codes)
    share: float = Field(ge=0, le=1)  # of the anomalous traces, those pointing at the suspect
    votes: dict[str, int] = Field(default_factory=dict)  # "service|fault_type" -> traces
    error_codes: list[str] = Field(default_factory=list)  # most frequent first
    severity: Literal["info", "warn", "critical"] = "warn"
    trace_ids: list[str] = Field(default_factory=list)
    task_ids: list[str] = Field(default_factory=list)
    last_good_task_id: str | None = None  # newest error-free task before the window

    @property
    def ratio(self) -> float:
        return self.anomalous / self.traces if self.traces else 0.0

    def evidence(self) -> list[str]:
        """The triage's observations, one line each (what the report and the audit record)."""
        lead = f"{self.suspect}|{self.fault_type}"
        others = sorted((kv for kv in self.votes.items() if kv[0] != lead), key=lambda kv: -kv[1])
        others = others[:3]
        return [
            f"{self.anomalous}/{self.traces} traces anomalous",
            f"{self.share:.0%} of them point at {self.suspect} ({self.fault_type})",
            *(f"alternative: {k.replace('|', ' ')} ({v} traces)" for k, v in others),
        ]


def alert_of(
    verdict: WindowVerdict,
    window: TimeWindow,
    baseline: TimeWindow | None,
    at: float,
    anomalous_share: float | None = None,
) -> TraceAlert | None:
    """The alarming window's leading (service, fault type) vote as an alert; ``None``
    when no anomalous trace could be triaged yet. ``anomalous_share``: the share of anomalous
    traces since the change began (the severity's measure; else the whole window's)."""
    if not verdict.votes:
        return None
    key, n = max(verdict.votes.items(), key=lambda kv: (kv[1], kv[0]))
    suspect, fault = key.split("|", 1)
    ratio = verdict.ratio if anomalous_share is None else anomalous_share
    return TraceAlert(
        window=window,
        baseline=baseline,
        raised_at=at,
        traces=verdict.traces,
        anomalous=verdict.anomalous,
        suspect=suspect,
        fault_type=fault,
        share=round(n / max(verdict.anomalous, 1), 3),
        votes=verdict.votes,
        error_codes=sorted(verdict.codes, key=lambda c: (-verdict.codes[c], c)),
        severity="critical" if ratio >= 0.5 else "warn" if ratio >= 0.1 else "info",
        trace_ids=verdict.trace_ids[:5],
        task_ids=verdict.task_ids[:5],
    )


def _window(seconds: float, end: datetime | None = None) -> TimeWindow:
    end = end or datetime.now(UTC)
    return TimeWindow(start=end - timedelta(seconds=seconds), end=end)


class TraceWatcher:
    """Watches one store's spans: ``learn_baseline`` once, then ``watch`` until an alert.

    ``incident_rate``: the share of anomalous traces an incident worth paging causes at least
    (the sequential test's alternative; a fault that breaks fewer traces is found more slowly,
    not missed); ``false_alarms_per_day``: the budget the alarm threshold is set from."""

    def __init__(
        self,
        traces: TraceSource,
        *,
        error_codes: Mapping[str, ErrorCodeMeaning] | None = None,
        window_s: float = 8.0,
        settle_s: float = 0.4,
        poll_s: float = 0.25,
        incident_rate: float = 0.3,
        false_alarms_per_day: float = 1.0,
    ) -> None:
        self.traces = traces
        self.error_codes = error_codes  # the system's published meanings of its error codes
        self.window_s = window_s
        self.settle_s = settle_s  # a trace counts once every process had time to flush
        self.poll_s = poll_s
        self.incident_rate = incident_rate
        self.false_alarms_per_day = false_alarms_per_day
        self.detector: LiveTraceDetector | None = None
        self.alarm: BernoulliCusum | None = None
        self.baseline: TimeWindow | None = None
        self.seen: set[str] = set()  # traces already given to the alarm (each counts once)

    def complete(self, window: TimeWindow) -> pa.Table:
        cutoff = time.time_ns() - int(self.settle_s * 1e9)
        return complete_traces(self.traces.spans(window), cutoff)

    def learn_baseline(self, seconds: float) -> int:
        """Fit the detector on the complete traces of the last ``seconds`` (fault-free) and set
        the alarm from it: normal's anomalous rate, and a threshold from the false-alarm budget
        at the baseline's traffic rate; returns how many traces it learned from."""
        window = _window(seconds)
        base = self.complete(window)
        if base.num_rows == 0:
            raise TamoError("no complete traces to learn normal behaviour from", source="alerts")
        det = LiveTraceDetector(base, error_codes=self.error_codes)
        p_normal = laplace_rate(det.normal_anomalous, det.normal_traces)
        if p_normal >= self.incident_rate:
            raise TamoError(
                f"{det.normal_anomalous}/{det.normal_traces} baseline traces already look "
                f"anomalous: not enough fault-free traffic to learn normal from",
                source="alerts",
            )
        self.detector, self.baseline = det, window
        h = threshold_for(det.normal_traces / seconds, self.false_alarms_per_day)
        self.alarm = BernoulliCusum(p_normal, self.incident_rate, h)
        self.seen = set(pc.unique(base["trace_id"]).to_pylist())
        return det.normal_traces

    def last_good_task(self, before: datetime) -> str | None:
        """Task id of the newest error-free trace root that ended before ``before``."""
        spans = self.traces.spans(_window(60.0, before))
        if spans.num_rows == 0:
            return None
        roots = spans.filter(
            pc.and_kleene(pc.is_null(spans["parent_id"]), pc.not_equal(spans["status"], "error"))
        )
        newest = roots.sort_by([("end_ns", "descending")]).slice(0, 20)
        for attrs in newest["attributes"].to_pylist():
            task = json.loads(attrs).get("task_id") if attrs else None
            if task:
                return str(task)
        return None

    def observe(self, verdict: WindowVerdict) -> bool:
        """Give the alarm each trace of ``verdict`` it has not seen, oldest end first;
        returns whether it has fired."""
        assert self.alarm is not None
        new = sorted((end, tid, bad) for tid, end, bad in verdict.judged if tid not in self.seen)
        for _, tid, bad in new:
            self.seen.add(tid)
            self.alarm.update(bad)
        self.seen &= {tid for tid, _, _ in verdict.judged}  # older traces left the window
        return self.alarm.fired

    def watch(self, timeout_s: float, stop: Callable[[], bool] | None = None) -> TraceAlert | None:
        """Judge a sliding window every ``poll_s`` until the sequential alarm fires on a window
        whose anomalous traces could be triaged (it becomes the alert; the alarm starts over),
        or ``timeout_s`` passes (``None``)."""
        if self.detector is None or self.alarm is None:
            raise TamoError("learn_baseline first", source="alerts")
        deadline = time.time() + timeout_s
        while time.time() < deadline and not (stop and stop()):
            window = _window(self.window_s)
            verdict = self.detector.judge(self.complete(window))
            if self.observe(verdict):
                share = self.alarm.rate_since_change
                alert = alert_of(verdict, window, self.baseline, time.time(), share)
                if alert is not None:
                    self.alarm.reset()
                    good = self.last_good_task(window.start)
                    return alert.model_copy(update={"last_good_task_id": good})
            time.sleep(self.poll_s)
        return None

    def anomalies(self, window: TimeWindow) -> list[tuple[str, str, int]]:
        """(trace, module, start) of every anomalous trace of ``window`` (for the heatmap)."""
        spans = complete_traces(self.traces.spans(window), time.time_ns())
        if self.detector is None or spans.num_rows == 0:
            return []
        return self.detector.judge(spans).anomalies
