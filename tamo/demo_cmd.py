"""``tamo demo``: the closed loop on a live agent platform, from fault to verified recovery.

What runs (all on loopback, all real processes): the testbed (``testbed.Testbed``: AgentRouter ...
WebhookDeliver, each its own process), a local Prometheus scraping every module and the repair
metrics, a load generator, and TAMO-RCA's closed loop (``tools.repair.closed_loop``) reading
spans from the embedded store (the testbed's OTLP JSON span files are tailed into it) and PromQL
from Prometheus. After a fault-free warm-up the scenario's fault is injected through the
testbed's control API; from then on the loop is on its own: it learns nothing about the fault
but what the telemetry shows. Scoring (``root_cause_correct``, ``strategy``) compares with the
testbed's fault catalogue only after the loop has spoken.

Why this module is long: it is the wiring of four packages plus the live rendering; every
decision it shows is made in ``tools/repair``.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from prometheus_client import start_http_server
from rich.panel import Panel
from rich.table import Table

from tamo.console import console, fail
from testbed.bed import Testbed
from testbed.catalog import FAULTS
from testbed.load import run_load_sync
from tools.core.errors import TamoError
from tools.core.fault_catalog import load_fault_catalog
from tools.core.settings import get_settings
from tools.repair import (
    AuditEntry,
    AuditLog,
    RepairExecutor,
    RepairMetrics,
    RuleEngine,
    SafetyPolicy,
    Verifier,
    auto_approver,
    load_strategies,
)
from tools.repair.executors import TestbedExecutor
from tools.telemetry.backends.prometheus import PrometheusClient
from tools.telemetry.ingest import parse_text
from tools.telemetry.local_prometheus import LocalPrometheus, free_loopback_port
from tools.telemetry.model import TimeWindow
from tools.telemetry.store import TelemetryStore

if TYPE_CHECKING:  # the loop's detector (torch) and the figures (matplotlib) load when a demo runs
    from tools.repair.closed_loop import ClosedLoop, LoopEvent
    from tools.repair.effect_plots import Figures


@dataclass(frozen=True)
class Scenario:
    name: str
    fault: str  # the testbed fault injected
    strategy: str  # the strategy a correct diagnosis leads to (for scoring only)
    summary: str


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            "llm-hang",
            "inference-hang",
            "executor_restart_fallback",
            "chapter 7: the model engine's queue wedges, inference hangs",
        ),
        Scenario(
            "model-timeout",
            "model-timeout",
            "model_fallback_switch",
            "a bad model version times out on every call",
        ),
        Scenario(
            "callback-failure",
            "callback-failure",
            "callback_skip_delivery",
            "the customer webhook endpoint is unreachable",
        ),
        Scenario(
            "retry-storm",
            "retry-storm",
            "callback_sender_restart",
            "CallbackSender re-submits every callback without backoff",
        ),
        Scenario(
            "state-write-error",
            "state-write-error",
            "state_snapshot_rollback",
            "the agent state store's head version is corrupt",
        ),
        Scenario(
            "span-drop",
            "span-drop",
            "span_exporter_restart",
            "LLMAdapter's span exporter overflows, its spans vanish",
        ),
        Scenario(
            "context-loss",
            "context-loss",
            "context_propagation_restart",
            "ModelExecutor loses the incoming trace context",
        ),
    )
}

STAGE_STYLE = {
    "baseline": "dim",
    "inject": "bold magenta",
    "detect": "bold red",
    "localize": "bold yellow",
    "strategy": "bold cyan",
    "approval": "bold green",
    "execute": "bold blue",
    "verify": "bold green",
    "rollback": "bold red",
    "report": "bold white",
}


class SpanTail(threading.Thread):
    """Ingests the testbed's OTLP JSON span files into the store every ``interval_s``.

    Each chunk of complete new lines is one store source (``file@offset``), so a chunk is
    written whole or not at all."""

    def __init__(self, spans_dir: Path, store: TelemetryStore, interval_s: float = 0.2) -> None:
        super().__init__(name="span-tail", daemon=True)
        self.dir, self.store, self.interval_s = spans_dir, store, interval_s
        self.offsets: dict[Path, int] = {}
        self.halt = threading.Event()
        self.error: Exception | None = None

    def poll(self) -> None:
        for f in sorted(self.dir.glob("*.jsonl")):
            start = self.offsets.get(f, 0)
            with f.open("rb") as fh:
                fh.seek(start)
                data = fh.read()
            cut = data.rfind(b"\n") + 1
            if cut <= 0:
                continue
            self.offsets[f] = start + cut
            spans = parse_text(data[:cut].decode("utf-8"), str(f), "otlp-json").spans
            if spans.num_rows:
                self.store.insert("spans", spans, f"{f.name}@{start}")

    def run(self) -> None:
        while not self.halt.wait(self.interval_s):
            try:
                self.poll()
            except Exception as exc:  # kept and reported at the end; the tail keeps going
                self.error = exc


class Load(threading.Thread):
    """Open-loop load: a new one-second burst every second, so a hang cannot stall arrivals."""

    def __init__(self, router_url: str, rate: float) -> None:
        super().__init__(name="load", daemon=True)
        self.url, self.rate = router_url, rate
        self.halt = threading.Event()
        self.bursts: list[threading.Thread] = []

    def run(self) -> None:
        n = 0
        while not self.halt.is_set():
            t = threading.Thread(
                target=run_load_sync,
                args=(self.url,),
                daemon=True,
                kwargs={
                    "rate": self.rate,
                    "duration_s": 1.0,
                    "prefix": f"demo-{n:04d}",
                    "timeout_s": 15.0,
                },
            )
            t.start()
            self.bursts.append(t)
            n += 1
            self.halt.wait(1.0)

    def stop(self) -> None:
        self.halt.set()


class Live:
    """Prints each stage of the loop as it happens (or nothing, headless)."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.t0: float | None = None
        self.events: list[dict[str, Any]] = []

    def line(self, stage: str, message: str, at: float | None = None, **data: Any) -> None:
        at = at or time.time()
        self.events.append({"stage": stage, "at": at, "message": message, **data})
        if self.quiet:
            return
        rel = f"+{at - self.t0:5.1f}s" if self.t0 else "  setup"
        style = STAGE_STYLE.get(stage, "")
        console.print(f"[dim]{rel}[/] [{style}]{stage.upper():<9}[/] {message}", highlight=False)

    def loop_event(self, e: LoopEvent) -> None:
        self.line(e.stage, e.message, e.at)
        if self.quiet:
            return
        for key in ("evidence", "reasons", "actions"):
            for item in e.data.get(key, []) or []:
                console.print(f"            · {item}", highlight=False, style="dim")

    def audit_event(self, e: AuditEntry) -> None:
        stage = {
            "approval": "approval",
            "action_intent": "execute",
            "action_result": "execute",
            "verify": "verify",
            "rollback_intent": "rollback",
            "rollback_result": "rollback",
            "precheck": "execute",
            "dry_run": "execute",
            "refused": "report",
            "finished": "report",
        }.get(e.event)
        if stage is None:
            return
        d = e.details
        if e.event == "approval":
            msg = f"{e.status} by {e.executed_by} ({d.get('reason', '')})"
        elif e.event == "verify":
            checks = ", ".join(
                f"{c['name']}={c['value'] if c['value'] is None else round(c['value'], 3)}"
                f"{'✓' if c['passed'] else '✗'}"
                for c in d.get("checks", [])
            )
            msg = f"{e.status} after {d.get('polls')} polls: {checks}"
        elif e.event == "finished":
            msg = f"repair {e.status} ({d['outcome'].get('reason', '')})"
        else:
            what = d.get("check") or f"{d.get('action', '')} {d.get('target', '')}"
            msg = f"{e.event.replace('_', ' ')} #{e.seq_no}: {what} -> {e.status}"
            if d.get("detail"):
                msg += f" ({d['detail']})"
        self.line(stage, msg, datetime.fromisoformat(e.ts).timestamp())


