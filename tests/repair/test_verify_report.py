"""Verification thresholds and statistics, and the chapter-9 artifacts (PNG, Grafana JSON)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa

from tools.repair.effect_plots import (
    Figures,
    effect_plot,
    effect_queries,
    grafana_dashboard,
    heatmap,
)
from tools.repair.strategy import VerifyCheck, VerifySpec
from tools.repair.verify import Verifier, trace_statistic
from tools.telemetry.model import SPAN_SCHEMA, TimeWindow
from tools.telemetry.sources import TraceQuery


def spans(durations_ms: list[float], errors: int = 0, roots: int = 0) -> pa.Table:
    rows = []
    for i, d in enumerate(durations_ms):
        rows.append(
            {
                "trace_id": f"t{i}",
                "span_id": f"s{i}",
                "parent_id": None if i < roots else "p",
                "service": "AgentRouter",
                "start_ns": i,
                "end_ns": i + int(d * 1e6),
                "duration_ns": int(d * 1e6),
                "status": "error" if i < errors else "ok",
            }
        )
    return pa.Table.from_pylist(rows, schema=SPAN_SCHEMA)


class Traces:
    """A TraceSource answering from two tables: the baseline window and everything later."""

    def __init__(self, normal: pa.Table, now: pa.Table, cut: datetime) -> None:
        self.normal, self.now, self.cut = normal, now, cut

    def spans(self, query: TraceQuery) -> pa.Table:
        return self.normal if query.window.end <= self.cut else self.now


def test_trace_statistics() -> None:
    t = spans([10, 20, 30, 40, 1000], errors=1, roots=2)
    assert trace_statistic(t, "span_count") == 5
    assert trace_statistic(t, "error_ratio") == 0.2
    assert trace_statistic(t, "p95_ms") == 1000
    assert trace_statistic(t, "root_ratio") == 0.4
    assert trace_statistic(spans([]), "p95_ms") is None


def test_baseline_factor_relaxes_a_threshold_to_no_worse_than_normal() -> None:
    cut = datetime.now(UTC) - timedelta(seconds=30)
    normal = spans([1200] * 20)  # this platform is slow even when healthy
    after = spans([1600] * 20)
    v = Verifier(
        None,
        Traces(normal, after, cut),
        baseline=TimeWindow(start=cut - timedelta(seconds=10), end=cut),
    )
    check = VerifyCheck(
        name="p95", trace="p95_ms", service="AgentRouter", op="<", value=1500, baseline_factor=2.0
    )
    assert v.threshold(check) == 2400
    spec = VerifySpec(checks=[check], timeout_s=1, interval_s=0.05, consecutive=2)
    result = v.verify(spec, since=cut + timedelta(seconds=1))
    assert result.passed and result.checks[0].threshold == 2400
    plain = VerifyCheck(name="p95", trace="p95_ms", service="AgentRouter", op="<", value=1500)
    spec = VerifySpec(checks=[plain], timeout_s=0.3, interval_s=0.05)
    assert not v.verify(spec, since=cut + timedelta(seconds=1)).passed
    assert Verifier(None, Traces(normal, after, cut)).threshold(check) == 1500  # no baseline


def test_artifacts(tmp_path: Path) -> None:
    t0 = 1_795_700_000
    anomalies = [
        (f"t{i}", "InferenceRPC" if i % 3 else "LLMAdapter", (t0 + i) * 10**9) for i in range(30)
    ]
    counts = heatmap(anomalies, tmp_path / "h.png", bucket_s=10)
    assert sum(sum(v.values()) for v in counts.values()) == 30
    assert sum(counts["InferenceRPC"].values()) == 20
    assert (tmp_path / "h.png").read_bytes()[:4] == b"\x89PNG"
    series = {k: [(t0 + i, float(i % 5)) for i in range(40)] for k in Figures.model_fields}
    effect_plot(
        series,
        {"inject": t0 + 5, "verified": t0 + 20},
        Figures(p95_latency_s=3.9, failure_rate=0.79),
        Figures(p95_latency_s=0.2, failure_rate=0.0),
        tmp_path / "e.png",
    )
    assert (tmp_path / "e.png").stat().st_size > 10_000
    dash = grafana_dashboard()
    json.dumps(dash)
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    assert effect_queries(60)["p95_latency_s"] in exprs and "auto_fix_success_rate" in exprs
    assert len({p["id"] for p in dash["panels"]}) == len(dash["panels"])
