"""Benchmark of ``tamo serve`` under load: OTLP/HTTP protobuf in, diagnoses out, at the same time.

What it measures, as a user runs it:
* ``tamo serve --retention`` is started as its own process (start to "accepting" is reported);
* before the clock: the OpenTelemetry-SDK shop (``evals/otel_shop.py``) exports 15 minutes of
  history in which, for the last 5, ``payment`` is 8x slower and fails 30 %; one diagnosis of
  that window warms the server (its wall is the "first diagnosis" row);
* for ``DURATION_S`` seconds: one load-generator process posts OTLP/HTTP protobuf exports of 512
  spans over ``CONNECTIONS`` keep-alive connections, back to back, honouring 429. The body is
  serialised once before the clock; each request only swaps an 8-byte trace-id prefix (a copy of
  ~60 KB in C), so every span id is new and the generator stays cheap (its CPU is reported);
* meanwhile diagnoses of the shop's fault window run back to back, alternating MCP
  ``diagnose_incident`` and ``tamo diagnose`` (a CLI process going through the server); each is
  timed and checked: root cause payment, payment's error rate and latency factor within 10 % of
  what was sent, P1 or P2;
* afterwards: spans acknowledged (200s x 512, plus the shop's) vs spans the store holds, failed
  requests, and the RSS of the server's process tree (it and its parse workers) sampled every
  second: the ratio of the last tenth's median to the second tenth's.
CPU seconds of the server tree and of the generator come from /proc and getrusage; the load
average is read at the end. Reference in the same run: spans per CPU-second one core parses from
the same body (no HTTP, no store), so the served rate reads as a share of that floor.
Run: ``python -m evals.bench_serve`` (``TAMO_BENCH_SERVE_S`` shortens it while iterating).
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import multiprocessing as mp
import os
import re
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
CONNECTIONS = int(os.environ.get("TAMO_BENCH_SERVE_CLIENTS", "8"))
SPANS_PER_REQUEST = 512
MARKER = b"\xa5\x5a\xc3\x3c\x96\x69\x0f\xf0"  # 8 bytes every trace id of a template carries
PB = {"content-type": "application/x-protobuf"}
MIN_NS = 60 * 10**9
CLOCK_TICK = os.sysconf("SC_CLK_TCK")


def template() -> bytes:
    """One export of 512 spans (128 traces: edge -> api -> api, db), stamped now."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue

    req = ExportTraceServiceRequest()
    now = time.time_ns()
    for svc in ("edge", "api", "db"):
        rs = req.resource_spans.add()
        rs.resource.attributes.add(key="service.name", value=AnyValue(string_value=svc))
        rs.scope_spans.add()
    by_svc = {rs.resource.attributes[0].value.string_value: rs for rs in req.resource_spans}
    for t in range(SPANS_PER_REQUEST // 4):
        tid = MARKER + t.to_bytes(8, "big")
        chain = [("edge", None), ("api", 1), ("api", 2), ("db", 2)]
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


def _generator(url: str, start_at: float, deadline: float, out: Any) -> None:
    """The load generator process: ``CONNECTIONS`` keep-alive connections posting exports from
    ``start_at`` to ``deadline``; puts (acknowledged spans, 429s, failures, its CPU seconds)."""
    body = template()  # serialised once, before the clock
    host, port = url.removeprefix("http://").rsplit(":", 1)
    counts = [[0, 0, 0] for _ in range(CONNECTIONS)]

    def connection(i: int) -> None:
        conn = http.client.HTTPConnection(host, int(port), timeout=120)
        seq = (i + 1) * 10**12
        while time.time() < deadline:
            seq += 1
            data = body.replace(MARKER, seq.to_bytes(8, "big"))  # every span id new
            try:
                conn.request("POST", "/v1/traces", data, PB)
                r = conn.getresponse()
                r.read()
            except (OSError, http.client.HTTPException):
                counts[i][2] += 1
                conn.close()
                conn = http.client.HTTPConnection(host, int(port), timeout=120)
                continue
            if r.status == 200:
                counts[i][0] += SPANS_PER_REQUEST
            elif r.status == 429:
                counts[i][1] += 1
                time.sleep(0.05)
            else:
                counts[i][2] += 1

    threads = [threading.Thread(target=connection, args=(i,)) for i in range(CONNECTIONS)]
    time.sleep(max(0.0, start_at - time.time()))
    cpu0 = time.process_time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out.put((*(sum(c[k] for c in counts) for k in range(3)), time.process_time() - cpu0))


def parse_rate_reference(seconds: float = 3.0) -> float:
    """Spans per CPU-second this machine parses from the same bodies (no HTTP, no store)."""
    from tools.telemetry.otlp_parse import SIGNALS, parse_body

    body = template()
    n, t0 = 0, time.process_time()
    while time.process_time() - t0 < seconds:
        parse_body(body, PB["content-type"], SIGNALS[0])
        n += SPANS_PER_REQUEST
    return n / (time.process_time() - t0)


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants (the server and its parse workers)."""
    out = [pid]
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            for child in Path(f"/proc/{pid}/task/{task}/children").read_text().split():
                out += _tree(int(child))
    except OSError:
        pass
    return out


def _proc_sum(pid: int, what: str) -> float:
    """RSS (MiB) or CPU seconds (user + system) of ``pid``'s process tree."""
    total = 0.0
    for p in _tree(pid):
        try:
            if what == "rss":
                status = Path(f"/proc/{p}/status").read_text()
                total += int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) / 1024  # type: ignore[union-attr]
            else:
                f = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
                total += (int(f[11]) + int(f[12])) / CLOCK_TICK
        except (OSError, AttributeError):
            pass
    return total


