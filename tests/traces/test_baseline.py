"""Normal structure: each module's usual parent and which modules are client spans."""

from __future__ import annotations

from tests.traces.conftest import span, spans
from tools.traces import TraceConfig
from tools.traces.baseline import ModuleBaseline
from tools.traces.reconstruct import reconstruct

MS = 1_000_000


def test_usual_parent_and_client_modules() -> None:
    rows = []
    for i in range(20):
        t = f"t{i}"
        rows += [
            span(t, "a", None, "gw", 0, 100 * MS, op="in"),
            span(t, "b", "a", "gw", 1 * MS, 90 * MS, op="out"),  # gw's client span
            span(t, "c", "b", "model", 2 * MS, 80 * MS, op="infer"),
        ]
        if i % 4 == 0:  # a minority of "infer" spans run elsewhere: still a clear usual parent
            rows.append(span(t, "d", "a", "model", 91 * MS, 95 * MS, op="infer"))
    forest, _ = reconstruct(spans(rows))
    base = ModuleBaseline.fit(forest, TraceConfig())
    idx = base.index
    assert base.usual_parent[idx["model::infer"]] == idx["gw::out"]
    assert base.usual_parent[idx["gw::out"]] == idx["gw::in"]
    assert base.usual_parent[idx["gw::in"]] == -1  # a root has none
    assert base.client_like.tolist() == [name == "gw::out" for name in base.names]


def test_back_off_after_a_failed_call_does_not_widen_the_self_time_tail() -> None:
    """A supervisor whose call is refused once and retried 100 ms later waited, it was not slow:
    those spans stay out of its self-time tail, so a slow supervisor still stands out."""
    rows = []
    for i in range(200):
        t, own = f"t{i}", (5 + i % 3) * MS  # 5-7 ms of own work around one 50 ms call
        if i % 10 == 0:  # one in ten: a refused attempt, 100 ms of back-off, then the call
            rows += [
                span(t, "s", None, "sup", 0, own + 150 * MS, op="supervise"),
                span(t, "x", "s", "llm", own // 2, own // 2 + MS, status="error", op="chat"),
                span(t, "c", "s", "llm", own // 2 + 100 * MS, own // 2 + 150 * MS, op="chat"),
            ]
        else:
            rows += [
                span(t, "s", None, "sup", 0, own + 50 * MS, op="supervise"),
                span(t, "c", "s", "llm", own // 2, own // 2 + 50 * MS, op="chat"),
            ]
    forest, _ = reconstruct(spans(rows))
    base = ModuleBaseline.fit(forest, TraceConfig())
    sup = base.index["sup::supervise"]
    # 5-7 ms of self time: the tail is a few MADs wide, not the 100 ms back-off's ~20
    assert 0 < base.tail_self_z[sup] < 5
