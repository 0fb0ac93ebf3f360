"""The live alert source: "an incident is open now", from the spans arriving in a store.

Why only an alert: deciding *that* something is wrong must be fast and continuous (a verdict every
quarter second), while deciding *what* is wrong and what to do about it is the investigation's
job (:mod:`agent.graph`, the same graph ``tamo diagnose`` runs). So the watcher learns normal
behaviour once from fault-free traffic, judges a sliding window of complete traces with
:class:`~tools.traces.live.LiveTraceDetector`, and feeds each trace's verdict, once, to one
sequential test per service (:class:`~tools.core.sequential.BernoulliCusum`): how often normal
traffic is blamed on that service (measured on baseline traces the model did not learn, and
bounded from above), against the share of traces an incident worth paging breaks. An alarm
fires as soon as the traces since the most likely change point make the incident that much more
likely — a few hung traces in a row suffice, a trickle of odd ones needs many — with a
threshold set from a false-alarm budget (``false_alarms_per_day`` at the baseline's traffic
rate), not from a fixed window. It then raises a :class:`TraceAlert`: the window, the baseline
it was judged against, the estimated onset, and what the call-chain triage observed (its
leading suspect, the error codes and the severity). The investigation treats that triage as
trace-analytics evidence next to the learned tools.

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
from tools.core.sequential import BernoulliCusum, threshold_for, upper_rate
from tools.telemetry.model import TimeWindow
from tools.telemetry.sources import TraceQuery, TraceSource
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
    onset: datetime | None = None  # when the change began, as the sequential alarm estimates it

    @property
    def incident(self) -> TimeWindow:
        """The broken traffic: from the estimated onset (else the window's start) to the alert."""
        start = self.onset or self.window.start
        end = datetime.fromtimestamp(self.raised_at, tz=UTC)
        return TimeWindow(start=start, end=max(end, start + timedelta(milliseconds=1)))

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
    suspect: str | None = None,
) -> TraceAlert | None:
    """The alarming window's leading (service, fault type) vote as an alert — among the votes
    for ``suspect`` when its alarm fired; ``None`` when no such trace could be triaged yet.
    ``anomalous_share``: the share of traces broken since the change began (the severity's
    measure; else the whole window's anomalous share)."""
    votes = {k: v for k, v in verdict.votes.items() if suspect in (None, k.split("|", 1)[0])}
    if not votes:
        return None
    key, n = max(votes.items(), key=lambda kv: (kv[1], kv[0]))
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

    One sequential alarm per service: a bad observation for a service is a trace the triage
    blames on it. Why per service: a fault concentrates anomalous traces on the module it
    breaks, while the noise of normal traffic (a slow span here, a slow span there, more of
    them when the machine is busy) spreads over all of them, so per service the normal rate is
    small and a few traces blamed on one module are already telling.

    ``incident_rate``: the share of traces an incident worth paging breaks at least (the
    alarms' alternative; a fault that breaks fewer traces is found more slowly, not missed);
    ``false_alarms_per_day``: the budget the alarm threshold is set from, split evenly over the
    baseline's services."""

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
        late_grace_s: float = 0.5,
    ) -> None:
        self.traces = traces
        self.error_codes = error_codes  # the system's published meanings of its error codes
        self.window_s = window_s
        self.settle_s = settle_s  # a trace counts once every process had time to flush
        self.poll_s = poll_s
        self.incident_rate = incident_rate
        self.false_alarms_per_day = false_alarms_per_day
        self.late_grace_s = late_grace_s  # how long a missing span may still be on its way
        self.detector: LiveTraceDetector | None = None
        self.baseline: TimeWindow | None = None
        self.alarms: dict[str, BernoulliCusum] = {}  # service -> its alarm
        self.h = 0.0  # each alarm's threshold
        self.observed = 0  # traces given to the alarms
        self.seen: set[str] = set()  # traces already given to the alarms (each counts once)
        self.onset_ns: dict[str, int] = {}  # service -> end of the trace that took it off zero

    def expect_lateness(self, seconds: float | None) -> None:
        """Spans reach the store up to ``seconds`` after they end (as the ingest measured it):
        a trace is judged only that long after its root ended, and a span it lacks counts as
        missing only that long after the trace ended. Call before ``learn_baseline``."""
        if seconds is not None:
            self.settle_s = self.late_grace_s = seconds

    def complete(self, window: TimeWindow) -> pa.Table:
        cutoff = time.time_ns() - int(self.settle_s * 1e9)
        return complete_traces(self.traces.spans(TraceQuery(window)), cutoff)

    def learn_baseline(self, seconds: float) -> int:
        """Fit the detector on the complete traces of the last ``seconds`` (fault-free) and set
        the alarms from it: per service, the upper bound of how often a model that did not
        learn them blames normal traces on it, and a threshold from the false-alarm budget at
        the baseline's traffic rate; returns how many traces it learned from."""
        window = _window(seconds)
        base = self.complete(window)
        if base.num_rows == 0:
            raise TamoError("no complete traces to learn normal behaviour from", source="alerts")
        det = LiveTraceDetector(base, error_codes=self.error_codes, late_grace_s=self.late_grace_s)
        services = sorted(set(base["service"].to_pylist()))
        per_service = self.false_alarms_per_day / len(services)
        self.h = threshold_for(det.normal_traces / seconds, per_service)
        self.detector, self.baseline = det, window
        self.alarms = {s: self._alarm(s) for s in services}
        noisy = [s for s, a in self.alarms.items() if a.p_from >= self.incident_rate]
        if noisy:
            raise TamoError(
                f"normal traffic is blamed on {', '.join(noisy)} as often as an incident would "
                f"be ({det.normal_anomalous}/{det.normal_traces} baseline traces anomalous): "
                "learn from more fault-free traffic",
                source="alerts",
            )
        self.seen = set(pc.unique(base["trace_id"]).to_pylist())
        return det.normal_traces

    def _alarm(self, service: str) -> BernoulliCusum:
        assert self.detector is not None
        normal = upper_rate(self.detector.normal_blamed[service], self.detector.normal_traces)
        return BernoulliCusum(normal, self.incident_rate, self.h)

    def last_good_task(self, before: datetime) -> str | None:
        """Task id of the newest error-free trace root that ended before ``before``."""
        spans = self.traces.spans(TraceQuery(_window(60.0, before)))
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

    def observe(self, verdict: WindowVerdict) -> str | None:
        """Give the alarms each trace of ``verdict`` they have not seen, oldest end first;
        returns the service whose alarm has fired (the strongest), if any."""
        new = sorted((end, tid, svc) for tid, end, svc in verdict.judged if tid not in self.seen)
        for end, tid, blamed in new:
            self.seen.add(tid)
            self.observed += 1
            if blamed is not None and blamed not in self.alarms:
                self.alarms[blamed] = self._alarm(blamed)  # a service the baseline never saw
            for svc, alarm in self.alarms.items():
                was_zero = alarm.statistic == 0.0
                alarm.update(blamed == svc)
                if was_zero and alarm.statistic > 0.0:
                    self.onset_ns[svc] = end
        self.seen &= {tid for tid, _, _ in verdict.judged}  # older traces left the window
        fired = [(a.statistic, s) for s, a in self.alarms.items() if a.fired]
        return max(fired)[1] if fired else None

    def onset_of(self, verdict: WindowVerdict, suspect: str) -> datetime | None:
        """When the incident began: the start of the window's first anomalous trace blamed on
        ``suspect``, else the end of the trace that took its alarm off zero."""
        starts = [s for _, module, s in verdict.anomalies if module == suspect]
        first = min(starts) if starts else self.onset_ns.get(suspect)
        return None if first is None else datetime.fromtimestamp(first / 1e9, tz=UTC)

    def watch(self, timeout_s: float, stop: Callable[[], bool] | None = None) -> TraceAlert | None:
        """Judge a sliding window every ``poll_s`` until a service's alarm fires (the window,
        its votes for that service leading, becomes the alert; the alarms start over), or
        ``timeout_s`` passes (``None``)."""
        if self.detector is None:
            raise TamoError("learn_baseline first", source="alerts")
        deadline = time.time() + timeout_s
        while time.time() < deadline and not (stop and stop()):
            window = _window(self.window_s)
            verdict = self.detector.judge(self.complete(window))
            suspect = self.observe(verdict)
            if suspect is not None:
                share = self.alarms[suspect].rate_since_change
                alert = alert_of(verdict, window, self.baseline, time.time(), share, suspect)
                if alert is not None:
                    for alarm in self.alarms.values():
                        alarm.reset()
                    good = self.last_good_task(window.start)
                    onset = self.onset_of(verdict, alert.suspect)
                    return alert.model_copy(update={"last_good_task_id": good, "onset": onset})
            time.sleep(self.poll_s)
        return None

    def anomalies(self, window: TimeWindow) -> list[tuple[str, str, int]]:
        """(trace, module, start) of every anomalous trace of ``window`` (for the heatmap)."""
        spans = complete_traces(self.traces.spans(TraceQuery(window)), time.time_ns())
        if self.detector is None or spans.num_rows == 0:
            return []
        return self.detector.judge(spans).anomalies
