"""The live alert on fault-free traffic: how often does it page when nothing is wrong?

Why a run of its own: a detector that fires within a second of a fault is only worth having if
it stays quiet on normal traffic, and that rate is measured, not assumed. This starts the same
testbed, load, span tail and :class:`~tools.traces.alerting.TraceWatcher` as ``tamo demo``
(same warm-up, same baseline), injects nothing, and counts the alerts raised over
``duration_s``; each alert restarts the alarms, as after a real one.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from tamo.demo_scenario import WARMUP_S
from testbed.bed import Testbed
from testbed.load import OpenLoopLoad
from tools.core.fault_catalog import load_fault_catalog
from tools.telemetry.span_tail import SpanTail
from tools.telemetry.store import TelemetryStore
from tools.traces.alerting import TraceWatcher


def watch_fault_free(
    out_dir: Path, duration_s: float, *, rate: float = 5.0, warmup_s: float = WARMUP_S
) -> dict[str, Any]:
    """Alerts raised on ``duration_s`` of fault-free load, with what each one blamed."""
    store = TelemetryStore(None)
    alerts: list[str] = []
    try:
        with Testbed(out_dir / "testbed", spans_jsonl=True) as tb:
            catalog = load_fault_catalog(tb.catalog_path)
            watcher = TraceWatcher(store, error_codes=catalog.error_codes)
            tail = SpanTail(tb.spans_dir, store)
            load = OpenLoopLoad(tb.router_url, rate)
            tail.start()
            load.start()
            try:
                time.sleep(warmup_s)
                watcher.expect_lateness(tail.lateness_s())
                learned = watcher.learn_baseline(warmup_s - 0.5)
                t0 = time.time()
                while (left := duration_s - (time.time() - t0)) > 0:
                    alert = watcher.watch(timeout_s=left)
                    if alert is not None:
                        alerts.append(f"{alert.suspect}.{alert.fault_type}")
                watched = time.time() - t0
                observed = watcher.observed
            finally:
                load.stop()
                tail.halt.set()
    finally:
        store.close()
    return {
        "baseline_traces": learned,
        "baseline_anomalous_held_out": watcher.detector.normal_anomalous
        if watcher.detector
        else None,
        "span_lateness_s": round(watcher.settle_s, 3),
        "watched_seconds": round(watched, 1),
        "traces_judged": observed,
        "alerts": len(alerts),
        "alerts_per_hour": round(len(alerts) * 3600 / watched, 1),
        "blamed": alerts,
    }
