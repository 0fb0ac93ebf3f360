"""The user's path: ``tamo`` commands timed as a user runs them, beside a physical reference.

What each figure is, and why that way:

* every command runs in a fresh process, timed from ``fork`` to exit; CPU seconds and peak RSS
  are that child's own (``os.wait4``), so neighbours on a shared machine show in wall time and
  not in CPU time; the 1-, 5- and 15-minute load averages are recorded before each figure;
* each figure has a physical reference measured in the same run, and the ratio: ``python -c
  pass`` for start-up, the OS reading the file plus pyarrow's multi-threaded JSON reader over the
  same file for trace analysis, a bare socket accept for the OTLP receiver;
* ``in_process`` is the second column where the work can also be timed inside one warm process
  (diagnosis, the MCP tool call), labelled as such.

Targets (issue #12, 2 idle cores): ``tamo --help`` <= 0.5 s; ``tamo diagnose --case`` <= 2 s
median; ``tamo traces analyze`` >= 200k spans/s end to end on 233k spans with peak RSS <= 1 GB and
a 10x file within 1.5x that RSS; ``tamo ingest --listen`` accepts <= 2 s after launch; MCP
``diagnose_incident`` <= 1 s median over 5 distinct cases.
Run: ``python -m evals.bench_user_path --datasets ...``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.compute as pc

from evals.bench_store import machine
from evals.traces_synth import generate, to_otlp_json

REPO = Path(__file__).resolve().parents[1]
RUNS = 5
SPANS_1X = 233_000  # the file: 233k spans of synthetic agent-platform traces
TRACES_1X = 24_400  # traces of the generator that give ~233k spans
COPIES_10X = 10
NO_LLM = ("--no-llm",)


@dataclass
class Run:
    wall_s: float
    cpu_s: float
    peak_rss_mb: float
    rc: int
    load: tuple[float, float, float]


def _env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TAMO_", "OPENAI_"))}
    env["PYTHONPATH"] = str(REPO)
    env["TAMO_DATA_DIR"] = str(data_dir)
    return env


TIME = Path("/usr/bin/time")


def run_child(argv: Sequence[str], env: dict[str, str] | None = None) -> Run:
    """One command from launch to exit: wall, its own CPU seconds and peak RSS.

    Why ``/usr/bin/time``: a child forked from this process inherits its resident pages until
    ``exec``, so ``wait4``'s ``ru_maxrss`` would report at least the bench's own size; ``time``
    is a small process, and the figure it reports is the command's alone.
    """
    load = os.getloadavg()
    with tempfile.NamedTemporaryFile("r", suffix=".time") as out:
        wrapped = [str(TIME), "-f", "%e %U %S %M", "-o", out.name, *argv]
        t0 = time.perf_counter()
        proc = subprocess.run(
            wrapped,
            env=env,
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            check=False,
        )
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            err = proc.stderr.decode(errors="replace")[-400:]
            raise RuntimeError(f"{' '.join(argv[:6])}... exited {proc.returncode}: {err}")
        _, user, system, rss_kb = out.read().split()[-4:]
    return Run(wall, float(user) + float(system), int(rss_kb) / 1024, 0, load)


def _tamo(*args: str) -> list[str]:
    return [sys.executable, "-m", "tamo.main", *args]


def _row(metric: str, runs: list[Run], reference: list[Run] | None, **extra: Any) -> dict:
    wall = statistics.median(r.wall_s for r in runs)
    row: dict[str, Any] = {
        "benchmark": "user_path",
        "metric": metric,
        "median": round(wall, 3),
        "unit": "s wall",
        "runs": [round(r.wall_s, 3) for r in runs],
        "cpu_s": round(statistics.median(r.cpu_s for r in runs), 3),
        "peak_rss_mb": round(max(r.peak_rss_mb for r in runs), 1),
        "load_avg": [round(x, 2) for x in runs[0].load],
        "machine": machine(),
        **extra,
    }
    if reference:
        ref = statistics.median(r.wall_s for r in reference)
        row["reference_s"] = round(ref, 3)
        row["ratio"] = round(wall / ref, 2) if ref else None
    return row


def startup(data_dir: Path) -> list[dict]:
    env = _env(data_dir)
    ref = [run_child([sys.executable, "-c", "pass"], env) for _ in range(RUNS)]
    rows = [_row("python -c pass", ref, None, role="reference")]
    for args, target in (
        (("--help",), "<= 0.5 s"),
        (("traces", "analyze", "--help"), "<= 1.5 s"),
        (("diagnose", "--help"), "<= 1.5 s"),
    ):
        runs = [run_child(_tamo(*args), env) for _ in range(RUNS)]
        rows.append(_row(f"tamo {' '.join(args)}", runs, ref, target=target))
    return rows


def _cases(datasets: Path) -> list[str]:
    from tools.telemetry.datasets import get_adapter

    cases = get_adapter("nezha").cases(datasets / "nezha")
    return [c.case_id for c in cases[:: max(1, len(cases) // RUNS)]][:RUNS]


def diagnose(datasets: Path, data_dir: Path) -> list[dict]:
    """``tamo diagnose --case`` on 5 cases, each first with an empty data dir (nothing parsed
    before: the first run a user ever makes on that day) and then again (the day's parsed files
    come from :mod:`tools.telemetry.datasets.parsed_cache`)."""
    if not (datasets / "nezha").exists():
        return []
    root = str(datasets / "nezha")
    ref = [run_child([sys.executable, "-c", "pass"], _env(data_dir)) for _ in range(3)]
    first, again = [], []
    for i, c in enumerate(_cases(datasets)):
        env = _env(data_dir / f"diagnose-{i}")
        argv = _tamo("diagnose", "--dataset", "nezha", "--root", root, "--case", c, "--no-llm")
        first.append(run_child(argv, env))
        again.append(run_child(argv, env))
    return [
        _row("tamo diagnose --case, first run (median of 5 cases)", first, ref, target="<= 2 s"),
        _row("tamo diagnose --case, parsed files cached (median of 5 cases)", again, ref),
    ]


def write_trace_files(tmp: Path) -> tuple[Path, Path, int, int]:
    """The 1x file (one OTLP JSON document) and the 10x file (JSON Lines, one export request of
    ~2,000 spans a line, as the collector's file exporter writes): 10 copies of the 1x traces,
    each with its own trace ids and shifted an hour later."""
    spans = generate(TRACES_1X, seed=100, anomaly_rate=0.05).spans
    one = tmp / "traces_1x.json"
    one.write_text(json.dumps(to_otlp_json(spans)))
    ten = tmp / "traces_10x.jsonl"
    hour = 3600 * 10**9
    with ten.open("w") as f:
        for k in range(COPIES_10X):
            ids = pc.utf8_slice_codeunits(spans["trace_id"], 1)  # copy k: first hex digit k
            copy = spans.set_column(0, "trace_id", pc.binary_join_element_wise(f"{k:x}", ids, ""))
            for name in ("start_ns", "end_ns"):
                i = copy.schema.get_field_index(name)
                copy = copy.set_column(i, name, pc.add(copy[name], k * hour))
            for start in range(0, copy.num_rows, 2000):
                f.write(json.dumps(to_otlp_json(copy.slice(start, 2000))) + "\n")
    return one, ten, spans.num_rows, spans.num_rows * COPIES_10X


def _reference_read(path: Path, env: dict[str, str]) -> Run:
    code = (
        "import sys, pyarrow.json as pj\n"
        "pj.read_json(sys.argv[1], read_options=pj.ReadOptions(block_size=1 << 30))"
    )
    return run_child([sys.executable, "-c", code, str(path)], env)


_PHASES = """
import json, sys, time
from pathlib import Path
c0 = time.process_time()
from tools.telemetry.ingest import parse_file
from tools.traces import TraceConfig, analyze_traces
c1 = time.process_time()
spans = parse_file(Path(sys.argv[1])).spans
c2 = time.process_time()
analyze_traces(spans, config=TraceConfig(seed=0))
c3 = time.process_time()
print(json.dumps({"imports_cpu_s": c1 - c0, "parse_cpu_s": c2 - c1, "analysis_cpu_s": c3 - c2}))
"""


def _phases(path: Path, n: int, env: dict[str, str]) -> dict[str, float]:
    """CPU seconds of each phase of ``traces analyze`` (imports, parse, analysis) in one fresh
    process: the in-process column, which says where the end-to-end time goes."""
    out = subprocess.run(
        [sys.executable, "-c", _PHASES, str(path)],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    phases = {k: round(v, 3) for k, v in json.loads(out.stdout.splitlines()[-1]).items()}
    phases["parse_spans_per_cpu_s"] = round(n / max(phases["parse_cpu_s"], 1e-9))
    phases["analysis_spans_per_cpu_s"] = round(n / max(phases["analysis_cpu_s"], 1e-9))
    return phases


def traces(data_dir: Path, tmp: Path) -> list[dict]:
    env = _env(data_dir)
    one, ten, n1, n10 = write_trace_files(tmp)
    rows = []
    for path, n, runs_n, label in ((one, n1, 3, "1x"), (ten, n10, 1, "10x")):
        ref = [_reference_read(path, env) for _ in range(runs_n)] if label == "1x" else None
        runs = [
            run_child(_tamo("traces", "analyze", "--input", str(path), "--no-kb"), env)
            for _ in range(runs_n)
        ]
        row = _row(
            f"tamo traces analyze [{label}: {n:,} spans, {path.stat().st_size / 2**20:.0f} MiB]",
            runs,
            ref,
            target=">= 200k spans/s, peak RSS <= 1 GB" if label == "1x" else "RSS <= 1.5x the 1x",
        )
        row["spans_per_s"] = round(n / row["median"])
        row["spans_per_cpu_s"] = round(n / row["cpu_s"])
        if ref:
            row["reference"] = "pyarrow.json.read_json of the same file (multi-threaded)"
            row["in_process"] = _phases(path, n, env)
        rows.append(row)
    rows[1]["rss_vs_1x"] = round(rows[1]["peak_rss_mb"] / rows[0]["peak_rss_mb"], 2)
    return rows


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _time_to_accept(argv: list[str], port: int, env: dict[str, str]) -> tuple[float, float]:
    """Seconds from launch to the first accepted connection, and the CPU seconds used by then."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        argv, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{argv} exited {proc.returncode} before accepting")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.05).close()
                return time.perf_counter() - t0, _cpu_s(proc.pid)
            except OSError:
                time.sleep(0.01)
            if time.perf_counter() - t0 > 60:
                raise RuntimeError(f"{argv} did not accept within 60 s")
    finally:
        proc.terminate()
        proc.wait(10)


