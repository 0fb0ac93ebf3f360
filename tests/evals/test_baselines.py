"""BARO as RCAEval computes it, its BOCPD onset, and the topology walk baseline."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa

from evals.baselines import baro_rank, metric_walk_rank
from evals.baselines_bocpd import change_step
from tools.telemetry.model import METRIC_SCHEMA, CaseTelemetry, LabelledCase, TimeWindow
from tools.telemetry.topology import Topology

T0 = 1_700_000_000


def _table(series: dict[tuple[str, str], np.ndarray], start: int) -> pa.Table:
    rows = [
        {
            "name": n,
            "service": s,
            "pod": None,
            "labels": json.dumps({"service": s}),
            "ts_ns": (start + i) * 1_000_000_000,
            "value": float(v),
        }
        for (n, s), values in series.items()
        for i, v in enumerate(values)
    ]
    return pa.Table.from_pylist(rows, schema=METRIC_SCHEMA)


def _case(window: dict, baseline: dict | None, injected: int | None = None) -> CaseTelemetry:
    n = len(next(iter(window.values())))
    at = lambda t: datetime.fromtimestamp(t, UTC)  # noqa: E731
    label = LabelledCase(
        case_id="c",
        dataset="d",
        system="s",
        service="b",
        fault_type="cpu",
        injected_at=at(injected) if injected else None,
        window=TimeWindow(start=at(T0 + 1000), end=at(T0 + 1000 + n)),
    )
    base = _table(baseline, T0) if baseline else METRIC_SCHEMA.empty_table()
    return CaseTelemetry(case=label, metrics=_table(window, T0 + 1000), baseline_metrics=base)


def test_bocpd_finds_a_level_shift_in_the_sli() -> None:
    rng = np.random.default_rng(0)
    lat = np.r_[rng.normal(0.1, 0.005, 60), rng.normal(0.3, 0.005, 40)]
    err = np.r_[rng.normal(0.01, 0.001, 60), rng.normal(0.01, 0.001, 40)]
    step = change_step(np.c_[lat, err])
    assert step is not None and abs(step - 60) <= 3
    assert change_step(np.c_[lat[:10], err[:10]]) is None  # too short to tell


def test_baro_scores_the_signed_rise_with_rcaevals_scaler() -> None:
    rng = np.random.default_rng(1)
    normal = {("cpu", "a"): rng.normal(10, 1, 50), ("cpu", "b"): rng.normal(10, 1, 50)}
    # a falls a lot (|z| would rank it first), b rises; c is constant in the normal part (IQR 0
    # -> scale 1) and moves by 0.5 units: it stays behind b
    normal[("mem_bytes", "c")] = np.full(50, 5e6)
    window = {
        ("cpu", "a"): rng.normal(-40, 1, 30),
        ("cpu", "b"): rng.normal(20, 1, 30),
        ("mem_bytes", "c"): np.r_[np.full(15, 5e6), np.full(15, 5.5e6)],
    }
    assert baro_rank(_case(window, normal)) == ["b", "a"]  # c is constant in normal: dropped


def test_baro_splits_at_the_injection_or_finds_the_onset_itself() -> None:
    rng = np.random.default_rng(2)
    lat_b = np.r_[rng.normal(0.1, 0.004, 60), rng.normal(0.4, 0.004, 40)]
    window = {
        ("request_latency_seconds", "b"): lat_b,
        ("request_latency_seconds", "a"): rng.normal(0.1, 0.004, 100),
        ("cpu", "a"): np.r_[rng.normal(1, 0.05, 90), rng.normal(3, 0.05, 10)],
    }
    assert baro_rank(_case(window, None, injected=T0 + 1060))[0] == "b"
    assert baro_rank(_case(window, None), detect_onset=True)[0] == "b"


def test_walk_moves_blame_down_the_declared_calls() -> None:
    rng = np.random.default_rng(3)
    normal = {("lat_seconds", s): rng.normal(0.1, 0.005, 50) for s in "abc"}
    window = {("lat_seconds", "a"): rng.normal(0.2, 0.005, 30)}
    window[("lat_seconds", "b")] = rng.normal(0.2, 0.005, 30)
    window[("lat_seconds", "c")] = rng.normal(0.1, 0.005, 30)
    ranking = metric_walk_rank(_case(window, normal), Topology(edges=[("a", "b"), ("a", "c")]))
    assert ranking[0] == "b"
