"""Sequential verification: recovery is declared once the spans after the repair make "back to
normal" that much likelier than "still as during the incident" — and only with enough of them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyarrow as pa

from tools.repair.strategy import VerifyCheck, VerifySpec
from tools.repair.verify import Verifier, bad_spans
from tools.telemetry.model import SPAN_SCHEMA, TimeWindow
from tools.telemetry.sources import TraceQuery

T0 = datetime(2026, 12, 4, tzinfo=UTC)


def _at(s: float) -> datetime:
    return T0 + timedelta(seconds=s)


def _spans(start_s: float, outcomes: list[bool], step_s: float = 0.2) -> list[dict]:
    """One AgentRouter span per outcome (True = error), ``step_s`` apart from ``start_s``."""
    rows = []
    for i, bad in enumerate(outcomes):
        start = int(_at(start_s + i * step_s).timestamp() * 1e9)
        rows.append(
            {
                "trace_id": f"{start_s}-{i}",
                "span_id": f"{start_s}-{i}",
                "parent_id": None,
                "service": "AgentRouter",
                "start_ns": start,
                "end_ns": start + 50_000_000,
                "duration_ns": 50_000_000,
                "status": "error" if bad else "ok",
            }
        )
    return rows


class Store:
    """A TraceSource over one table."""

    def __init__(self, rows: list[dict]) -> None:
        self.table = pa.Table.from_pylist(rows, schema=SPAN_SCHEMA)

    def spans(self, query: TraceQuery) -> pa.Table:
        return query.narrow(self.table)


class Clock:
    """Time moves only when the verifier sleeps: each poll sees more spans."""

    def __init__(self, now_s: float) -> None:
        self.now = now_s

    def time(self) -> float:
        return _at(self.now).timestamp()

    def sleep(self, s: float) -> None:
        self.now += s


ERRORS = VerifyCheck(name="errors", trace="error_ratio", service="AgentRouter", op="<", value=0.05)
SPEC = VerifySpec(checks=[ERRORS], window_s=30, timeout_s=20, interval_s=0.25, consecutive=2)


def _verifier(rows: list[dict], clock: Clock) -> Verifier:
    return Verifier(
        None,
        Store(rows),
        baseline=TimeWindow(start=_at(0), end=_at(20)),
        incident=TimeWindow(start=_at(20), end=_at(24)),
        clock=clock.time,
        sleep=clock.sleep,
    )


def test_recovery_after_a_total_failure_is_declared_after_a_few_good_spans() -> None:
    rows = _spans(0, [False] * 100) + _spans(20, [True] * 20) + _spans(25, [False] * 50)
    clock = Clock(25.0)
    v = _verifier(rows, clock).verify(SPEC, since=_at(25))
    assert v.passed
    c = v.checks[0]
    assert c.samples is not None and 2 <= c.samples <= 5  # decided on samples, not polls
    assert c.evidence is not None and c.evidence >= 4.59  # ln 99


def test_one_lucky_good_span_is_not_recovery() -> None:
    rows = _spans(0, [False] * 100) + _spans(20, [True] * 20) + _spans(25, [False])
    clock = Clock(25.0)
    v = _verifier(rows, clock).verify(SPEC.model_copy(update={"timeout_s": 2}), since=_at(25))
    assert not v.passed and v.checks[0].samples == 1


def test_still_failing_after_the_repair_is_not_recovery() -> None:
    after = [i % 2 == 0 for i in range(60)]  # half the tasks still fail
    rows = _spans(0, [False] * 100) + _spans(20, [True] * 20) + _spans(25, after)
    clock = Clock(25.0)
    assert not _verifier(rows, clock).verify(SPEC, since=_at(25)).passed


def test_without_an_incident_reference_the_threshold_and_its_streak_decide() -> None:
    rows = _spans(0, [False] * 100) + _spans(25, [False] * 50)
    clock = Clock(25.0)
    v = Verifier(None, Store(rows), clock=clock.time, sleep=clock.sleep)
    result = v.verify(SPEC, since=_at(25))
    assert result.passed and result.polls >= 2 and result.checks[0].samples is None


def test_bad_spans_are_ordered_by_end() -> None:
    rows = _spans(0, [True, False, False])
    rows[0]["end_ns"] += 10**9  # the failing span ended last
    bad = bad_spans(pa.Table.from_pylist(rows, schema=SPAN_SCHEMA), "error_ratio", 0.05)
    assert bad.tolist() == [False, False, True]
