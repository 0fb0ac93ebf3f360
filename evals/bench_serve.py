"""Benchmark of ``tamo serve`` under load: OTLP/HTTP protobuf in, diagnoses out, at the same time.

What it measures, as a user runs it:
* ``tamo serve`` is started as its own process (process start to "accepting" is reported);
* ``CLIENTS`` loader processes POST OTLP/HTTP protobuf trace exports of 512 spans (ids unique per
  request, a 3-service call tree) back to back for ``DURATION_S`` seconds, honouring 429;
* meanwhile ``diagnose_incident`` runs over MCP (``/mcp``) every ``DIAGNOSE_EVERY_S`` on the last
  minute, and its wall time is recorded;
* afterwards: spans acknowledged (200s x 512) vs spans the store holds (``/api/store/counts``)
  must be equal, and the server's RSS over the run (sampled every second from /proc) must be
  flat: the ratio of the last tenth's median to the second tenth's.
Reference in the same run: the spans/s this machine's one core parses (protobuf body -> span
table, no HTTP, no store), so the served rate can be read as a share of that physical floor.
Run: ``python -m evals.bench_serve`` (``TAMO_BENCH_SERVE_S`` shortens it while iterating).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from evals.bench_store import machine

DURATION_S = float(os.environ.get("TAMO_BENCH_SERVE_S", "60"))
CLIENTS = int(os.environ.get("TAMO_BENCH_SERVE_CLIENTS", "4"))
DIAGNOSE_EVERY_S = 10.0
SPANS_PER_REQUEST = 512
MARKER = b"\xa5\x5a\xc3\x3c\x96\x69\x0f\xf0"  # 8 bytes every trace id of a template carries
PB = {"content-type": "application/x-protobuf"}


def template() -> bytes:
    """One export of 512 spans (128 traces: gateway -> order -> payment, + one inner span)."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue

    req = ExportTraceServiceRequest()
    now = time.time_ns()
    for svc in ("gateway", "order", "payment"):
        rs = req.resource_spans.add()
        rs.resource.attributes.add(key="service.name", value=AnyValue(string_value=svc))
        rs.scope_spans.add()
    by_svc = {rs.resource.attributes[0].value.string_value: rs for rs in req.resource_spans}
    for t in range(SPANS_PER_REQUEST // 4):
        tid = MARKER + t.to_bytes(8, "big")
        chain = [("gateway", None), ("order", 1), ("order", 2), ("payment", 2)]
        for i, (svc, parent) in enumerate(chain, start=1):
            sp = by_svc[svc].scope_spans[0].spans.add()
            sp.trace_id, sp.span_id = tid, (t * 8 + i).to_bytes(8, "big")
            if parent is not None:
                sp.parent_span_id = (t * 8 + parent).to_bytes(8, "big")
            sp.name, sp.kind = f"{svc}-op", 2
            sp.start_time_unix_nano = now + t * 1000 + i
            sp.end_time_unix_nano = sp.start_time_unix_nano + 5_000_000 // i
            sp.attributes.add(key="http.route", value=AnyValue(string_value=f"/{svc}"))
            sp.attributes.add(key="http.status_code", value=AnyValue(int_value=200))
    return req.SerializeToString()


def _loader(url: str, deadline: float, seq0: int, out: Any) -> None:
    """Post exports until ``deadline``; puts (acknowledged spans, 429s, other failures)."""
    body = template()
    ok = busy = other = 0
    seq = seq0
    with httpx.Client(timeout=60) as c:
        while time.time() < deadline:
            seq += 1
            # a fresh 8-byte prefix per request: every request's ids are new
            data = body.replace(MARKER, seq.to_bytes(8, "big"))
            try:
                r = c.post(f"{url}/v1/traces", content=data, headers=PB)
            except httpx.HTTPError:
                other += 1
                continue
            if r.status_code == 200:
                ok += SPANS_PER_REQUEST
            elif r.status_code == 429:
                busy += 1
                time.sleep(0.05)
            else:
                other += 1
    out.put((ok, busy, other))


def parse_rate_reference(seconds: float = 3.0) -> float:
    """Spans per CPU-second this machine parses from the same bodies (no HTTP, no store)."""
    from tools.telemetry.otlp_receiver import SIGNALS, parse_body

    body = template()
    n, t0 = 0, time.process_time()
    while time.process_time() - t0 < seconds:
        parse_body(body, PB["content-type"], SIGNALS[0])
        n += SPANS_PER_REQUEST
    return n / (time.process_time() - t0)


def _rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _start_server(data_dir: Path) -> tuple[subprocess.Popen[str], str, float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAMO_")}
    env["TAMO_DATA_DIR"] = str(data_dir)
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tamo.main", "serve", "--port", "0"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if "OTLP/HTTP http://" in line:
            url = line.split("OTLP/HTTP ", 1)[1].split("/v1/", 1)[0]
            threading.Thread(target=proc.stdout.read, daemon=True).start()  # drain
            return proc, url, time.monotonic() - t0
    raise RuntimeError("tamo serve exited before accepting connections")


def _diagnoses(url: str, halt: threading.Event, walls: list[float], errors: list[str]) -> None:
    from fastmcp import Client

    async def loop() -> None:
        async with Client(f"{url}/mcp", timeout=120) as c:
            while not halt.wait(DIAGNOSE_EVERY_S):
                end = time.time()
                args = {
                    "start": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(end - 60)),
                    "end": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(end)),
                }
                t0 = time.monotonic()
                try:
                    await c.call_tool("diagnose_incident", args)
                    walls.append(time.monotonic() - t0)
                except Exception as exc:  # recorded, the load goes on
                    errors.append(str(exc)[:120])

    asyncio.run(loop())