def listen(data_dir: Path) -> list[dict]:
    env = _env(data_dir)
    ref_code = (
        "import socket, sys; s = socket.socket(); s.bind(('127.0.0.1', int(sys.argv[1])));"
        " s.listen(); s.accept()"
    )
    ref, runs = [], []
    load = os.getloadavg()
    for _ in range(3):
        port = _free_port()
        wall, cpu = _time_to_accept([sys.executable, "-c", ref_code, str(port)], port, env)
        ref.append(Run(wall, cpu, float("nan"), 0, load))
        port = _free_port()
        wall, cpu = _time_to_accept(_tamo("ingest", "--listen", f"127.0.0.1:{port}"), port, env)
        runs.append(Run(wall, cpu, float("nan"), 0, load))
    row = _row(
        "tamo ingest --listen: launch to first accepted connection", runs, ref, target="<= 2 s"
    )
    row.pop("peak_rss_mb")
    row["reference"] = "python opening a listening socket"
    return [row]


async def _mcp_calls(datasets: Path, data_dir: Path) -> tuple[list[tuple[float, float]], float]:
    """``diagnose_incident`` once on each of 5 cases (a new window each: the whole investigation),
    each over a server built on that case and warmed up as ``tamo mcp`` does; then 5 repeats on
    the last case. Returns (wall, CPU) per call and the longest warm-up."""
    from fastmcp import Client

    from agent.scope import case_context
    from mcp_server.server import build_server, warm_up
    from tools.core.settings import Settings

    calls, warmups = [], []
    for case in _cases(datasets):
        ctx = case_context("nezha", datasets / "nezha", case, Settings(data_dir=data_dir))
        server = build_server(ctx)
        t0 = time.perf_counter()
        warm_up(ctx).join()
        warmups.append(time.perf_counter() - t0)
        async with Client(server) as c:
            for _ in range(1 if len(calls) < RUNS - 1 else RUNS + 1):
                t0, c0 = time.perf_counter(), time.process_time()
                await c.call_tool("diagnose_incident", {})
                calls.append((time.perf_counter() - t0, time.process_time() - c0))
    return calls, max(warmups)


