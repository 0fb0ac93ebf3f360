"""The live alert source over a real store: quiet on normal traffic, an alert naming the suspect,
its codes and the last good task once broken traces arrive."""

from __future__ import annotations

import random
import time

import pytest

from testbed.catalog import catalog_document
from tests.traces.test_live import table, trace
from tools.core.errors import TamoError
from tools.core.fault_catalog import FaultCatalog
from tools.telemetry.store import TelemetryStore
from tools.traces.alerting import TraceWatcher


def _recent(
    first: int, n: int, since_s: float, until_s: float, rng: random.Random, **fault: object
):
    """``n`` traces spread from ``since_s`` to ``until_s`` seconds ago (all ended by then)."""
    t0 = time.time_ns() - int(since_s * 1e9)
    step = int((since_s - until_s) * 1e9 / (n + 1))
    return table([r for i in range(n) for r in trace(first + i, t0 + i * step, rng=rng, **fault)])


def test_quiet_on_normal_then_an_alert_for_the_broken_module() -> None:
    rng = random.Random(3)
    store = TelemetryStore(None)
    try:
        store.insert("spans", _recent(0, 120, 30.0, 10.0, rng), "baseline")
        meanings = FaultCatalog.model_validate(catalog_document()).error_codes
        w = TraceWatcher(store, error_codes=meanings, window_s=8.0, poll_s=0.05)
        assert w.learn_baseline(31.0) == 120 and w.baseline is not None
        assert w.watch(timeout_s=0.3) is None  # normal traffic raises nothing
        broken = _recent(5000, 30, 2.0, 0.5, rng, error={"AgentRouter": "STATE_WRITE_ERROR"})
        store.insert("spans", broken, "incident")
        alert = w.watch(timeout_s=5.0)
        assert alert is not None
        assert (alert.suspect, alert.fault_type) == ("AgentRouter", "state_write_error")
        assert alert.error_codes[0] == "STATE_WRITE_ERROR" and alert.baseline == w.baseline
        assert alert.last_good_task_id is not None and alert.last_good_task_id.startswith("task-")
        assert alert.window.end.timestamp() <= alert.raised_at
    finally:
        store.close()


def test_watching_before_learning_is_a_clear_error() -> None:
    store = TelemetryStore(None)
    try:
        with pytest.raises(TamoError, match="learn_baseline first"):
            TraceWatcher(store).watch(timeout_s=0.1)
        with pytest.raises(TamoError, match="no complete traces"):
            TraceWatcher(store).learn_baseline(5.0)
    finally:
        store.close()
