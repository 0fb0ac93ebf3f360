"""The tool context's cache: bounded for a long-lived server, remembered state never evicted."""

from __future__ import annotations

from tools.telemetry.store import TelemetryStore
from tools.toolbox.context import MAX_CACHED, ToolContext


def test_cached_results_are_bounded_least_recently_used_first() -> None:
    store = TelemetryStore(None)
    ctx = ToolContext(traces=store, logs=store, metrics=store)
    ctx.remember("topology", "declared")
    computed: list[str] = []

    def compute(key: str) -> object:
        return ctx.cached(key, lambda: computed.append(key) or key)

    compute("models")
    for i in range(MAX_CACHED * 2):
        compute(f"fused:{i}")
        compute("models")  # touched by every diagnosis: stays
    assert computed.count("models") == 1
    compute("fused:0")  # evicted long ago: computed again
    assert computed.count("fused:0") == 2
    compute(f"fused:{MAX_CACHED * 2 - 1}")  # recent: still there
    assert computed.count(f"fused:{MAX_CACHED * 2 - 1}") == 1
    assert ctx.recall("topology") == "declared"
    assert len([k for k in ctx._cache if k.startswith("fused:")]) < MAX_CACHED
