"""One ``tamo demo`` scenario on a live agent platform, from fault to verified recovery.

What runs (all on loopback, all real processes): the testbed (``testbed.Testbed``, each module
its own process), a local Prometheus scraping every module and the repair metrics, open-loop
load, a tail of the testbed's OTLP JSON span files into the embedded store, the live trace
watcher (:mod:`tools.traces.alerting`) and, when it raises an alert, the investigation graph
``tamo diagnose`` runs (:func:`agent.respond.respond`): the graph localizes, classifies, plans,
pauses for approval (answered by this process's own OS account, which the run puts on the
policy's only approver), executes, verifies and rolls back.

The scenarios are the faults of the catalogue the testbed publishes (data read through
``tools.core.fault_catalog``). Scoring compares with that catalogue only after the loop has
spoken: the root cause against the fault's target, the plan's actions against the actions the
catalogue says clear or bypass the fault.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prometheus_client import start_http_server

from agent.graph import sqlite_checkpointer
from agent.respond import respond
from agent.run import Investigation, Investigator
from tamo.demo_catalog import treats
from tamo.demo_render import Live
from testbed.bed import Testbed
from testbed.load import OpenLoopLoad
from tools.core.errors import TamoError
from tools.core.fault_catalog import load_fault_catalog
from tools.repair import AuditLog, RepairMetrics, SafetyPolicy, Verifier, load_strategies
from tools.repair.effect_plots import effect_plot, effect_queries, figures, heatmap, write_dashboard
from tools.repair.executors import TestbedExecutor
from tools.repair.identity import os_principal
from tools.telemetry.backends.prometheus import PrometheusClient
from tools.telemetry.local_prometheus import LocalPrometheus, free_loopback_port
from tools.telemetry.model import TimeWindow
from tools.telemetry.sources import MetricQuery
from tools.telemetry.span_tail import SpanTail
from tools.telemetry.store import TelemetryStore
from tools.toolbox.context import ToolContext
from tools.toolbox.repair import RepairSetup, configure
from tools.traces.alerting import TraceWatcher

# Fault-free traffic to learn normal from: at 5 tasks/s about 100 traces, enough that a model
# fitted on half of them bounds how often fresh normal traffic is blamed on a service (with 25
# traces, half the fresh ones look anomalous to such a model).
WARMUP_S = 20.0


def _series(
    prom: PrometheusClient, start: float, end: float
) -> dict[str, list[tuple[float, float]]]:
    out: dict[str, list[tuple[float, float]]] = {}
    window = _span(start, end)
    for name, q in effect_queries(3).items():
        try:
            t = prom.series(MetricQuery(q, window, step_s=1.0))
        except TamoError:
            out[name] = []
            continue
        pts = zip(t["ts_ns"].to_pylist(), t["value"].to_pylist(), strict=True)
        out[name] = sorted((ts / 1e9, v) for ts, v in pts if v == v)
    return out


def _span(start: float, end: float) -> TimeWindow:
    return TimeWindow(
        start=datetime.fromtimestamp(start, tz=UTC), end=datetime.fromtimestamp(end, tz=UTC)
    )


def run_scenario(
    name: str,
    out_dir: Path,
    *,
    quiet: bool = False,
    rate: float = 5.0,
    warmup_s: float = WARMUP_S,
    detect_timeout_s: float = 30.0,
    after_s: float = 4.0,
    strategies: Path | None = None,
    params: dict[str, float] | None = None,
    seed: int = 1,
) -> dict[str, Any]:
    """Run one scenario end to end; returns the result dict (also written by ``--json``).

    ``strategies``: a strategy file or directory instead of the built-in library; ``params``:
    the fault's parameters (its intensity) instead of the catalogue's; ``seed``: the load's
    task ids, and with them each task's timings."""
    out_dir.mkdir(parents=True, exist_ok=True)
    live = Live(quiet)
    store = TelemetryStore(None)
    repair_metrics = RepairMetrics()
    metrics_port = free_loopback_port()
    server, _ = start_http_server(metrics_port, addr="127.0.0.1", registry=repair_metrics.registry)
    result: dict[str, Any] = {
        "scenario": name,
        "detected": False,
        "root_cause": None,
        "root_cause_correct": False,
        "strategy": None,
        "recovered": False,
        "mttr_seconds": None,
        "before": {},
        "after": {},
        "audit_ids": [],
    }
    t_setup = time.time()
    try:
        with Testbed(out_dir / "testbed", spans_jsonl=True) as tb:
            live.line(
                "baseline", f"testbed up: {len(tb.urls)} modules ({time.time() - t_setup:.1f}s)"
            )
            targets = [*tb.metrics_targets, f"tamo_repair=127.0.0.1:{metrics_port}"]
            with LocalPrometheus(
                out_dir / "prometheus", scrape_targets=targets, scrape_interval_s=1.0
            ) as prom_server:
                prom = PrometheusClient(prom_server.url)
                live.line("baseline", f"prometheus scraping {len(targets)} targets")
                scenario = _Scenario(name, tb, store, prom, live, out_dir, repair_metrics)
                scenario.params, scenario.load_prefix = params or {}, _load_prefix(seed)
                result.update(scenario.run(rate, warmup_s, detect_timeout_s, after_s, strategies))
    finally:
        server.shutdown()
        store.close()
    result.update(params=params or {}, seed=seed, rate=rate)
    result["setup_seconds"] = round(time.time() - t_setup, 1)
    result["events"] = live.events
    return result


