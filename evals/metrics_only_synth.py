"""A metrics-only microservice system TAMO has never seen: Prometheus text plus a topology.json.

Why its own generator: the metrics-only target must be checked on a system whose naming, topology
and fault signatures were not written by the engine's authors. Nothing here reads the engine's
rules; the system is built from first principles of request flow:
* a layered call graph of a few dozen components (gateway -> edge services -> mid tier ->
  backends -> stores/caches), random per seed, with a few cross-tier and back edges;
* request rates flow down the graph (each caller sends a share of its requests to each callee),
  latency flows up (a caller's latency is its own time plus its slowest callee's and a quarter of
  the others', calls being partly parallel), and errors flow up attenuated (retries and
  fallbacks absorb some);
* samples ``STEP_S`` apart (minutes, as many metric pipelines scrape), multiplicative noise,
  a daily-ish load wave, and one unrelated disturbance per case (a batch job's CPU burst or a
  deploy's memory step on some other component) so that "the biggest jump" is not always right;
* four fault kinds on one component: ``cpu`` (saturation: CPU up, own latency up), ``memory``
  (a leak: memory climbs, GC time and latency rise late), ``latency`` (a slow dependency or
  network: own latency up, nothing else) and ``error`` (a share of requests fail).
Components export in three conventions, chosen per component (Spring/Micrometer
``http_server_requests_seconds_{count,sum}`` with ``status``, Go/Prometheus client
``requests_total``/``request_duration_seconds_{sum,count}``, and OTel-style
``rpc_server_duration_milliseconds_{sum,count}``), CPU as cAdvisor's
``container_cpu_usage_seconds_total`` and memory as ``process_resident_memory_bytes`` or
``container_memory_working_set_bytes``. Counters are cumulative, as real exporters write them.
"""

from __future__ import annotations

import itertools
import json
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

STEP_S = 60
BASELINE_STEPS = 60  # one fault-free hour before the incident window
WINDOW_STEPS = 30  # the incident window (30 minutes)
LEAD_STEPS = 8  # the fault starts this many steps into the window
FAULTS = ("cpu", "memory", "latency", "error")
_TIERS = (("gateway", 1), ("edge", 4), ("svc", 11), ("backend", 9), ("store", 6))


@dataclass(frozen=True)
class SynthCase:
    case_id: str
    root: str  # for scoring only
    fault: str  # for scoring only
    onset_s: int  # for scoring only
    start_s: int  # first sample (baseline start)
    window_start_s: int
    end_s: int
    prom: Path
    topology: Path


def make_topology(rng: np.random.Generator) -> tuple[list[str], list[tuple[str, str]]]:
    tiers = [[f"{name}-{i}" if n > 1 else name for i in range(n)] for name, n in _TIERS]
    edges: set[tuple[str, str]] = set()
    for upper, lower in itertools.pairwise(tiers):
        for callee in lower:  # every component has a caller
            edges.add((str(rng.choice(upper)), callee))
        for caller in upper:  # every caller calls 1-3 components of the next tier
            size = min(len(lower), int(rng.integers(1, 4)))
            for callee in rng.choice(lower, size=size, replace=False):
                edges.add((caller, str(callee)))
    flat = [s for t in tiers for s in t]
    for _ in range(4):  # cross-tier shortcuts (an edge service reading a store directly)
        a, b = rng.choice(len(tiers) - 2), None
        caller = str(rng.choice(tiers[a]))
        b = str(rng.choice(tiers[int(rng.integers(a + 2, len(tiers)))]))
        edges.add((caller, b))
    mid = tiers[2]
    x, y = (str(s) for s in rng.choice(mid, 2, replace=False))
    edges.add((x, y))  # two mid-tier services call each other: a cycle, as real systems have
    edges.add((y, x))
    return flat, sorted(edges)


