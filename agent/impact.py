"""Impact against normal: every service of the window, now vs its baseline, and the user's view.

Why measured here and not by the model: priority pages people, so the figures it rests on are
computed the same way every time from the spans. A service's figures are those of the requests it
*served* — its entry spans, whose caller is another service or nobody — so an internal span does
not dilute its error rate and a slow callee does not count twice. The entry points (services that
start traces) are what users see; priority rules read their figures first.

Normal is the baseline window when the caller gives one; otherwise the same length of time right
before the window (or, when that is empty, the latest such span with traffic, up to six window
lengths back); when none holds spans, the window's first quarter (its lead-in) is normal and the
rest is "now". The report says which one was used.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pyarrow as pa
import pyarrow.compute as pc

from agent.report_model import Impact, ServiceImpact
from tools.telemetry.model import Incident, TimeWindow
from tools.telemetry.sources import TraceQuery, TraceSource
from tools.telemetry.trace_model import error_spans

SPAN_LIMIT = 500_000
MIN_REQUESTS = 10  # fewer requests than this at baseline: the service is not compared
ERROR_POINTS = 0.02  # error rate up by this much (absolute) ...
ERROR_FACTOR = 2.0  # ... and by this factor: the service is affected
LATENCY_FACTOR = 1.5  # p50 or p95 up by this factor: the service is affected
LEAD_IN_SHARE = 0.25
LOOKBACK_SPANS = 6  # how many window-lengths back to look for traffic before the window


def _entry_spans(spans: pa.Table) -> pa.Table:
    """Spans whose parent is absent or belongs to another service (the requests served)."""
    parents = (
        pa.table({"parent_id": spans["span_id"], "parent_service": spans["service"]})
        .group_by("parent_id", use_threads=False)
        .aggregate([("parent_service", "first")])
    )
    parents = parents.rename_columns(["parent_id", "parent_service"])
    joined = spans.select(["trace_id", "parent_id", "service", "duration_ns", "status"]).join(
        parents, keys="parent_id", join_type="left outer"
    )
    entry = pc.or_kleene(
        pc.is_null(joined["parent_service"]),
        pc.not_equal(joined["parent_service"], joined["service"]),
    )
    return joined.filter(pc.fill_null(entry, True))


def _quantile_ms(values: pa.Array | pa.ChunkedArray, q: float) -> float | None:
    clean = pc.drop_null(values)
    if len(clean) == 0:
        return None
    return round(float(pc.quantile(clean, q=q)[0].as_py()) / 1e6, 3)


def _per_service(spans: pa.Table, seconds: float) -> dict[str, ServiceImpact]:
    if spans.num_rows == 0:
        return {}
    entry = _entry_spans(spans)
    roots = set(pc.unique(spans.filter(pc.is_null(spans["parent_id"]))["service"]).to_pylist())
    out: dict[str, ServiceImpact] = {}
    for service in pc.unique(entry["service"]).to_pylist():
        rows = entry.filter(pc.equal(entry["service"], service))
        n = rows.num_rows
        errors = int(error_spans(rows).sum())
        out[service] = ServiceImpact(
            service=service,
            entry_point=service in roots,
            requests=n,
            rate_per_s=round(n / seconds, 3),
            error_rate=round(errors / n, 4),
            p50_ms=_quantile_ms(rows["duration_ns"], 0.5),
            p95_ms=_quantile_ms(rows["duration_ns"], 0.95),
        )
    return out


def _compare(now: ServiceImpact, base: ServiceImpact | None) -> None:
    if base is None or base.requests < MIN_REQUESTS:
        return
    now.baseline_rate_per_s = base.rate_per_s
    now.baseline_error_rate = base.error_rate
    now.baseline_p50_ms, now.baseline_p95_ms = base.p50_ms, base.p95_ms
    why = []
    up = now.error_rate - base.error_rate
    if up >= ERROR_POINTS and now.error_rate >= ERROR_FACTOR * base.error_rate:
        why.append(f"errors {base.error_rate:.1%} -> {now.error_rate:.1%}")
    for name, a, b in (("p50", now.p50_ms, base.p50_ms), ("p95", now.p95_ms, base.p95_ms)):
        if a and b and a >= LATENCY_FACTOR * b:
            why.append(f"{name} x{a / b:.1f}")
            break
    now.affected, now.why = bool(why), ", ".join(why)


def baseline_windows(
    incident: Incident, traces: TraceSource
) -> tuple[TimeWindow, TimeWindow | None, str | None]:
    """(now, normal, how normal was chosen); see the module docstring."""
    w = incident.window
    if incident.baseline is not None:
        return w, incident.baseline, "the given baseline window"
    span = w.end - w.start
    minutes = span.total_seconds() / 60
    for k in range(1, LOOKBACK_SPANS + 1):  # the latest equal span before it that has traffic
        before = TimeWindow(start=w.start - k * span, end=w.start - (k - 1) * span)
        if traces.spans(TraceQuery(before, limit=1)).num_rows:
            if k == 1:
                return w, before, f"the {minutes:g} min before the window"
            return w, before, f"{minutes:g} min ending {(k - 1) * minutes:g} min before the window"
    cut = w.start + timedelta(seconds=w.seconds * LEAD_IN_SHARE)
    return (
        TimeWindow(start=cut, end=w.end),
        TimeWindow(start=w.start, end=cut),
        "the window's first quarter (no spans before it)",
    )


def _error_codes(spans: pa.Table) -> list[str]:
    """Error codes of the window's failing spans, most frequent first."""
    if spans.num_rows == 0:
        return []
    failing = spans.filter(pc.and_(pa.array(error_spans(spans)), pc.is_valid(spans["error_code"])))
    counts = Counter(failing["error_code"].to_pylist())
    return [c for c, _ in counts.most_common(10)]


