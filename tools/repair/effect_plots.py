"""Repair effect and anomaly views (seed chapter 9): before/after figures, heatmap, plots, Grafana.

Why PromQL for the figures: the before/after table must be the numbers an SRE would see on the
dashboard, so they are computed by the same PromQL the Grafana JSON below puts in its panels
(P95 task latency, task failure rate, callback success rate), over the incident window and over
a window after verified recovery. The PNGs are drawn with matplotlib's Agg backend (no display).
"""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from pydantic import BaseModel

from tools.core.errors import TamoError
from tools.repair.verify import latest_worst
from tools.telemetry.model import TimeWindow
from tools.telemetry.sources import MetricQuery, MetricSource

ROOT_MODULE = "AgentRouter"


def effect_queries(window_s: float, root: str = ROOT_MODULE) -> dict[str, str]:
    """PromQL of the effect figures over the last ``window_s`` seconds (``[Ns]`` ranges)."""
    w = f"{max(round(window_s), 2)}s"
    sel = f'module="{root}"'
    return {
        "p95_latency_s": "histogram_quantile(0.95, sum by (le) "
        f"(increase(agent_task_latency_seconds_bucket{{{sel}}}[{w}])))",
        "failure_rate": f'(sum(increase(agent_task_total{{{sel},status="failed"}}[{w}])) '
        f"or vector(0)) / sum(increase(agent_task_total{{{sel}}}[{w}]))",
        "callback_success_rate": f"(sum(increase(callback_success_total[{w}])) or vector(0)) / "
        f"((sum(increase(callback_success_total[{w}])) or vector(0)) + "
        f"(sum(increase(callback_failure_total[{w}])) or vector(0)))",
    }


class Figures(BaseModel):
    p95_latency_s: float | None = None
    failure_rate: float | None = None
    callback_success_rate: float | None = None


def figures(metrics: MetricSource, start: float, end: float) -> Figures:
    """The effect figures over [start, end] (unix seconds), evaluated at ``end``."""
    out: dict[str, float | None] = {}
    end_dt = datetime.fromtimestamp(end, tz=UTC)
    window = TimeWindow(start=datetime.fromtimestamp(end - 0.5, tz=UTC), end=end_dt)
    for name, q in effect_queries(end - start).items():
        try:
            v = latest_worst(metrics.series(MetricQuery(q, window, step_s=0.5)), ">")
        except TamoError:
            v = None
        out[name] = None if v is None or v != v else round(v, 4)
    return Figures(**out)