def _start_server(data_dir: Path) -> tuple[subprocess.Popen[str], str, float]:
    from evals.serve_process import tamo_env

    t0 = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tamo.main", "serve", "--port", "0", "--retention", "30m"],
        env=tamo_env(data_dir),
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


def _iso(ns: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ns / 1e9))


def _within_10pct(got: float | None, sent: float) -> bool:
    return got is not None and abs(got - sent) <= 0.1 * sent


class Diagnoses:
    """Diagnoses of the shop's fault window, MCP and CLI by turns, each timed and checked.

    Each starts one second later than the one before (the fault covers it all the same), so no
    diagnosis is answered from a cache the previous one filled for its window."""

    def __init__(self, url: str, data_dir: Path, window: tuple[int, int], failure: float) -> None:
        self.url, self.data_dir, self.window, self.failure = url, data_dir, window, failure
        self.walls: dict[str, list[float]] = {"mcp": [], "cli": []}
        self.correct = 0
        self.wrong: list[str] = []
        self.shift = 0

    def _check(
        self, cause: str | None, priority: str, error_rate: float | None, factor: float | None
    ) -> None:
        ok = (
            cause == "payment"
            and priority[:2] in ("P1", "P2")
            and _within_10pct(error_rate, self.failure)
            and _within_10pct(factor, 8.0)
        )
        if ok:
            self.correct += 1
        else:
            self.wrong.append(f"{cause} {priority[:2]} errors {error_rate} x{factor}")

    def _next_window(self) -> tuple[int, int]:
        start, end = self.window
        self.shift += 1
        return start + self.shift * 10**9, end

    async def mcp(self, client: Any) -> None:
        start, end = self._next_window()
        t0 = time.monotonic()
        out = await client.call_tool("diagnose_incident", {"start": _iso(start), "end": _iso(end)})
        self.walls["mcp"].append(time.monotonic() - t0)
        got = dict(out.structured_content or {})
        line = next((x for x in got.get("impact", []) if x.startswith("payment: errors")), "")
        m = re.search(r"-> ([\d.]+)%(?:, p50 x([\d.]+))?", line)
        rate = float(m.group(1)) / 100 if m else None
        factor = float(m.group(2)) if m and m.group(2) else None
        self._check(got.get("root_cause"), str(got.get("priority", "")), rate, factor)

    def cli(self) -> None:
        from evals.serve_process import tamo

        start, end = self._next_window()
        t0 = time.monotonic()
        res = tamo(
            self.data_dir,
            "diagnose",
            "--start",
            _iso(start)[:-1],
            "--end",
            _iso(end)[:-1],
            "--format",
            "json",
            "--no-llm",
        )
        self.walls["cli"].append(time.monotonic() - t0)
        if res.returncode != 0:
            self.wrong.append(f"tamo diagnose exit {res.returncode}: {res.stderr[-200:]}")
            return
        report = json.loads(res.stdout)
        pay = next((s for s in report["impact"]["services"] if s["service"] == "payment"), {})
        self._check(
            report["analysis"]["root_cause"],
            report["priority"]["level"],
            pay.get("error_rate"),
            pay.get("latency_factor"),
        )

    def run_until(self, halt: threading.Event) -> None:
        from fastmcp import Client

        async def loop() -> None:
            async with Client(f"{self.url}/mcp", timeout=300) as client:
                while not halt.is_set():
                    await self.mcp(client)
                    if not halt.is_set():
                        await asyncio.to_thread(self.cli)

        asyncio.run(loop())

    def once(self) -> float:
        from fastmcp import Client

        async def go() -> None:
            async with Client(f"{self.url}/mcp", timeout=300) as client:
                await self.mcp(client)

        asyncio.run(go())
        return self.walls["mcp"].pop()