def _sample_traces(spans: pa.Table, k: int = 5) -> list[str]:
    err = spans.filter(pa.array(error_spans(spans)))
    pool = err if err.num_rows else spans
    if pool.num_rows == 0:
        return []
    order = pc.sort_indices(pool, sort_keys=[("duration_ns", "descending")])
    seen: list[str] = []
    for t in pool.take(order[: k * 20])["trace_id"].to_pylist():
        if t not in seen:
            seen.append(t)
        if len(seen) == k:
            break
    return seen


def measure_impact(incident: Incident, traces: TraceSource, how: str | None = None) -> Impact:
    """Every service of the window against normal, and the entry points' figures; ``how``
    says where a baseline the caller already chose came from."""
    now_w, base_w, chosen = baseline_windows(incident, traces)
    how = how or chosen
    spans = traces.spans(TraceQuery(now_w, limit=SPAN_LIMIT))
    now = _per_service(spans, now_w.seconds)
    base = (
        _per_service(traces.spans(TraceQuery(base_w, limit=SPAN_LIMIT)), base_w.seconds)
        if base_w
        else {}
    )
    for s in now.values():
        _compare(s, base.get(s.service))
    rows = sorted(now.values(), key=lambda s: (not s.affected, -s.error_rate, s.service))
    entries = [s for s in rows if s.entry_point]
    impact = Impact(
        affected_services=[s.service for s in rows if s.affected],
        entry_points=[s.service for s in entries],
        baseline=how if base else None,
        services=rows,
        error_codes=_error_codes(spans),
        trace_ids=_sample_traces(spans),
    )
    if entries:
        _user_view(impact, entries)
    return impact


def _user_view(impact: Impact, entries: list[ServiceImpact]) -> None:
    """The entry points together: what users see."""
    n = sum(s.requests for s in entries)
    impact.requests = n
    impact.error_rate = round(sum(s.error_rate * s.requests for s in entries) / max(n, 1), 4)
    top = max(entries, key=lambda s: s.requests)
    impact.p95_ms = top.p95_ms
    compared = [s for s in entries if s.baseline_error_rate is not None]
    if compared:
        total = sum(s.requests for s in compared)
        impact.baseline_error_rate = round(
            sum((s.baseline_error_rate or 0.0) * s.requests for s in compared) / max(total, 1), 4
        )
    impact.baseline_p95_ms = top.baseline_p95_ms
    if top.p95_ms and top.baseline_p95_ms:
        impact.latency_change_pct = round((top.p95_ms / top.baseline_p95_ms - 1) * 100, 1)