def run(datasets: Path | None = None) -> list[dict[str, Any]]:
    ref = parse_rate_reference()
    with tempfile.TemporaryDirectory(prefix="tamo-bench-serve-") as tmp:
        proc, url, startup_s = _start_server(Path(tmp))
        rss: list[float] = []
        halt = threading.Event()

        def sample() -> None:
            while not halt.wait(1.0):
                v = _rss_mb(proc.pid)
                if v is not None:
                    rss.append(v)

        walls: list[float] = []
        errors: list[str] = []
        threading.Thread(target=sample, daemon=True).start()
        diag = threading.Thread(target=_diagnoses, args=(url, halt, walls, errors), daemon=True)
        diag.start()
        results: Any = mp.get_context("spawn").Queue()
        deadline = time.time() + DURATION_S
        t0 = time.monotonic()
        loaders = [
            mp.get_context("spawn").Process(
                target=_loader, args=(url, deadline, i * 10**9, results)
            )
            for i in range(CLIENTS)
        ]
        for p in loaders:
            p.start()
        got = [results.get(timeout=DURATION_S + 120) for _ in loaders]
        wall = time.monotonic() - t0
        for p in loaders:
            p.join()
        halt.set()
        diag.join(180)
        acked = sum(g[0] for g in got)
        stored = httpx.post(f"{url}/api/store/counts", json={}, timeout=60).json()["value"]
        proc.terminate()
        rc = proc.wait(120)
    tenth = max(len(rss) // 10, 1)
    flat = statistics.median(rss[-tenth:]) / statistics.median(rss[tenth : 2 * tenth] or rss)
    rate = acked / wall
    m = machine()
    rows: list[dict[str, Any]] = [
        ("spans acknowledged per second (OTLP/HTTP protobuf)", rate, "spans/s"),
        ("reference: spans parsed per CPU-second (same bodies)", ref, "spans/s"),
        ("served / reference", rate / ref, "ratio"),
        ("spans stored - spans acknowledged", stored["spans"] - acked, "spans"),
        ("429 answers (retried)", sum(g[1] for g in got), "requests"),
        ("failed requests", sum(g[2] for g in got), "requests"),
        ("server RSS last tenth / second tenth", flat, "ratio"),
        ("server RSS peak", max(rss) if rss else None, "MiB"),
        ("diagnose_incident wall during load (median)", _median(walls), "s"),
        ("diagnose_incident wall during load (max)", max(walls) if walls else None, "s"),
        ("diagnoses completed / failed", f"{len(walls)}/{len(errors)}", "runs"),
        ("tamo serve start to accepting", startup_s, "s"),
        ("tamo serve exit code on SIGTERM", rc, ""),
    ]
    return [
        {
            "benchmark": "serve",
            "metric": name,
            "median": value,
            "unit": unit,
            "runs": f"1 x {DURATION_S:g} s, {CLIENTS} clients",
            "machine": m,
        }
        for name, value, unit in rows
    ]


def _median(xs: list[float]) -> float | None:
    return statistics.median(xs) if xs else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", type=Path, default=None, help="unused (no dataset needed)")
    args = ap.parse_args()
    print(json.dumps(run(args.datasets), indent=1, default=str))


if __name__ == "__main__":
    main()