def _simulate(
    rng: np.random.Generator,
    services: list[str],
    edges: list[tuple[str, str]],
    root: str,
    fault: str,
    onset: int,
    steps: int,
) -> dict[str, dict[str, np.ndarray]]:
    """Per-service per-step rate, error ratio, latency (s), cpu (cores), memory (bytes)."""
    callees: dict[str, list[str]] = {s: [] for s in services}
    for a, b in edges:
        callees[a].append(b)
    order = _topological_order(services, edges)
    t = np.arange(steps)
    day = 86_400 // STEP_S  # the daily load cycle, at a random phase
    wave = 1.0 + 0.25 * np.sin(2 * np.pi * (t + rng.integers(0, day)) / day)
    entry = 200.0 * wave * (1 + 0.05 * rng.standard_normal(steps))
    # each caller spreads its requests over its callees (a request makes ~1-2 downstream calls)
    n_out = {s: max(1, sum(1 for a, _ in edges if a == s)) for s in services}
    fanout = {(a, b): float(rng.uniform(0.5, 2.0)) / n_out[a] for a, b in edges}
    own_ms = {s: float(rng.uniform(2, 40)) for s in services}
    cpu_per_req = {s: float(rng.uniform(0.0005, 0.004)) for s in services}
    mem0 = {s: float(rng.uniform(80e6, 900e6)) for s in services}
    active = (t >= onset).astype(float)
    ramp = np.clip((t - onset) / 12.0, 0, 1) * active  # a leak builds up over ~12 minutes
    rate = {s: np.zeros(steps) for s in services}
    rate[services[0]] = entry
    for s in order:  # rates flow down the call graph
        for c in callees[s]:
            rate[c] = rate[c] + rate[s] * fanout[(s, c)] * (1 + 0.03 * rng.standard_normal(steps))
    own_lat = {s: own_ms[s] / 1e3 * (1 + 0.08 * rng.standard_normal(steps)) for s in services}
    own_err = {s: np.clip(0.002 + 0.002 * rng.standard_normal(steps), 0, 1) for s in services}
    cpu = {s: rate[s] * cpu_per_req[s] * (1 + 0.06 * rng.standard_normal(steps)) for s in services}
    mem = {s: mem0[s] * (1 + 0.01 * rng.standard_normal(steps)) for s in services}
    gc = {s: 0.002 * (1 + 0.2 * rng.standard_normal(steps)) for s in services}
    if fault == "cpu":
        # a CPU hog: one to three times the component's usual usage on top of its own
        cpu[root] = cpu[root] + active * rng.uniform(1.0, 3.0) * float(np.median(cpu[root]))
        own_lat[root] = own_lat[root] * (1 + active * rng.uniform(2.0, 5.0))
    elif fault == "memory":
        mem[root] = mem[root] * (1 + ramp * rng.uniform(0.6, 1.5))
        gc[root] = gc[root] * (1 + ramp * rng.uniform(5, 15))
        own_lat[root] = own_lat[root] * (1 + ramp * rng.uniform(0.5, 1.5))
    elif fault == "latency":
        own_lat[root] = own_lat[root] + active * rng.uniform(0.15, 0.6)
    else:
        own_err[root] = own_err[root] + active * rng.uniform(0.1, 0.4)
    # one unrelated disturbance elsewhere (a batch job, a deploy) inside the window
    other = str(rng.choice([s for s in services if s != root]))
    burst = (t >= int(rng.integers(steps - WINDOW_STEPS, steps - 3))) & (t < steps)
    burst = burst & (t < np.argmax(burst) + int(rng.integers(2, 6)))
    if rng.random() < 0.5:
        cpu[other] = cpu[other] + burst * rng.uniform(0.5, 1.5)
    else:
        mem[other] = mem[other] * (1 + burst * rng.uniform(0.2, 0.5))
    lat, err = dict(own_lat), dict(own_err)
    for s in reversed(order):  # latency and errors flow up
        if not callees[s]:
            continue
        # calls partly in parallel: the slowest callee counts whole, the others a quarter
        waits = np.stack([min(1.0, fanout[(s, c)]) * lat[c] for c in callees[s]])
        lat[s] = lat[s] + waits.max(axis=0) + 0.25 * (waits.sum(axis=0) - waits.max(axis=0))
        for c in callees[s]:
            err[s] = np.clip(err[s] + 0.6 * min(1.0, fanout[(s, c)]) * err[c], 0, 1)
    return {
        s: {"rate": rate[s], "err": err[s], "lat": lat[s], "cpu": cpu[s], "mem": mem[s]}
        | {"gc": gc[s]}
        for s in services
    }


def _topological_order(services: list[str], edges: list[tuple[str, str]]) -> list[str]:
    """Callers before callees, the back edge of a cycle ignored (BFS from the gateway)."""
    import networkx as nx

    g = nx.DiGraph(edges)
    g.add_nodes_from(services)
    depth = nx.single_source_shortest_path_length(g, services[0])
    return sorted(services, key=lambda s: (depth.get(s, 99), s))


