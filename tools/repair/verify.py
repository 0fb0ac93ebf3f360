"""Did the repair work? The seed's success criteria, measured after the last action.

Why poll instead of one look: a restarted module needs a moment, and one good sample is luck.
Every check must pass on ``consecutive`` polls in a row, within ``timeout_s``. Each poll only
looks at telemetry *after* the last action (window start = max(actions done, now - window_s)),
so the incident itself can never vouch for the repair. A check with no data fails: silence is
not recovery.

PromQL checks go through a ``MetricSource`` (a Prometheus client evaluates the expression); trace
checks compute a statistic of the spans of one service through a ``TraceSource``. With several
series, the worst one counts (the maximum for ``<``, the minimum for ``>``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel

from tools.core.errors import TamoError
from tools.repair.strategy import _OPS, VerifyCheck, VerifySpec
from tools.telemetry.model import TimeWindow
from tools.telemetry.sources import MetricQuery, MetricSource, TraceQuery, TraceSource
from tools.telemetry.trace_model import error_spans, has_parent_id


class CheckOutcome(BaseModel):
    name: str
    value: float | None
    op: str
    threshold: float
    passed: bool
    note: str = ""


class Verification(BaseModel):
    passed: bool
    polls: int
    seconds: float
    checks: list[CheckOutcome]


def latest_worst(table: pa.Table, op: str) -> float | None:
    """Latest sample of each series, then the worst across series for ``op``."""
    if table.num_rows == 0:
        return None
    latest: dict[str, tuple[int, float]] = {}
    for labels, ts, v in zip(
        table["labels"].to_pylist(),
        table["ts_ns"].to_pylist(),
        table["value"].to_pylist(),
        strict=True,
    ):
        key = labels or ""
        if v is not None and v == v and (key not in latest or ts > latest[key][0]):
            latest[key] = (ts, float(v))
    if not latest:
        return None
    values = [v for _, v in latest.values()]
    return max(values) if op in ("<", "<=") else min(values)


def trace_statistic(spans: pa.Table, stat: str) -> float | None:
    """A statistic of a ``SPAN_SCHEMA`` table: ``span_count``, ``error_ratio``, ``p95_ms`` or
    ``root_ratio`` (the share of spans that start a trace: a callee that lost its caller's
    context shows up as a root); errors and roots as the one trace model defines them."""
    n = spans.num_rows
    if stat == "span_count":
        return float(n)
    if n == 0:
        return None
    if stat == "error_ratio":
        return float(error_spans(spans).mean())
    if stat == "root_ratio":
        return float((~has_parent_id(spans)).mean())
    durations = pc.drop_null(spans["duration_ns"])
    if len(durations) == 0:
        return None
    q = pc.quantile(durations, q=0.95, interpolation="nearest")
    return float(q[0].as_py()) / 1e6


class _NoSource(Exception):
    pass


class Verifier:
    """Evaluates a :class:`VerifySpec` against live telemetry."""

    def __init__(
        self,
        metrics: MetricSource | None = None,
        traces: TraceSource | None = None,
        *,
        baseline: TimeWindow | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.metrics = metrics
        self.traces = traces
        self.baseline = baseline  # a fault-free window for checks with a baseline_factor
        self.clock = clock
        self.sleep = sleep

    def _measure(self, check: VerifyCheck, window: TimeWindow, step_s: float) -> float | None:
        if check.promql is not None:
            if self.metrics is None:
                raise _NoSource("no metric source")
            return latest_worst(
                self.metrics.series(MetricQuery(check.promql, window, step_s=step_s)), check.op
            )
        if self.traces is None:
            raise _NoSource("no trace source")
        spans = self.traces.spans(TraceQuery(window, services=[check.service]))
        return trace_statistic(spans, str(check.trace))

    def threshold(self, check: VerifyCheck) -> float:
        """The check's threshold, relaxed to ``baseline_factor`` x normal where that is known."""
        if check.baseline_factor is None or self.baseline is None:
            return check.value
        try:
            normal = self._measure(check, self.baseline, max(self.baseline.seconds / 20, 0.5))
        except (TamoError, _NoSource):
            return check.value
        if normal is None:
            return check.value
        scaled = check.baseline_factor * normal
        return max(check.value, scaled) if check.op in ("<", "<=") else min(check.value, scaled)

    def _one(
        self, check: VerifyCheck, window: TimeWindow, step_s: float, limit: float
    ) -> CheckOutcome:
        value, note = None, ""
        try:
            value = self._measure(check, window, step_s)
        except (_NoSource, TamoError) as exc:
            note = str(exc)
        if value is None and not note:
            # also what a source whose clock runs behind ours looks like: its samples after the
            # repair are stamped before it
            note = "no data after the repair (source silent, or its clock behind ours)"
        passed = value is not None and bool(_OPS[check.op](value, limit))
        return CheckOutcome(
            name=check.name, value=value, op=check.op, threshold=limit, passed=passed, note=note
        )

    def check_once(
        self, spec: VerifySpec, since: datetime, limits: dict[str, float] | None = None
    ) -> list[CheckOutcome]:
        now = datetime.fromtimestamp(self.clock(), tz=UTC)
        start = max(since, now - timedelta(seconds=spec.window_s))
        if now <= start:
            now = start + timedelta(milliseconds=1)
        window = TimeWindow(start=start, end=now)
        step = max(spec.interval_s, 0.5)
        limits = limits or {c.name: self.threshold(c) for c in spec.checks}
        return [self._one(c, window, step, limits[c.name]) for c in spec.checks]

    def verify(
        self,
        spec: VerifySpec,
        since: datetime,
        on_poll: Callable[[list[CheckOutcome]], None] | None = None,
    ) -> Verification:
        """Poll until every check passed ``consecutive`` times in a row, or ``timeout_s``
        (a passing streak under way at the deadline may finish)."""
        t0 = self.clock()
        if spec.settle_s:
            self.sleep(spec.settle_s)
        polls, streak, last = 0, 0, []
        limits = {c.name: self.threshold(c) for c in spec.checks}
        while True:
            last = self.check_once(spec, since, limits)
            polls += 1
            if on_poll:
                on_poll(last)
            streak = streak + 1 if all(c.passed for c in last) else 0
            elapsed = self.clock() - t0
            if streak >= spec.consecutive:
                return Verification(passed=True, polls=polls, seconds=elapsed, checks=last)
            # a passing streak under way may finish (at most ``consecutive`` more polls): a slow
            # poll must not turn a recovery into a failure
            if elapsed + spec.interval_s > spec.timeout_s and streak == 0:
                return Verification(passed=False, polls=polls, seconds=elapsed, checks=last)
            self.sleep(spec.interval_s)
