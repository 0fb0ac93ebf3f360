"""Multi-trace correlation (Louvain) and alert linkage (sliding window)."""

from __future__ import annotations

from tools.traces.alerts import AlertLinker
from tools.traces.correlate import correlate


def test_shared_model_version_is_found() -> None:
    traces = {
        f"bad{i}": ("LLMAdapter::chat", {"model.version": "v3.1.7", "agent.id": f"a{i}"})
        for i in range(8)
    }
    traces |= {
        f"other{i}": ("WebhookDeliver::POST", {"model.version": f"v{i}", "kv.key": "ctx-1"})
        for i in range(5)
    }
    found = correlate(traces, min_traces=3)
    top = found[0]
    assert top.n_traces == 8 and top.coverage == 1.0
    assert top.shared_node in {"model.version=v3.1.7", "root=LLMAdapter::chat"}
    assert set(top.trace_ids) == {f"bad{i}" for i in range(8)}
    assert any(c.shared_node in {"kv.key=ctx-1", "root=WebhookDeliver::POST"} for c in found[1:])


def test_alert_after_more_than_n_in_window() -> None:
    linker = AlertLinker(threshold=10, window_s=300)
    s = 1_000_000_000
    got = [linker.observe("fp", i * 10 * s, f"t{i}", "A::x", "error") for i in range(11)]
    assert got[:10] == [None] * 10
    assert got[10] is not None and got[10].count == 11 and got[10].trace_ids[0] == "t0"
    # after an incident the count restarts
    assert linker.observe("fp", 111 * s, "t11", "A::x", "error") is None


def test_no_alert_when_spread_out() -> None:
    linker = AlertLinker(threshold=10, window_s=300)
    s = 1_000_000_000
    assert all(
        linker.observe("fp", i * 60 * s, f"t{i}", "A::x", "error") is None for i in range(30)
    )