def _exposition(
    series: dict[str, dict[str, np.ndarray]], conventions: dict[str, int], t0: int
) -> str:
    lines: list[str] = []
    steps = len(next(iter(series.values()))["rate"])
    for s, m in series.items():
        pod = f'pod="{s}-7d9f8-{zlib.crc32(s.encode()) % 99999:05d}",container="{s}"'
        svc = f'service="{s}"'
        ok = np.cumsum(m["rate"] * (1 - m["err"]) * STEP_S)
        bad = np.cumsum(m["rate"] * m["err"] * STEP_S)
        dur_ok = np.cumsum(m["rate"] * (1 - m["err"]) * m["lat"] * STEP_S)
        dur_bad = np.cumsum(m["rate"] * m["err"] * m["lat"] * STEP_S)
        # (name, labels, cumulative or gauge values, decimals) per exporter convention
        rows: list[tuple[str, str, np.ndarray, int]] = [
            ("container_cpu_usage_seconds_total", pod, np.cumsum(m["cpu"] * STEP_S), 4)
        ]
        if conventions[s] == 0:  # Spring Boot / Micrometer
            for status, n, d in (("200", ok, dur_ok), ("500", bad, dur_bad)):
                lab = f'{svc},uri="/api",status="{status}"'
                rows += [
                    ("http_server_requests_seconds_count", lab, n, 2),
                    ("http_server_requests_seconds_sum", lab, d, 4),
                ]
            gc = np.cumsum(m["gc"] * m["rate"] / 50.0 * STEP_S)
            rows += [
                ("process_resident_memory_bytes", svc, m["mem"], 0),
                ("jvm_gc_pause_seconds_sum", svc, gc, 4),
            ]
        elif conventions[s] == 1:  # Go Prometheus client
            rows += [
                ("requests_total", f'{svc},code="200"', ok, 2),
                ("requests_total", f'{svc},code="500"', bad, 2),
                ("request_duration_seconds_sum", svc, dur_ok + dur_bad, 4),
                ("request_duration_seconds_count", svc, ok + bad, 2),
                ("process_resident_memory_bytes", svc, m["mem"], 0),
            ]
        else:  # OpenTelemetry SDK exported to Prometheus (milliseconds)
            rows += [
                ("rpc_server_duration_milliseconds_sum", svc, (dur_ok + dur_bad) * 1000.0, 2),
                ("rpc_server_duration_milliseconds_count", svc, ok + bad, 2),
                ("rpc_server_errors_total", svc, bad, 2),
                ("container_memory_working_set_bytes", pod, m["mem"], 0),
            ]
        for i in range(steps):
            ts = (t0 + i * STEP_S) * 1000
            lines += [f"{name}{{{lab}}} {v[i]:.{d}f} {ts}" for name, lab, v, d in rows]
    return "\n".join(lines) + "\n"


def generate(out: Path, seed: int, cases_per_fault: int = 4) -> list[SynthCase]:
    """Write ``cases_per_fault`` cases of each fault kind under ``out`` (one system per seed)."""
    rng = np.random.default_rng(seed)
    services, edges = make_topology(rng)
    conventions = {s: int(rng.integers(0, 3)) for s in services}
    out.mkdir(parents=True, exist_ok=True)
    topo = out / "topology.json"
    topo.write_text(json.dumps({"edges": [list(e) for e in edges]}, indent=1))
    steps = BASELINE_STEPS + WINDOW_STEPS
    roots = [s for s in services if s != services[0]]
    cases = []
    for fault in FAULTS:
        for k, root in enumerate(rng.choice(roots, cases_per_fault, replace=False)):
            root = str(root)
            # one incident every other day from 2026-01-01: one store can hold them all
            t0 = 1_767_225_600 + len(cases) * 2 * 86_400
            onset = BASELINE_STEPS + LEAD_STEPS + int(rng.integers(-3, 4))
            series = _simulate(rng, services, edges, root, fault, onset, steps)
            prom = out / f"{fault}-{k}.prom"
            prom.write_text(_exposition(series, conventions, t0))
            cases.append(
                SynthCase(
                    case_id=f"s{seed}/{fault}-{k}",
                    root=root,
                    fault=fault,
                    onset_s=t0 + onset * STEP_S,
                    start_s=t0,
                    window_start_s=t0 + BASELINE_STEPS * STEP_S,
                    end_s=t0 + steps * STEP_S,
                    prom=prom,
                    topology=topo,
                )
            )
    return cases
