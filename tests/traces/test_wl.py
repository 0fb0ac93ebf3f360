"""WL structural embedding: invariant to sibling order, sensitive to structure and status."""

from __future__ import annotations

from tests.traces.conftest import span, spans
from tools.traces.baseline import ModuleBaseline
from tools.traces.config import TraceConfig
from tools.traces.reconstruct import reconstruct
from tools.traces.vectors import span_signals, trace_embedding


def _embed(rows: list[dict]):
    f, _ = reconstruct(spans(rows))
    cfg = TraceConfig()
    base = ModuleBaseline.fit(f, cfg)
    return trace_embedding(f, base, span_signals(f, base, cfg), cfg)[1]


def test_sibling_order_does_not_matter_but_structure_and_errors_do() -> None:
    a = [
        span("t1", "r", None, "R", 0, 100),
        span("t1", "x", "r", "X", 1, 10),
        span("t1", "y", "r", "Y", 20, 30),
    ]
    b = [
        span("t2", "r", None, "R", 0, 100),
        span("t2", "y", "r", "Y", 1, 10),
        span("t2", "x", "r", "X", 20, 30),
    ]
    c = [
        span("t3", "r", None, "R", 0, 100),
        span("t3", "x", "r", "X", 1, 10),
        span("t3", "y", "x", "Y", 2, 9),
    ]
    d = [
        span("t4", "r", None, "R", 0, 100),
        span("t4", "x", "r", "X", 1, 10, "error"),
        span("t4", "y", "r", "Y", 20, 30),
    ]
    wl = _embed(a + b + c + d)
    assert (wl[0] == wl[1]).all()
    assert (wl[0] != wl[2]).any()
    assert (wl[0] != wl[3]).any()