def run(datasets: Path | None = None) -> list[dict[str, Any]]:
    from evals.otel_shop import Shop, ShopFault

    ref = parse_rate_reference()
    with tempfile.TemporaryDirectory(prefix="tamo-bench-serve-") as tmp:
        proc, url, startup_s = _start_server(Path(tmp))
        now = (time.time_ns() // 10**9) * 10**9
        shop = Shop(f"{url}/v1/traces", fault=ShopFault(start_ns=now - 5 * MIN_NS))
        shop.history(now - 15 * MIN_NS, now, rate_per_s=6)
        assert shop.flush(), "the shop's history was not exported"
        failure = shop.payment_failures / shop.payment_requests
        diag = Diagnoses(url, Path(tmp), (now - 5 * MIN_NS, now), failure)
        first_s = diag.once()
        diag.correct, diag.wrong = 0, []  # the warm-up is reported on its own row

        rss: list[float] = []
        halt = threading.Event()
        results: Any = mp.get_context("spawn").Queue()
        start_at = time.time() + 3.0  # the generator is up and has its body by then
        gen = mp.get_context("spawn").Process(
            target=_generator, args=(url, start_at, start_at + DURATION_S, results)
        )
        gen.start()
        time.sleep(max(0.0, start_at - time.time()))
        cpu0, t0 = _proc_sum(proc.pid, "cpu"), time.monotonic()

        def sample() -> None:
            while not halt.wait(1.0):
                rss.append(_proc_sum(proc.pid, "rss"))

        threading.Thread(target=sample, daemon=True).start()
        diagnoser = threading.Thread(target=diag.run_until, args=(halt,), daemon=True)
        diagnoser.start()
        acked, busy, failed, gen_cpu = results.get(timeout=DURATION_S + 300)
        wall = time.monotonic() - t0
        server_cpu = _proc_sum(proc.pid, "cpu") - cpu0
        load1 = os.getloadavg()[0]
        gen.join()
        halt.set()
        diagnoser.join(600)
        stored = httpx.post(f"{url}/api/store/counts", json={}, timeout=60).json()["value"]
        shop.shutdown()
        proc.terminate()
        rc = proc.wait(120)
    tenth = max(len(rss) // 10, 1)
    flat = statistics.median(rss[-tenth:]) / statistics.median(rss[tenth : 2 * tenth] or rss)
    rate = acked / wall
    runs = len(diag.walls["mcp"]) + len(diag.walls["cli"])
    rows: list[tuple[str, Any, str]] = [
        ("spans acknowledged per second (OTLP/HTTP protobuf)", rate, "spans/s"),
        ("server CPU (it and its parse workers) during the load", server_cpu, "CPU-s"),
        ("spans per server CPU-second", acked / server_cpu if server_cpu else None, "spans/CPU-s"),
        (
            "load generator CPU (share of server + generator)",
            f"{gen_cpu:.1f} ({gen_cpu / (gen_cpu + server_cpu):.0%})",
            "CPU-s",
        ),
        ("reference: spans parsed per CPU-second (same body, no HTTP)", ref, "spans/CPU-s"),
        ("load average (1 min) at the end", load1, ""),
        ("spans stored - spans acknowledged", stored["spans"] - acked - shop.spans_sent, "spans"),
        ("429 answers (retried)", busy, "requests"),
        ("failed requests", failed, "requests"),
        ("server RSS last tenth / second tenth", flat, "ratio"),
        ("server RSS peak (with parse workers)", max(rss) if rss else None, "MiB"),
        (
            "server RSS per tenth of the run (median)",
            [round(statistics.median(rss[i * tenth : (i + 1) * tenth])) for i in range(10)]
            if len(rss) >= 10
            else None,
            "MiB",
        ),
        ("diagnose_incident (MCP) wall during load, median / max", _spread(diag.walls["mcp"]), "s"),
        (
            "tamo diagnose (CLI via the server) wall during load, median / max",
            _spread(diag.walls["cli"]),
            "s",
        ),
        (
            "diagnoses right (payment, ±10 % errors and latency, P1/P2) / run",
            f"{diag.correct}/{runs}",
            "runs",
        ),
        ("first diagnosis after start (MCP, before the load)", first_s, "s"),
        ("tamo serve start to accepting", startup_s, "s"),
        ("tamo serve exit code on SIGTERM", rc, ""),
    ]
    m = machine()
    out = [
        {
            "benchmark": "serve",
            "metric": name,
            "median": value,
            "unit": unit,
            "runs": f"1 x {DURATION_S:g} s, {CONNECTIONS} connections",
            "machine": m,
        }
        for name, value, unit in rows
    ]
    if diag.wrong:
        out.append({"benchmark": "serve", "metric": "wrong diagnoses", "median": diag.wrong[:5]})
    return out


def _spread(xs: list[float]) -> str | None:
    return f"{statistics.median(xs):.2f} / {max(xs):.2f}" if xs else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", type=Path, default=None, help="unused (no dataset needed)")
    args = ap.parse_args()
    print(json.dumps(run(args.datasets), indent=1, default=str))


if __name__ == "__main__":
    main()