def _load_prefix(seed: int) -> str:
    """Task ids of the load (the testbed derives each task's timings from its id)."""
    return "demo" if seed == 1 else f"demo{seed}"


class _Scenario:
    """The wiring of one run: sources, repair setup, watcher and investigator over one testbed."""

    def __init__(
        self,
        name: str,
        tb: Testbed,
        store: TelemetryStore,
        prom: PrometheusClient,
        live: Live,
        out_dir: Path,
        repair_metrics: RepairMetrics,
    ) -> None:
        self.catalog = load_fault_catalog(tb.catalog_path)  # as the testbed published it
        self.fault = self.catalog.faults[name]
        self.tb, self.store, self.prom, self.live, self.out_dir = tb, store, prom, live, out_dir
        self.audit = AuditLog(out_dir / "audit")
        self.verifier = Verifier(prom, store)
        self.repair_metrics = repair_metrics
        self.watcher = TraceWatcher(store, error_codes=self.catalog.error_codes)
        self.approver = os_principal()  # the demo's own account answers the approval pause
        self.params: dict[str, float] = {}
        self.load_prefix = _load_prefix(1)

    def investigator(self, strategies: Path | None) -> Investigator:
        ctx = ToolContext(self.store, self.store, self.prom)
        configure(
            ctx,
            RepairSetup(
                strategies=load_strategies(strategies),
                executors={"testbed": TestbedExecutor(self.tb.control_url)},
                # The live triage is a trace vote, not a calibrated model: the evidence gate is
                # lowered here, on purpose and only here (production policies keep 0.8 and two
                # modalities or a knowledge-base match). Only this process's account approves.
                policy=SafetyPolicy(
                    allow_targets=list(self.tb.urls),
                    approvers=[self.approver],
                    executed_by="tamo-agent",
                    min_confidence=0.5,
                    min_modalities=1,
                    accept_uncalibrated=True,
                ),
                audit=self.audit,
                verifier=self.verifier,
                metrics=self.repair_metrics,
                on_audit=self.live.audit_event,
            ),
        )
        return Investigator(
            ctx,
            checkpointer=sqlite_checkpointer(self.out_dir / "checkpoints.sqlite"),
            on_event=self.live.graph_event,
        )

    def run(
        self,
        rate: float,
        warmup_s: float,
        detect_timeout_s: float,
        after_s: float,
        strategies: Path | None,
    ) -> dict[str, Any]:
        tail = SpanTail(self.tb.spans_dir, self.store)
        load = OpenLoopLoad(self.tb.router_url, rate, prefix=self.load_prefix)
        investigator = self.investigator(strategies)
        self.live.line("baseline", f"repairs approved by {self.approver}, this run's only approver")
        out: dict[str, Any] = {}
        tail.start()
        load.start()
        try:
            t_load = time.time()
            time.sleep(warmup_s)
            self.watcher.expect_lateness(tail.lateness_s())
            n = self.watcher.learn_baseline(warmup_s - 0.5)
            self.verifier.baseline = self.watcher.baseline  # "no worse than normal" checks
            w = self.watcher
            assert w.detector is not None
            self.live.line(
                "baseline",
                f"learned normal behaviour from {n} fault-free traces: "
                f"{w.detector.normal_anomalous}/{n} look anomalous to a model that did not learn "
                f"them; each service's alarm fires at {w.h:.1f} nats of evidence "
                f"({w.false_alarms_per_day:g} false alarm/day in all); spans arrive up to "
                f"{w.settle_s:.2f}s late",
            )
            quiet = self.watcher.watch(timeout_s=1.5)
            if quiet is not None:
                out["false_alarm_before_injection"] = f"{quiet.suspect}.{quiet.fault_type}"
            t_inj = time.time()
            self.live.t0 = t_inj
            self.tb.client.inject(self.fault.name, **self.params)
            self.live.line("inject", f"fault {self.fault.name!r} ({self.fault.description})", t_inj)
            alert = self.watcher.watch(timeout_s=detect_timeout_s)
            if alert is None:
                self.live.line("report", f"nothing detected within {detect_timeout_s:.0f}s")
                return out
            self.live.line(
                "detect",
                f"{alert.anomalous}/{alert.traces} recent traces are anomalous",
                alert.raised_at,
                alert.evidence(),
            )
            out.update(detected=True, detect_seconds=round(alert.raised_at - t_inj, 2))
            self.verifier.incident = alert.incident  # "back to normal" is weighed against it
            inv = respond(investigator, alert, self.approver, system=self.catalog.system)
            t_done = time.time()
            out.update(self._score(inv, t_inj, t_done))
            time.sleep(after_s)
            self._figures(out, t_load, t_inj, alert.raised_at, t_done)
            return out
        finally:
            load.stop()
            tail.halt.set()
            if tail.error is not None:
                out["span_ingest_error"] = str(tail.error)

    def _score(self, inv: Investigation, t_inj: float, t_done: float) -> dict[str, Any]:
        """The investigation's answer, then (only then) compared with the catalogue."""
        s = inv.state
        out: dict[str, Any] = {"investigation": inv.thread_id}
        ranking, view = s.get("ranking"), s.get("plan") or {}
        plan = view.get("plan")
        if plan is not None:
            d = plan["diagnosis"]
            out["root_cause"] = f"{d['module'] or d['service']}.{d['fault_type']}"
            out["diagnosis"] = d
        elif ranking is not None and ranking.ranking:
            out["root_cause"] = ranking.ranking[0].entity
        top = ranking.ranking[0].entity if ranking is not None and ranking.ranking else None
        out["root_cause_correct"] = top == self.fault.target
        if plan is None:
            self.live.line("strategy", "no strategy applies", details=view.get("reasons"))
            return out
        out.update(strategy=plan["strategy_id"], strategy_correct=treats(plan, self.fault))
        ex = s.get("execution") or {}
        verified = (s.get("verification") or {}).get("ok", False)
        recovered = ex.get("status") == "success" and verified
        out.update(
            verification=s.get("verification"),
            repair_status=ex.get("status"),
            recovered=recovered,
            rollback_applied=bool(ex.get("rolled_back")),
            reason=ex.get("detail", ""),
            audit_ids=[e.entry_id for e in self.audit.entries() if e.task_id == plan["task_id"]],
        )
        if recovered:
            out["mttr_seconds"] = round(t_done - t_inj, 2)
        out["repair_seconds"] = round(t_done - s.get("started_at", t_done), 2)
        return out

    def _figures(
        self, out: dict[str, Any], t_load: float, t_inj: float, t_det: float, t_done: float
    ) -> None:
        """Before/after figures, the heatmaps, the repair-effect plot and the dashboard."""
        t_after = time.time()
        before = figures(self.prom, t_inj, max(t_det, t_inj + 2.0))
        after = figures(self.prom, t_done, t_after)
        baseline = figures(self.prom, t_load + 1.0, t_inj)
        out.update(
            before=before.model_dump(), after=after.model_dump(), baseline=baseline.model_dump()
        )
        anomalies = self.watcher.anomalies(_span(t_load, t_after))
        name, d = self.fault.name, self.out_dir
        counts = heatmap(
            anomalies,
            d / "heatmap.png",
            bucket_s=10,
            title=f"{name}: anomalous traces per module (10 s buckets)",
        )
        heatmap(
            anomalies,
            d / "heatmap_minute.png",
            bucket_s=60,
            title=f"{name}: anomalous traces per module and minute",
        )
        marks = {"inject": t_inj, "detect": t_det, "verified": t_done}
        effect_plot(
            _series(self.prom, t_load, t_after),
            marks,
            before,
            after,
            d / "repair_effect.png",
            title=f"{name}: repair effect",
        )
        write_dashboard(d / "grafana_dashboard.json")
        out["artifacts"] = {
            k: str(d / f)
            for k, f in (
                ("heatmap", "heatmap.png"),
                ("heatmap_minute", "heatmap_minute.png"),
                ("repair_effect", "repair_effect.png"),
                ("grafana", "grafana_dashboard.json"),
                ("audit", "audit/audit.jsonl"),
            )
        }
        out["heatmap_counts"] = counts
