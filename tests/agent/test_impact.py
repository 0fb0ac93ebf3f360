"""Impact against normal: requests served per service, the baseline choice, the priority rules."""

from __future__ import annotations

from datetime import timedelta

import pyarrow as pa
import pytest

from agent.impact import baseline_windows, measure_impact
from agent.priority import RULES, assign_priority, rules_markdown
from agent.report_model import Impact
from tools.telemetry.model import SPAN_SCHEMA, Incident, TimeWindow, to_ns
from tools.telemetry.store import TelemetryStore

MS = 1_000_000


def _traffic(window: TimeWindow, per_min: int, pay_ms: float, fail_every: int) -> pa.Table:
    """web -> api -> db chains; db takes ``pay_ms`` and every ``fail_every``-th fails (0: none)."""
    rows = []
    start, step = to_ns(window.start), int(60e9 / per_min)
    for i in range(int(window.seconds / 60 * per_min)):
        t, tid = start + i * step, f"{to_ns(window.start) + i:032x}"
        fail = fail_every and i % fail_every == 0
        chain = [("web", 4 + pay_ms), ("api", 2 + pay_ms), ("api", 1 + pay_ms), ("db", pay_ms)]
        parent = None
        for depth, (svc, ms) in enumerate(chain):
            sid = f"{i:012x}{depth:04x}"
            err = bool(fail) and svc != "web" and depth != 2
            rows.append(
                {
                    "trace_id": tid,
                    "span_id": sid,
                    "parent_id": parent,
                    "service": svc,
                    "operation": "op",
                    "start_ns": t + depth,
                    "end_ns": t + depth + int(ms * MS),
                    "duration_ns": int(ms * MS),
                    "status": "error" if err else "ok",
                    "error_code": "DB_DOWN" if err and svc == "db" else None,
                }
            )
            parent = sid
    return pa.Table.from_pylist(rows, schema=SPAN_SCHEMA)


@pytest.fixture
def store_and_window() -> tuple[TelemetryStore, TimeWindow]:
    now = TimeWindow.from_ns(1_700_000_600 * 10**9, 1_700_000_900 * 10**9)  # 5 min
    before = TimeWindow(start=now.start - timedelta(minutes=5), end=now.start)
    store = TelemetryStore(None)
    store.insert("spans", _traffic(before, 120, 10.0, 0), "before")
    store.insert("spans", _traffic(now, 120, 40.0, 5), "now")
    return store, now


def test_each_service_is_measured_on_the_requests_it_served(
    store_and_window: tuple[TelemetryStore, TimeWindow],
) -> None:
    store, now = store_and_window
    impact = measure_impact(Incident(window=now), store)
    assert impact.baseline == "the 5 min before the window"
    by = {s.service: s for s in impact.services}
    # api's inner span (api -> api) is not a request api served: 600 requests, not 1,200
    assert by["api"].requests == by["db"].requests == 600
    assert by["db"].error_rate == pytest.approx(0.2) and by["db"].baseline_error_rate == 0.0
    assert by["db"].latency_factor == pytest.approx(4.0, rel=0.01)
    assert by["db"].rate_per_s == pytest.approx(2.0) == by["db"].baseline_rate_per_s
    assert impact.entry_points == ["web"] and not by["web"].error_rate  # web hides the failure
    assert set(impact.affected_services) == {"db", "api", "web"} and by["db"].affected
    assert impact.error_codes == ["DB_DOWN"] and len(impact.trace_ids) == 5


def test_baseline_is_given_else_before_else_the_lead_in(
    store_and_window: tuple[TelemetryStore, TimeWindow],
) -> None:
    store, now = store_and_window
    given = TimeWindow(start=now.start - timedelta(hours=1), end=now.start)
    assert baseline_windows(Incident(window=now, baseline=given), store)[1:] == (
        given,
        "the given baseline window",
    )
    empty = TelemetryStore(None)
    empty.insert("spans", _traffic(now, 120, 10.0, 0), "now")
    cut_now, lead_in, how = baseline_windows(Incident(window=now), empty)
    assert lead_in.start == now.start and lead_in.end == cut_now.start
    assert (lead_in.end - lead_in.start) * 3 == cut_now.end - cut_now.start
    assert "first quarter" in how
    assert measure_impact(Incident(window=now), empty).affected_services == []


@pytest.mark.parametrize(
    ("impact", "level"),
    [
        (Impact(error_rate=0.40, baseline_error_rate=0.01), "P0"),
        (Impact(error_rate=0.31, baseline_error_rate=0.25), "P1"),  # ≥25 % but only +6 points
        (Impact(error_rate=0.08, baseline_error_rate=0.0), "P1"),
        (Impact(error_rate=0.0, latency_change_pct=250.0), "P1"),
        (Impact(error_rate=0.02, baseline_error_rate=0.0), "P2"),
        (Impact(error_rate=0.0, latency_change_pct=60.0), "P2"),
        (Impact(affected_services=["db"]), "P2"),
        (Impact(error_rate=0.03, baseline_error_rate=0.03), "P3"),  # as bad as normal
    ],
)
def test_priority_rules(impact: Impact, level: str) -> None:
    assert assign_priority(impact).level == level


def test_rules_are_listed_for_the_docs() -> None:
    text = rules_markdown()
    assert text.count("\n") == len(RULES) and all(rule in text for _, rule, _ in RULES)


def test_a_gap_before_the_window_looks_further_back(
    store_and_window: tuple[TelemetryStore, TimeWindow],
) -> None:
    _, now = store_and_window
    store = TelemetryStore(None)
    ten, fifteen = timedelta(minutes=10), timedelta(minutes=15)
    earlier = TimeWindow(start=now.start - fifteen, end=now.start - ten)
    store.insert("spans", _traffic(earlier, 120, 10.0, 0), "earlier")
    store.insert("spans", _traffic(now, 120, 40.0, 5), "now")
    got_now, base, how = baseline_windows(Incident(window=now), store)
    assert got_now == now and base == earlier and how == "5 min ending 10 min before the window"
