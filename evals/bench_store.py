"""Benchmark of the embedded store on the Nezha Train-Ticket day (2023-01-29).

What it measures, and why that way:
* ingest throughput: the day's tables are read once through the dataset adapter (CSV parsing is
  the adapter's cost, not the store's), then written into a fresh store *file* through
  ``TelemetryStore.insert_many`` until the file is closed (durable). Spans/s and log lines/s are
  the kind's rows divided by the wall time of writing that kind.
* 5-minute window queries on the ingested file: traces by window, by window + service, logs by
  window, metric series by name; windows are drawn evenly over the day, p50/p95 over them.
Each figure is the median over ``RUNS`` runs; machine info goes with every row.
Run: ``python -m evals.bench_store --datasets ../shared/datasets``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from tools.telemetry.model import TimeWindow
from tools.telemetry.sources import LogQuery, MetricQuery, TraceQuery
from tools.telemetry.store import TelemetryStore

DAY = "2023-01-29"
RUNS = 5
WINDOW_S = 300
QUERIES_PER_RUN = 40


def machine() -> dict[str, object]:
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cpu": model, "cores": cores, "python": platform.python_version()}


def load_day(datasets: Path) -> list[tuple[str, pa.Table, str]]:
    from tools.telemetry.datasets import get_adapter

    root = datasets / "nezha"
    items = get_adapter("nezha").iter_telemetry(root, [DAY])
    return [(kind, table, source) for kind, source, table in items]


def ingest_once(
    items: list[tuple[str, pa.Table, str]], path: Path
) -> dict[str, tuple[float, float]]:
    """(wall, CPU) seconds spent writing each kind into a fresh store file, the last kind
    including the final close. CPU time counts every thread of the process; on a shared,
    loaded machine it shows what the store costs when wall time mostly shows the neighbours."""
    seconds: dict[str, tuple[float, float]] = {}
    store = TelemetryStore(path)
    for kind in ("spans", "logs", "metrics"):
        t0, c0 = time.perf_counter(), time.process_time()
        store.insert_many([it for it in items if it[0] == kind])
        if kind == "metrics":
            store.close()
        seconds[kind] = (time.perf_counter() - t0, time.process_time() - c0)
    return seconds


def _percentile(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(q * (len(xs) - 1)))]


def window_starts(store: TelemetryStore, n: int) -> list[int]:
    """``n`` window starts spread over where spans are (the day has gaps between its slots:
    evenly spaced windows over its whole extent would mostly time empty windows)."""
    catalog = store.sources()
    src = catalog.filter(pc.equal(catalog.column("kind"), "spans"))
    firsts = sorted(v for v in src.column("min_ns").to_pylist() if v is not None)
    return [firsts[i * len(firsts) // n] for i in range(n)]


def query_latencies(path: Path) -> dict[str, list[float]]:
    """Wall and CPU milliseconds of each query kind over 5-minute windows that hold data."""
    with TelemetryStore(path, read_only=True) as store:
        services = store.services()
        starts = window_starts(store, QUERIES_PER_RUN)
        first = TimeWindow.from_ns(starts[0], starts[0] + WINDOW_S * 1_000_000_000)
        # the metric with the most samples in a window (one every pod reports), not a rare one
        metric = max(
            store.metric_names(), key=lambda n: store.series(MetricQuery(n, first)).num_rows
        )
        out: dict[str, list[float]] = {"traces": [], "traces+service": [], "logs": [], "metric": []}
        for i, start in enumerate(starts):
            w = TimeWindow.from_ns(start, start + WINDOW_S * 1_000_000_000)
            svc = services[i % len(services)]
            calls: dict[str, Callable[[], pa.Table]] = {
                "traces": lambda w=w: store.spans(TraceQuery(w)),
                "traces+service": lambda w=w, s=svc: store.spans(TraceQuery(w, services=[s])),
                "logs": lambda w=w: store.logs(LogQuery(w)),
                "metric": lambda w=w: store.series(MetricQuery(metric, w)),
            }
            for name, call in calls.items():
                t0, c0 = time.perf_counter(), time.process_time()
                rows = call().num_rows
                out[name].append((time.perf_counter() - t0) * 1000)
                out.setdefault(f"{name} cpu", []).append((time.process_time() - c0) * 1000)
                out.setdefault(f"{name} rows", []).append(rows)
    return out


def run(datasets: Path) -> list[dict]:
    if not (datasets / "nezha" / "rca_data" / DAY).is_dir():
        print(f"bench_store: skipped, Nezha day {DAY} not found under {datasets / 'nezha'}")
        return []
    items = load_day(datasets)
    rows_of = {k: sum(t.num_rows for kk, t, _ in items if kk == k) for k in ("spans", "logs")}
    ingest: dict[str, list[float]] = {"spans": [], "logs": [], "spans cpu": [], "logs cpu": []}
    load: list[float] = []
    queries: dict[str, list[float]] = {}
    rows_per_window: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="tamo-bench-") as tmp:
        for r in range(RUNS):
            path = Path(tmp) / f"run{r}.duckdb"
            load.append(os.getloadavg()[0])
            secs = ingest_once(items, path)
            for kind in ("spans", "logs"):
                wall, cpu = secs[kind]
                ingest[kind].append(rows_of[kind] / wall)
                ingest[f"{kind} cpu"].append(rows_of[kind] / cpu)
            lat = query_latencies(path)
            for name, ms in lat.items():
                if name.endswith(" rows"):
                    rows_per_window[name.removesuffix(" rows")] = statistics.median(ms)
                    continue
                queries.setdefault(f"{name} p50", []).append(statistics.median(ms))
                queries.setdefault(f"{name} p95", []).append(_percentile(ms, 0.95))
            path.unlink()
    info = {**machine(), "load_avg_1m": round(statistics.median(load), 2)}
    base = {"benchmark": "store", "runs": RUNS, "machine": info, "dataset": f"nezha {DAY}"}
    out = [
        {**base, "metric": "ingest spans/s", "median": statistics.median(ingest["spans"]),
         "unit": "spans/s", "rows": rows_of["spans"], "target": ">= 1,000,000"},
        {**base, "metric": "ingest log lines/s", "median": statistics.median(ingest["logs"]),
         "unit": "lines/s", "rows": rows_of["logs"]},
        {**base, "metric": "ingest spans per CPU-second", "unit": "spans/cpu-s",
         "median": statistics.median(ingest["spans cpu"]), "rows": rows_of["spans"]},
        {**base, "metric": "ingest log lines per CPU-second", "unit": "lines/cpu-s",
         "median": statistics.median(ingest["logs cpu"]), "rows": rows_of["logs"]},
    ]  # fmt: skip
    for name, values in queries.items():
        row = {**base, "metric": f"5-min window {name}", "median": statistics.median(values)}
        row["median_rows_returned"] = rows_per_window[name.split(" ")[0]]
        target = "p50 < 20 ms" if name.endswith("p50") and " cpu" not in name else None
        out.append({**row, "unit": "cpu-ms" if " cpu" in name else "ms", "target": target})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", type=Path, default=Path("../shared/datasets"))
    for row in run(ap.parse_args().datasets):
        print(json.dumps(row))


if __name__ == "__main__":
    main()