def _series(
    prom: PrometheusClient, start: float, end: float
) -> dict[str, list[tuple[float, float]]]:
    from tools.repair.effect_plots import effect_queries

    out: dict[str, list[tuple[float, float]]] = {}
    window = TimeWindow(
        start=datetime.fromtimestamp(start, tz=UTC), end=datetime.fromtimestamp(end, tz=UTC)
    )
    for name, q in effect_queries(3).items():
        try:
            t = prom.series(q, window, 1.0)
        except TamoError:
            out[name] = []
            continue
        pts = sorted(
            (ts / 1e9, v)
            for ts, v in zip(t["ts_ns"].to_pylist(), t["value"].to_pylist(), strict=True)
            if v == v
        )
        out[name] = pts
    return out


def run_scenario(
    name: str,
    out_dir: Path,
    *,
    quiet: bool = False,
    rate: float = 5.0,
    warmup_s: float = 6.0,
    detect_timeout_s: float = 30.0,
    after_s: float = 4.0,
    strategies: Path | None = None,
) -> dict[str, Any]:
    """Run one scenario end to end; returns the result dict (also written by ``--json``).

    ``strategies``: a strategy file or directory instead of the built-in library."""
    sc = SCENARIOS[name]
    out_dir.mkdir(parents=True, exist_ok=True)
    live = Live(quiet)
    store = TelemetryStore(None)
    audit = AuditLog(out_dir / "audit")
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
                live.line(
                    "baseline", f"prometheus scraping {len(targets)} targets at {prom_server.url}"
                )
                result.update(
                    _closed_loop(
                        sc,
                        tb,
                        store,
                        prom,
                        audit,
                        repair_metrics,
                        live,
                        out_dir,
                        rate,
                        warmup_s,
                        detect_timeout_s,
                        after_s,
                        RuleEngine(load_strategies(strategies)),
                    )
                )
    finally:
        server.shutdown()
        store.close()
    result["setup_seconds"] = round(time.time() - t_setup, 1)
    result["events"] = live.events
    return result