def mcp(datasets: Path, data_dir: Path) -> list[dict]:
    if not (datasets / "nezha").exists():
        return []
    load = os.getloadavg()
    calls, warmup = asyncio.run(_mcp_calls(datasets, data_dir))
    distinct = [Run(w, c, float("nan"), 0, load) for w, c in calls[:RUNS]]
    repeats = [Run(w, c, float("nan"), 0, load) for w, c in calls[RUNS:]]
    rows = [
        _row(
            "MCP diagnose_incident, one call on each of 5 cases (in-memory fastmcp Client)",
            distinct,
            None,
            target="<= 1 s",
            column="in_process",
            warm_up_s=round(warmup, 3),
            note="each case's server warmed up first (models, graph; nothing of the window)",
        ),
        _row(
            "MCP diagnose_incident, repeated on one case (in-memory fastmcp Client)",
            repeats,
            None,
            column="in_process",
            note="repeats reuse the context's per-window results",
        ),
    ]
    for row in rows:
        row.pop("peak_rss_mb")
    return rows


def run(datasets: Path) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="tamo-bench-user-") as tmp:
        t = Path(tmp)
        data = t / "data"
        data.mkdir()
        return [
            *startup(data),
            *listen(data),
            *diagnose(datasets, data),
            *mcp(datasets, data),
            *traces(data, t),
        ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", type=Path, default=Path("../shared/datasets"))
    parser.add_argument(
        "--only", default="", help="comma-separated: startup,listen,diagnose,mcp,traces"
    )
    args = parser.parse_args()
    only = {s for s in args.only.split(",") if s}
    with tempfile.TemporaryDirectory(prefix="tamo-bench-user-") as tmp:
        t = Path(tmp)
        data = t / "data"
        data.mkdir()
        parts = {
            "startup": lambda: startup(data),
            "listen": lambda: listen(data),
            "diagnose": lambda: diagnose(args.datasets, data),
            "mcp": lambda: mcp(args.datasets, data),
            "traces": lambda: traces(data, t),
        }
        for name, part in parts.items():
            if not only or name in only:
                for row in part():
                    print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
