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