def _closed_loop(
    sc: Scenario,
    tb: Testbed,
    store: TelemetryStore,
    prom: PrometheusClient,
    audit: AuditLog,
    repair_metrics: RepairMetrics,
    live: Live,
    out_dir: Path,
    rate: float,
    warmup_s: float,
    detect_timeout_s: float,
    after_s: float,
    engine: RuleEngine,
) -> dict[str, Any]:
    from tools.repair.closed_loop import ClosedLoop
    from tools.repair.effect_plots import effect_queries, figures

    tail = SpanTail(tb.spans_dir, store)
    load = Load(tb.router_url, rate)
    runner = RepairExecutor(
        {"testbed": TestbedExecutor(tb.control_url)},
        audit,
        # The demo's detector is a trace vote, not a calibrated model: its evidence gate is
        # lowered here, on purpose and only here (production policies keep 0.8 and two
        # modalities or a knowledge-base match).
        SafetyPolicy(
            allow_targets=list(tb.urls),
            executed_by="auto-repair-engine",
            min_confidence=0.5,
            min_modalities=1,
        ),
        verifier=Verifier(prom, store),
        approver=auto_approver(),  # a person would be asked here
        metrics=repair_metrics,
        on_event=live.audit_event,
    )
    loop = ClosedLoop(
        store,
        prom,
        engine,
        runner,
        symptom_queries=effect_queries(3),
        on_event=live.loop_event,
        error_codes=load_fault_catalog(tb.catalog_path).error_codes,  # published by the testbed
    )
    out: dict[str, Any] = {}
    tail.start()
    load.start()
    try:
        t_load = time.time()
        time.sleep(warmup_s)
        loop.learn_baseline(warmup_s - 0.5)
        quiet_check = loop.watch(timeout_s=1.5)
        if quiet_check is not None:
            out["false_alarm_before_injection"] = quiet_check.diagnosis.label
        t_inj = time.time()
        live.t0 = t_inj
        tb.client.inject(sc.fault)
        live.line("inject", f"fault {sc.fault!r} injected ({sc.summary})", t_inj)
        det = loop.watch(timeout_s=detect_timeout_s)
        if det is None:
            live.line("report", f"nothing detected within {detect_timeout_s:.0f}s")
            return out
        d = det.diagnosis
        truth = FAULTS[sc.fault].target
        out.update(
            detected=True,
            detect_seconds=round(det.detected_at - t_inj, 2),
            root_cause=d.label,
            root_cause_correct=d.component == truth,
            diagnosis=d.model_dump(mode="json"),
        )
        t_repair = time.time()
        plan, outcome = loop.repair(d)
        if plan is None or outcome is None:
            return out
        t_done = time.time()
        out.update(
            strategy=plan.strategy_id,
            strategy_correct=plan.strategy_id == sc.strategy,
            repair_status=outcome.status,
            recovered=outcome.recovered,
            rollback_applied=outcome.rollback_applied,
            reason=outcome.reason,
            audit_ids=outcome.audit_ids,
        )
        if outcome.recovered:
            out["mttr_seconds"] = round(t_done - t_inj, 2)
        time.sleep(after_s)
        t_after = time.time()
        before = figures(prom, t_inj, max(t_repair, t_inj + 2.0))
        after = figures(prom, t_done, t_after)
        baseline = figures(prom, t_load + 1.0, t_inj)
        out.update(
            before=before.model_dump(), after=after.model_dump(), baseline=baseline.model_dump()
        )
        _artifacts(
            sc,
            loop,
            store,
            prom,
            out_dir,
            t_load,
            t_inj,
            det.detected_at,
            t_repair,
            t_done,
            t_after,
            before,
            after,
            out,
        )
        return out
    finally:
        load.stop()
        tail.halt.set()
        if tail.error is not None:
            out["span_ingest_error"] = str(tail.error)


