"""Span signals: which repeats are a retry storm, which errors a retry absorbed."""

from __future__ import annotations

import numpy as np

from tests.traces.conftest import span, spans
from tools.traces import TraceConfig
from tools.traces.baseline import ModuleBaseline
from tools.traces.reconstruct import reconstruct
from tools.traces.vectors import _failure_runs, span_signals

MS = 1_000_000


def test_failure_runs_count_failures_in_a_row() -> None:
    group = np.array([0, 0, 0, 0, 1, 1, 1, 2])
    start = np.array([1, 2, 3, 4, 3, 1, 2, 0])
    failed = np.array([1, 0, 1, 1, 1, 1, 0, 0], dtype=bool)
    # group 0 in start order: F ok F F -> 2; group 1: F ok F -> 1; group 2: none
    assert _failure_runs(group, start, failed).tolist() == [2, 1, 0]


def _agent(tid: str, attempts: list[str], tools: int = 1) -> list[dict]:
    """agent -> client spans 'call' (one per attempt) -> server span 'llm' with the status."""
    rows = [span(tid, "a0", None, "agent", 0, 10_000 * MS, op="run")]
    t = 1
    for i, status in enumerate(attempts):
        rows.append(span(tid, f"c{i}", "a0", "agent", t * MS, (t + 50) * MS, op="call"))
        rows.append(span(tid, f"s{i}", f"c{i}", "llm", (t + 1) * MS, (t + 49) * MS, status))
        t += 100
    for k in range(tools):
        rows.append(span(tid, f"t{k}", "a0", "tools", t * MS, (t + 5) * MS, op="search"))
        t += 10
    return rows


def test_storm_needs_failures_in_a_row_and_absorbed_errors_are_absorbed() -> None:
    normal = [r for i in range(60) for r in _agent(f"n{i}", ["ok"] * (1 + i % 3), 1 + i % 2)]
    fit, _ = reconstruct(spans(normal))
    config = TraceConfig()
    base = ModuleBaseline.fit(fit, config)
    window = (
        _agent("storm", ["error"] * 5 + ["ok"])
        + _agent("rate-limited", ["error", "ok", "error", "ok", "ok"])
        + _agent("busy", ["ok"], tools=5)
    )
    forest, _ = reconstruct(spans(window))
    s = span_signals(forest, base, config)
    by_trace = {
        tid: slice(int(forest.offsets[t]), int(forest.offsets[t + 1]))
        for t, tid in enumerate(forest.trace_ids)
    }
    assert (s.repeat_excess[by_trace["storm"]] > 0).any()
    # two rate-limited calls, each retried once, and a busy agent loop are not storms
    assert not (s.repeat_excess[by_trace["rate-limited"]] > 0).any()
    assert not (s.repeat_excess[by_trace["busy"]] > 0).any()
    # the callee's failures inside retried attempts were absorbed by the later success
    rl = by_trace["rate-limited"]
    assert (s.recovered[rl] == forest.is_error[rl]).all()