def heatmap(
    anomalies: list[tuple[str, str, int]], out: Path, bucket_s: int = 60, title: str = ""
) -> dict[str, dict[str, int]]:
    """PNG of anomalous-trace counts per module (rows) and time bucket (columns, default one
    minute, the seed's granularity); returns the counts ``{module: {bucket_start_iso: n}}``."""
    counts: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    for _, module, start_ns in anomalies:
        counts[module][int(start_ns // 1e9 // bucket_s * bucket_s)] += 1
    modules = sorted(counts)
    buckets = sorted({b for m in counts.values() for b in m})
    grid = np.array([[counts[m].get(b, 0) for b in buckets] for m in modules] or [[0]])
    fig, ax = plt.subplots(figsize=(max(4, 1.2 * len(buckets) + 3), 0.5 * len(modules) + 2))
    im = ax.imshow(grid, cmap="Reds", aspect="auto")
    ax.set_yticks(range(len(modules)), modules or ["(none)"])
    labels = [datetime.fromtimestamp(b, tz=UTC).strftime("%H:%M:%S") for b in buckets]
    ax.set_xticks(range(len(buckets)), labels or ["-"], rotation=45, ha="right")
    for (i, j), v in np.ndenumerate(grid):
        if v:
            ax.text(j, i, str(v), ha="center", va="center", fontsize=8)
    ax.set_title(title or f"anomalous traces per module and {bucket_s}s")
    fig.colorbar(im, ax=ax, label="anomalous traces")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return {
        m: {datetime.fromtimestamp(b, tz=UTC).isoformat(): n for b, n in sorted(counts[m].items())}
        for m in modules
    }


def effect_plot(
    series: dict[str, list[tuple[float, float]]],
    marks: dict[str, float],
    before: Figures,
    after: Figures,
    out: Path,
    title: str = "",
) -> None:
    """PNG: the effect figures over time with the loop's milestones, and a before/after bar."""
    names = list(series)
    fig, axes = plt.subplots(len(names) + 1, 1, figsize=(9, 2.2 * (len(names) + 1)))
    t0 = min((p[0] for pts in series.values() for p in pts), default=0.0)
    for ax, name in zip(axes, names, strict=False):
        pts = series[name]
        if pts:
            ax.plot([p[0] - t0 for p in pts], [p[1] for p in pts], lw=1.5)
        for label, at in marks.items():
            ax.axvline(at - t0, ls="--", lw=0.8, color="grey")
            ax.text(at - t0, ax.get_ylim()[1], label, fontsize=7, rotation=90, va="top")
        ax.set_ylabel(name, fontsize=8)
    axes[-2].set_xlabel("seconds")
    ax = axes[-1]
    keys = list(Figures.model_fields)
    b = [getattr(before, k) or 0.0 for k in keys]
    a = [getattr(after, k) or 0.0 for k in keys]
    x = np.arange(len(keys))
    ax.bar(x - 0.2, b, 0.4, label="incident", color="tab:red")
    ax.bar(x + 0.2, a, 0.4, label="after repair", color="tab:green")
    ax.set_xticks(x, keys, fontsize=8)
    ax.legend(fontsize=8)
    fig.suptitle(title or "repair effect")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def grafana_dashboard(title: str = "TAMO-RCA: anomalies and repairs") -> dict[str, Any]:
    """A Grafana dashboard (JSON model, schemaVersion 39) with the same panels as the PNGs,
    over a Prometheus data source chosen by the ``DS_PROMETHEUS`` variable."""
    ds = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
    q = effect_queries(60)

    def panel(
        pid: int,
        kind: str,
        name: str,
        exprs: dict[str, str],
        x: int,
        y: int,
        w: int = 12,
        h: int = 8,
        **extra: Any,
    ) -> dict[str, Any]:
        return {
            "id": pid,
            "type": kind,
            "title": name,
            "datasource": ds,
            "gridPos": {"x": x, "y": y, "w": w, "h": h},
            "targets": [
                {"refId": chr(65 + i), "expr": e, "legendFormat": legend, "datasource": ds}
                for i, (legend, e) in enumerate(exprs.items())
            ],
            **extra,
        }

    panels = [
        panel(
            1,
            "heatmap",
            "Anomalies per module and minute (errors by module)",
            {"{{module}}": "sum by (module) (increase(agent_error_total[1m]))"},
            0,
            0,
            w=24,
            options={"calculate": False, "yAxis": {"axisLabel": "module"}},
        ),
        panel(2, "timeseries", "P95 task latency (s)", {"p95": q["p95_latency_s"]}, 0, 8),
        panel(3, "timeseries", "Task failure rate", {"failure rate": q["failure_rate"]}, 12, 8),
        panel(
            4,
            "timeseries",
            "Callback success rate",
            {"callback success": q["callback_success_rate"]},
            0,
            16,
        ),
        panel(
            5,
            "stat",
            "Auto-fix success rate",
            {"rate": "auto_fix_success_rate"},
            12,
            16,
            w=6,
            fieldConfig={
                "defaults": {
                    "unit": "percentunit",
                    "thresholds": {
                        "mode": "absolute",
                        "steps": [
                            {"color": "red", "value": None},
                            {"color": "yellow", "value": 0.9},
                            {"color": "green", "value": 0.95},
                        ],
                    },
                }
            },
        ),
        panel(
            6,
            "barchart",
            "Repairs by strategy (attempts / successes)",
            {
                "attempts {{strategy_id}}": "sum by (strategy_id) (repair_attempt_total)",
                "successes {{strategy_id}}": "sum by (strategy_id) (repair_success_total)",
            },
            18,
            16,
            w=6,
        ),
        panel(
            7,
            "timeseries",
            "Rollback latency p95 (s)",
            {
                "p95": "histogram_quantile(0.95, sum by (le) "
                "(rate(rollback_latency_seconds_bucket[5m])))"
            },
            0,
            24,
        ),
    ]
    return {
        "title": title,
        "uid": "tamo-rca-repair",
        "schemaVersion": 39,
        "version": 1,
        "time": {"from": "now-15m", "to": "now"},
        "refresh": "5s",
        "tags": ["tamo-rca"],
        "templating": {
            "list": [
                {
                    "name": "DS_PROMETHEUS",
                    "type": "datasource",
                    "query": "prometheus",
                    "label": "Prometheus",
                }
            ]
        },
        "panels": panels,
    }


def write_dashboard(out: Path) -> Path:
    out.write_text(json.dumps(grafana_dashboard(), indent=2))
    return out