def _artifacts(
    sc: Scenario,
    loop: ClosedLoop,
    store: TelemetryStore,
    prom: PrometheusClient,
    out_dir: Path,
    t_load: float,
    t_inj: float,
    t_det: float,
    t_repair: float,
    t_done: float,
    t_after: float,
    before: Figures,
    after: Figures,
    out: dict[str, Any],
) -> None:
    from tools.repair.detect import complete_traces
    from tools.repair.effect_plots import effect_plot, heatmap, write_dashboard

    window = TimeWindow(
        start=datetime.fromtimestamp(t_load, tz=UTC), end=datetime.fromtimestamp(t_after, tz=UTC)
    )
    spans = complete_traces(store.spans(window), time.time_ns())
    anomalies = loop.detector.judge(spans).anomalies if loop.detector and spans.num_rows else []
    counts = heatmap(
        anomalies,
        out_dir / "heatmap.png",
        bucket_s=10,
        title=f"{sc.name}: anomalous traces per module (10 s buckets)",
    )
    heatmap(
        anomalies,
        out_dir / "heatmap_minute.png",
        bucket_s=60,
        title=f"{sc.name}: anomalous traces per module and minute",
    )
    marks = {"inject": t_inj, "detect": t_det, "repair": t_repair, "verified": t_done}
    effect_plot(
        _series(prom, t_load, t_after),
        marks,
        before,
        after,
        out_dir / "repair_effect.png",
        title=f"{sc.name}: repair effect",
    )
    write_dashboard(out_dir / "grafana_dashboard.json")
    out["artifacts"] = {
        k: str(out_dir / f)
        for k, f in (
            ("heatmap", "heatmap.png"),
            ("heatmap_minute", "heatmap_minute.png"),
            ("repair_effect", "repair_effect.png"),
            ("grafana", "grafana_dashboard.json"),
            ("audit", "audit/audit.jsonl"),
        )
    }
    out["heatmap_counts"] = counts


