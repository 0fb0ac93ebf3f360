"""Throughput and memory of ``analyze_traces`` (target: >= 100,000 spans/s on 2 cores).

What it measures, and why that way:
* each measurement runs in a fresh spawned process that reads the spans from a Parquet file,
  then times ``analyze_traces`` alone (learning normal behaviour from the input, detection,
  root spans, clustering, fingerprints) and reports the process's peak RSS and the part of it
  the analysis added on top of the loaded input — a clean peak per run, unaffected by the
  data generation in the parent;
* synthetic agent-platform traces at two sizes (memory must follow the 5-minute window, not the
  file: the increment should grow far slower than the input) and the Nezha Train-Ticket trace
  files of 2023-01-29 (``rca_data``, read through the dataset adapter);
* medians over ``RUNS`` runs, with machine info. Spans per wall second and per CPU second
  (the pipeline is single-threaded by design: torch runs on one thread, numpy/pyarrow kernels
  are single-threaded here), so a busy shared machine shows in the first and not the second.
Run: ``python -m evals.bench_traces --datasets ../shared/datasets``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from evals.bench_store import machine
from evals.traces_synth import generate

RUNS = 3
SYNTH_SIZES = (20_000, 80_000)  # traces
NEZHA_DAY = "2023-01-29"


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _current_rss_mb() -> float:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * resource.getpagesize() / 2**20


def _measure(path: str, out: Any) -> None:
    from tools.traces import TraceConfig, analyze_traces

    spans = pq.read_table(path)
    before = _current_rss_mb()  # imports and the loaded input
    t0, c0 = time.perf_counter(), time.process_time()
    a = analyze_traces(spans, config=TraceConfig())
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    out.put(
        {
            "wall_s": wall,
            "cpu_s": cpu,
            "spans": spans.num_rows,
            "anomalous": sum(t.anomalous for t in a.traces),
            "peak_rss_mb": _peak_rss_mb(),
            "analysis_rss_mb": _peak_rss_mb() - before,
            "batches": a.batches,
        }
    )


def _runs(path: Path) -> list[dict[str, Any]]:
    ctx = mp.get_context("spawn")
    results = []
    for _ in range(RUNS):
        q = ctx.Queue()
        p = ctx.Process(target=_measure, args=(str(path), q))
        p.start()
        results.append(q.get())
        p.join()
    return results


def _rows(name: str, runs: list[dict[str, Any]], info: dict[str, Any]) -> list[dict[str, Any]]:
    sps = [r["spans"] / r["wall_s"] for r in runs]
    per_cpu = [r["spans"] / r["cpu_s"] for r in runs]
    common = {"benchmark": "traces", "machine": info, "dataset": name, "spans": runs[0]["spans"]}
    return [
        {
            **common,
            "metric": f"spans_per_s[{name}]",
            "median": round(statistics.median(sps)),
            "unit": "spans/s",
            "runs": [round(x) for x in sps],
        },
        {
            **common,
            "metric": f"spans_per_cpu_s[{name}]",
            "median": round(statistics.median(per_cpu)),
            "unit": "spans/CPU-s",
            "runs": [round(x) for x in per_cpu],
        },
        {
            **common,
            "metric": f"peak_rss[{name}]",
            "median": round(statistics.median(r["peak_rss_mb"] for r in runs), 1),
            "unit": "MiB",
            "runs": [round(r["peak_rss_mb"], 1) for r in runs],
        },
        {
            **common,
            "metric": f"analysis_rss[{name}]",
            "median": round(statistics.median(r["analysis_rss_mb"] for r in runs), 1),
            "unit": "MiB",
            "runs": [round(r["analysis_rss_mb"], 1) for r in runs],
        },
    ]


def _nezha_spans(datasets: Path) -> pa.Table | None:
    root = datasets / "nezha"
    if not root.exists():
        return None
    from tools.telemetry.datasets import get_adapter

    tables = [
        t
        for kind, source, t in get_adapter("nezha").iter_telemetry(
            root, [NEZHA_DAY], kinds=["spans"]
        )
        if kind == "spans" and "rca_data" in source
    ]
    return pa.concat_tables(tables) if tables else None


def run(datasets: Path) -> list[dict[str, Any]]:
    info = machine()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in SYNTH_SIZES:
            path = Path(tmp) / f"synth_{n}.parquet"
            pq.write_table(generate(n, seed=100, anomaly_rate=0.05).spans, path)
            rows += _rows(f"synthetic-{n // 1000}k-traces", _runs(path), info)
        nezha = _nezha_spans(datasets)
        if nezha is not None:
            path = Path(tmp) / "nezha.parquet"
            pq.write_table(nezha, path)
            rows += _rows(f"nezha-TT-{NEZHA_DAY}", _runs(path), info)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description="Throughput of analyze_traces")
    parser.add_argument("--datasets", type=Path, default=Path("../shared/datasets"))
    args = parser.parse_args()
    for row in run(args.datasets):
        print(json.dumps(row))


if __name__ == "__main__":
    main()
