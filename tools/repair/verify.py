"""Did the repair work? The seed's success criteria, measured after the last action.

Why poll instead of one look: a restarted module needs a moment, and one good sample is luck.
Each poll only looks at telemetry *after* the last action (window start = max(actions done,
now - window_s)), so the incident itself can never vouch for the repair. A check with no data
fails: silence is not recovery.

How much good telemetry is enough: when the verifier knows both normal traffic (``baseline``)
and the incident (``incident``), a trace check of a rate (``error_ratio``, ``root_ratio``, and
``p95_ms`` as the share of spans slower than its limit) is a sequential test: each span after
the repair, oldest first, weighs "as normal" against "as during the incident" — where the
incident broke that check — (a
:class:`~tools.core.sequential.BernoulliCusum` from the incident's rate to normal's), and the
check passes once that evidence reaches ``recovery_odds`` to one — three good tasks after a
hang that failed every task suffice, a subtle error rate needs many more. Those checks count
samples, so once one of them is in play a single poll where every check passes decides.
Without both references, or where the incident did not break a check, that check is its
threshold; with no sequential check at all, every check must pass on ``consecutive`` polls in
a row, within ``timeout_s``.

PromQL checks go through a ``MetricSource`` (a Prometheus client evaluates the expression); trace
checks compute a statistic of the spans of one service through a ``TraceSource``. With several
series, the worst one counts (the maximum for ``<``, the minimum for ``>``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel

from tools.core.errors import TamoError
from tools.core.sequential import BernoulliCusum, laplace_rate
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
    samples: int | None = None  # spans weighed by a sequential check
    evidence: float | None = None  # their log odds "normal : incident" (passes at the bound)


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


def bad_spans(spans: pa.Table, stat: str, limit: float) -> np.ndarray:
    """Per span, oldest end first, whether it counts against a rate check: an error
    (``error_ratio``), a root (``root_ratio``) or slower than ``limit`` ms (``p95_ms``)."""
    if spans.num_rows == 0:
        return np.zeros(0, dtype=bool)
    order = np.argsort(spans["end_ns"].to_numpy(zero_copy_only=False), kind="stable")
    if stat == "error_ratio":
        bad = error_spans(spans)
    elif stat == "root_ratio":
        bad = ~has_parent_id(spans)
    else:
        bad = spans["duration_ns"].fill_null(0).to_numpy() > limit * 1e6
    return np.asarray(bad, dtype=bool)[order]


SEQUENTIAL_STATS = ("error_ratio", "root_ratio", "p95_ms")


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
        incident: TimeWindow | None = None,
        recovery_odds: float = 99.0,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.metrics = metrics
        self.traces = traces
        self.baseline = baseline  # a fault-free window for checks with a baseline_factor
        self.incident = incident  # the broken traffic, for sequential checks
        self.recovery_odds = recovery_odds  # "normal : still broken" odds a sequential check needs
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

    def rates(self, check: VerifyCheck, limit: float) -> tuple[float, float] | None:
        """(incident, normal) rate of the spans a rate check counts against, when both windows
        are known and the incident broke the check (its rate of bad spans was past what the
        check allows); else ``None`` (the check is then its threshold: nothing to weigh)."""
        if (
            check.trace not in SEQUENTIAL_STATS
            or check.op not in ("<", "<=")
            or self.traces is None
            or self.baseline is None
            or self.incident is None
        ):
            return None
        allowed = 0.05 if check.trace == "p95_ms" else limit  # p95 < limit: <= 5 % slower
        try:
            bad = [
                bad_spans(
                    self.traces.spans(TraceQuery(w, services=[check.service])), check.trace, limit
                )
                for w in (self.incident, self.baseline)
            ]
        except TamoError:
            return None
        if len(bad[0]) == 0 or bad[0].mean() < allowed:
            return None
        return laplace_rate(int(bad[0].sum()), len(bad[0])), laplace_rate(
            int(bad[1].sum()), len(bad[1])
        )

    def _sequential(
        self, check: VerifyCheck, window: TimeWindow, limit: float, rates: tuple[float, float]
    ) -> CheckOutcome:
        """Weigh each span after the repair: passes at ``recovery_odds`` for normal."""
        query = TraceQuery(window, services=[check.service])
        spans = self.traces.spans(query) if self.traces else None
        if spans is None or spans.num_rows == 0:
            return CheckOutcome(
                name=check.name,
                value=None,
                op=check.op,
                threshold=limit,
                passed=False,
                note="no spans after the repair yet",
                samples=0,
                evidence=0.0,
            )
        test = BernoulliCusum(rates[0], rates[1], math.log(self.recovery_odds))
        for bad in bad_spans(spans, str(check.trace), limit):
            test.update(bool(bad))
        return CheckOutcome(
            name=check.name,
            value=trace_statistic(spans, str(check.trace)),
            op=check.op,
            threshold=limit,
            passed=test.fired,
            note=f"normal {rates[1]:.1%} vs incident {rates[0]:.1%}",
            samples=spans.num_rows,
            evidence=round(test.statistic, 2),
        )

    def _one(
        self,
        check: VerifyCheck,
        window: TimeWindow,
        step_s: float,
        limit: float,
        rates: tuple[float, float] | None = None,
    ) -> CheckOutcome:
        if rates is not None:
            return self._sequential(check, window, limit, rates)
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
        self,
        spec: VerifySpec,
        since: datetime,
        limits: dict[str, float] | None = None,
        rates: dict[str, tuple[float, float] | None] | None = None,
    ) -> list[CheckOutcome]:
        now = datetime.fromtimestamp(self.clock(), tz=UTC)
        start = max(since, now - timedelta(seconds=spec.window_s))
        if now <= start:
            now = start + timedelta(milliseconds=1)
        window = TimeWindow(start=start, end=now)
        step = max(spec.interval_s, 0.5)
        limits = limits or {c.name: self.threshold(c) for c in spec.checks}
        rates = rates or {}
        return [self._one(c, window, step, limits[c.name], rates.get(c.name)) for c in spec.checks]

    def verify(
        self,
        spec: VerifySpec,
        since: datetime,
        on_poll: Callable[[list[CheckOutcome]], None] | None = None,
    ) -> Verification:
        """Poll until every check passed ``consecutive`` times in a row (once, where the
        sequential checks carry the evidence), or ``timeout_s`` (a passing streak under way at
        the deadline may finish)."""
        t0 = self.clock()
        if spec.settle_s:
            self.sleep(spec.settle_s)
        polls, streak, last = 0, 0, []
        limits = {c.name: self.threshold(c) for c in spec.checks}
        rates = {c.name: self.rates(c, limits[c.name]) for c in spec.checks}
        # the samples of a sequential check are its evidence: a streak of polls adds none
        needed = 1 if any(rates.values()) else spec.consecutive
        while True:
            last = self.check_once(spec, since, limits, rates)
            polls += 1
            if on_poll:
                on_poll(last)
            streak = streak + 1 if all(c.passed for c in last) else 0
            elapsed = self.clock() - t0
            if streak >= needed:
                return Verification(passed=True, polls=polls, seconds=elapsed, checks=last)
            # a passing streak under way may finish (at most ``consecutive`` more polls): a slow
            # poll must not turn a recovery into a failure
            if elapsed + spec.interval_s > spec.timeout_s and streak == 0:
                return Verification(passed=False, polls=polls, seconds=elapsed, checks=last)
            self.sleep(spec.interval_s)