def _pct(v: float | None, ratio: bool) -> str:
    if v is None:
        return "-"
    return f"{v * 100:.1f}%" if ratio else f"{v:.2f}s"


def show_result(res: dict[str, Any], audit: AuditLog) -> None:
    t = Table(title="before / after (PromQL over the testbed's metrics)")
    t.add_column("metric")
    for col in ("baseline", "incident", "after repair"):
        t.add_column(col, justify="right")
    for key, ratio in (
        ("p95_latency_s", False),
        ("failure_rate", True),
        ("callback_success_rate", True),
    ):
        t.add_row(
            key, *(_pct(res.get(k, {}).get(key), ratio) for k in ("baseline", "before", "after"))
        )
    console.print(t)
    a = Table(title="audit entries of this repair", box=None)
    for col in ("seq", "event", "no", "status", "by", "detail"):
        a.add_column(col)
    ids = set(res.get("audit_ids", []))
    for e in audit.entries():
        if e.entry_id in ids:
            detail = e.details.get("detail") or e.details.get("reason") or e.details.get("check")
            a.add_row(
                str(e.seq),
                e.event,
                "" if e.seq_no is None else str(e.seq_no),
                e.status,
                e.executed_by,
                str(detail or "")[:70],
            )
    console.print(a)
    ok = res["recovered"] and res["root_cause_correct"]
    colour = "green" if ok else "red"
    console.print(
        Panel(
            f"scenario {res['scenario']}: root cause {res['root_cause']} "
            f"({'correct' if res['root_cause_correct'] else 'WRONG'}), strategy {res['strategy']}, "
            f"{'recovered and verified' if res['recovered'] else 'NOT recovered'}, "
            f"MTTR {res['mttr_seconds']} s (seed chapter 7: 37 s)\n"
            f"artifacts: {', '.join(res.get('artifacts', {}).values())}",
            border_style=colour,
        )
    )


def demo(
    scenario: str = typer.Option("llm-hang", "--scenario", help="see --list-scenarios"),
    list_scenarios: bool = typer.Option(False, "--list-scenarios", help="list and exit"),
    headless: bool = typer.Option(False, "--headless", help="no live output"),
    json_out: Path | None = typer.Option(None, "--json", help="write the result JSON here"),
    out_dir: Path | None = typer.Option(None, "--out", help="artifacts directory"),
    rate: float = typer.Option(5.0, "--rate", help="tasks per second of load"),
    strategies: Path | None = typer.Option(
        None, "--strategies", help="strategy file/directory instead of the built-in library"
    ),
) -> None:
    """Break a live agent platform, let TAMO-RCA find, repair and verify it, and show the audit."""
    if list_scenarios:
        for s in SCENARIOS.values():
            console.print(f"{s.name:<18} {s.summary}", highlight=False)
        return
    if scenario not in SCENARIOS:
        fail(f"unknown scenario {scenario!r}; scenarios: {', '.join(SCENARIOS)}")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out_dir = out_dir or get_settings().data_dir / "demo" / f"{scenario}-{stamp}"
    if not headless:
        console.rule(f"TAMO-RCA closed-loop demo: {scenario}")
    res = run_scenario(scenario, out_dir, quiet=headless, rate=rate, strategies=strategies)
    if json_out is not None:
        slim = {k: v for k, v in res.items() if k not in ("events",)}
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(slim, indent=2, default=str))
    if not headless:
        show_result(res, AuditLog(out_dir / "audit"))
    if not res["recovered"]:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)


__all__ = ["SCENARIOS", "Scenario", "register", "run_scenario"]
