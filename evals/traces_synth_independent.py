"""A second generator of agent-platform traces, written apart from the detector's rules.

Why a second one: ``evals/traces_synth.py`` was written beside the detector and its thresholds
were tuned on it, so a score on it says little about traces of another shape. This generator
shares no code, parameter or naming with it and draws the shapes real agent platforms export:

- three topologies -- ``assistant`` (gateway -> agent loop of LLM turns and tool calls, a
  retriever with a cache in front of a vector store, a memory store), ``multi_agent`` (a
  supervisor fanning out to 2-4 worker agents *concurrently*, each calling a model and tools) and
  ``ingest`` (document loader -> chunker -> a fan-out of embedding batches -> vector upsert ->
  notification webhook);
- remote calls as OpenTelemetry instruments them: a client span in the caller's service around
  the callee's server span, a few ms of wire time between the two; some calls (in-process SDK
  wrappers) have no client span;
- the input's own spelling: ``llm-gateway::ChatCompletion``, ``VectorStore::Query``,
  ``toolRunner::tool:web_search``, ``POST /v1/chat/completions``;
- normal noise: 1-5 agent turns, 0-3 tool calls of several kinds per turn, cache hits that skip
  the vector store, a rate-limited model call retried once and then served, heavy-tailed
  latencies (log-normal sigma 0.25-0.7), health checks, clock skew, errors recorded either as a
  status or only as an HTTP/gRPC code.

Injected faults, each labelled with the ``service::operation`` that caused it:

- ``hang``: a server span runs 20-90 s or never ends -- then it is never exported, like a real
  SDK that exports spans on end; the caller's client span times out;
- ``error``: a module fails (status ERROR, or only HTTP 500/503 or gRPC 14), callers fail too;
- ``retry_storm``: a caller retries a failing callee 4-9 times, as sibling client spans around a
  failing server span, as client spans refused before the callee saw anything (no server span
  at all), or as repeated server spans without client spans; label: the callee;
- ``slow``: a module takes 6-15x its usual time, no error;
- ``lost_span``: a middle span was never exported (its process crashed after its children
  reported); its children are orphans; label: the module whose span is missing;
- ``skipped_call``: a module returns early without calling a downstream it always calls;
- ``duplicate``: a tool call dispatched twice, concurrently; label: the dispatching span.

Protocol: ``TUNE_SEEDS`` were looked at while changing the analytics; ``REPORT_SEEDS`` and the
leave-one-topology-out runs of ``evals/traces_eval_independent.py`` were not.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from tools.telemetry.model import SPAN_SCHEMA

TOPOLOGIES = ("assistant", "multi_agent", "ingest")
FAULTS = ("hang", "error", "retry_storm", "slow", "lost_span", "skipped_call", "duplicate")
TUNE_SEEDS = (11, 12, 13)
REPORT_SEEDS = tuple(range(300, 310))
MS = 1_000_000
DEADLINE_MS = 8_000


@dataclass(frozen=True)
class Module:
    """One instrumented operation: where it runs, what it is called, how long it works."""

    service: str
    operation: str
    work_ms: float  # median own work
    sigma: float
    client_op: str | None = None  # the caller's client span name; None: called in-process


M: dict[str, Module] = {
    "gw": Module("api-gateway", "POST /v1/agent/run", 2.0, 0.3),
    "agent": Module("AgentOrchestrator", "agent.run", 4.0, 0.4, "invoke agent"),
    "plan": Module("AgentOrchestrator", "plan_step", 1.5, 0.5),
    "llm": Module("llm-gateway", "ChatCompletion", 18.0, 0.35, "POST /v1/chat/completions"),
    "provider": Module("llm-gateway", "openai.chat", 650.0, 0.55),
    "retr": Module("Retriever", "Retriever.search", 6.0, 0.4, "retrieve"),
    "cache": Module("Retriever", "cache.lookup", 0.8, 0.3),
    "vec": Module("VectorStore", "Query", 35.0, 0.45, "grpc VectorStore/Query"),
    "mem": Module("memory-redis", "GET", 0.6, 0.5, "redis GET"),
    "tool": Module("toolRunner", "tool:web_search", 120.0, 0.7, "tool.invoke web_search"),
    "sql": Module("toolRunner", "tool:sql_query", 45.0, 0.5, "tool.invoke sql_query"),
    "calc": Module("AgentOrchestrator", "tool:calculator", 0.4, 0.3),
    "db": Module("analytics-db", "SELECT", 20.0, 0.6, "db.query"),
    "sup": Module("Supervisor", "supervise", 3.0, 0.4),
    "worker": Module("WorkerAgent", "worker.solve", 5.0, 0.4, "dispatch worker"),
    "load": Module("DocLoader", "load_document", 25.0, 0.4),
    "chunk": Module("DocLoader", "chunk", 8.0, 0.3),
    "embed": Module("EmbeddingService", "Embed", 55.0, 0.35, "POST /embed"),
    "upsert": Module("VectorStore", "Upsert", 30.0, 0.4, "grpc VectorStore/Upsert"),
    "notify": Module("notifier", "POST /webhook", 40.0, 0.5, "send notification"),
}


def label_of(key: str) -> str:
    m = M[key]
    return f"{m.service}::{m.operation}"


@dataclass
class Fault:
    kind: str
    target: str  # module key
    shape: int = 0  # variant of the fault's shape
    exhausted: bool = False


@dataclass
class _Trace:
    rng: np.random.Generator
    trace_id: str
    fault: Fault | None
    rows: list[dict[str, Any]] = field(default_factory=list)
    n: int = 0
    lost: set[str] = field(default_factory=set)  # span ids never exported
    open_services: dict[str, str] = field(default_factory=dict)  # open span id -> its service

    def sid(self) -> str:
        self.n += 1
        return f"{int(self.rng.integers(1 << 30)):08x}{self.n:08x}"

    def work(self, key: str) -> int:
        m = M[key]
        factor = 1.0
        if self.fault and self.fault.kind == "slow" and self.fault.target == key:
            factor = float(self.rng.uniform(6.0, 15.0))
        return int(m.work_ms * factor * float(np.exp(self.rng.normal(0.0, m.sigma))) * MS)

    def emit(
        self,
        service: str,
        operation: str,
        sid: str,
        parent: str | None,
        start: int,
        end: int | None,
        kind: str,
        error: tuple[str, str] | None = None,
        attrs: dict[str, Any] | None = None,
    ) -> None:
        status, code = "ok", None
        if error is not None:
            status, code = error
        self.rows.append(
            {
                "trace_id": self.trace_id,
                "span_id": sid,
                "parent_id": parent,
                "service": service,
                "operation": operation,
                "kind": kind,
                "start_ns": start,
                "end_ns": end,
                "duration_ns": None if end is None else end - start,
                "status": status,
                "error_code": code,
                "attributes": json.dumps(attrs) if attrs else None,
            }
        )

    def failure(self) -> tuple[str, str]:
        """How a failure is recorded: by status, or only by a code (Zipkin-style exporters)."""
        r = self.rng.random()
        if r < 0.4:
            return "error", str(self.rng.choice(["InternalError", "RateLimitError", "500"]))
        if r < 0.75:
            return "unset", str(self.rng.choice(["500", "503", "502"]))
        return "unset", "14"  # gRPC UNAVAILABLE


Body = Any  # Callable[[_Trace, str, int], tuple[int, bool]]: (end of children, failed)


def _kind(key: str, parent: str | None) -> str:
    return "server" if M[key].client_op is not None or parent is None else "internal"


def _serve(tr: _Trace, key: str, parent: str | None, t: int, body: Body) -> tuple[int, bool]:
    """The server (or in-process) span of ``key`` and its children; returns (end, failed)."""
    m, f = M[key], tr.fault
    sid = tr.sid()
    start = t
    if f and f.target == key and f.kind == "hang":
        if tr.rng.random() < 0.5:
            tr.lost.add(sid)  # never ended: never exported
            end = None
        else:
            end = start + int(tr.rng.uniform(20_000, 90_000) * MS)
        tr.emit(m.service, m.operation, sid, parent, start, end, _kind(key, parent))
        return start + DEADLINE_MS * MS, True
    t += tr.work(key) // 2
    failed = False
    if not (f and f.target == key and f.kind == "skipped_call") and body is not None:
        t, failed = body(tr, sid, t)
    end = t + tr.work(key) // 2
    own = bool(f and f.target == key and f.kind == "error")
    error = tr.failure() if own or failed else None
    if f and f.target == key and f.kind == "lost_span":
        tr.lost.add(sid)
    tr.emit(m.service, m.operation, sid, parent, start, end, _kind(key, parent), error)
    return end, own or failed


def _call(tr: _Trace, key: str, parent: str, t: int, body: Body = None) -> tuple[int, bool]:
    """A call of ``key`` from ``parent``: through a client span when the module is remote,
    retried the way the fault says."""
    m, f = M[key], tr.fault
    if m.client_op is None:
        return _serve(tr, key, parent, t, body)
    storm = bool(f and f.kind == "retry_storm" and f.target == key)
    attempts = int(tr.rng.integers(4, 10)) if storm else 1
    if not storm and key == "llm" and tr.rng.random() < 0.03:
        attempts = 2  # normal: rate limited once, then served
    caller = tr.open_services.get(parent, m.service)
    for i in range(attempts):
        last = i == attempts - 1
        if storm:
            assert f is not None
            bad, shape = not (last and not f.exhausted), f.shape
        else:
            bad, shape = not last, 0
        if bad and shape == 2:  # repeated server spans, no client instrumentation
            sid = tr.sid()
            end = t + tr.work(key)
            tr.emit(m.service, m.operation, sid, parent, t, end, "server", tr.failure())
            t = end + int(tr.rng.uniform(20, 150) * MS)
            continue
        csid = tr.sid()
        start = t
        wire = int(tr.rng.uniform(0.5, 4.0) * MS)
        if bad and shape == 1:  # refused before the callee saw anything
            end = start + wire
            refused = ("error", "ECONNREFUSED")
            tr.emit(caller, m.client_op, csid, parent, start, end, "client", refused)
        elif bad:
            sid = tr.sid()
            end = start + wire + tr.work(key)
            half = wire // 2
            tr.emit(
                m.service, m.operation, sid, csid, start + half, end - half, "server", tr.failure()
            )
            code = "429" if key == "llm" and not storm else "503"
            tr.emit(caller, m.client_op, csid, parent, start, end, "client", ("unset", code))
        else:
            child_end, failed = _serve(tr, key, csid, start + wire // 2, body)
            end = child_end + wire // 2
            hung = bool(f and f.kind == "hang" and f.target == key)
            err = ("error", "DEADLINE_EXCEEDED") if hung else (tr.failure() if failed else None)
            if hung:
                end = start + DEADLINE_MS * MS
            tr.emit(caller, m.client_op, csid, parent, start, end, "client", err)
            return end, failed or hung
        t = end + int(tr.rng.uniform(30, 300) * MS) * (2 ** min(i, 3)) // 4
    return t, storm


def _seq(*steps: Any) -> Body:
    """Run child calls one after another, stopping at the first failure."""

    def body(tr: _Trace, sid: str, t: int) -> tuple[int, bool]:
        for step in steps:
            t, failed = step(tr, sid, t)
            if failed:
                return t, True
            t += int(tr.rng.uniform(0.1, 1.5) * MS)
        return t, False

    return body


def _open(key: str) -> Any:
    """Wrap a body so its span's service is known to the client spans it opens."""

    def wrap(body: Body) -> Body:
        def inner(tr: _Trace, sid: str, t: int) -> tuple[int, bool]:
            tr.open_services[sid] = M[key].service
            return body(tr, sid, t) if body is not None else (t, False)

        return inner

    return wrap


def _node(key: str, body: Body = None) -> Any:
    return lambda tr, parent, t: _call(tr, key, parent, t, _open(key)(body))


def _llm() -> Any:
    return _node("llm", _seq(_node("provider")))


def _retrieval(tr: _Trace) -> Any:
    hit = tr.rng.random() < 0.3 and not (tr.fault and tr.fault.target == "vec")
    return _node("retr", _seq(_node("cache"), *(() if hit else (_node("vec"),))))


def _tools(tr: _Trace) -> list[Any]:
    out: list[Any] = []
    for _ in range(int(tr.rng.integers(0, 3))):
        pick = str(tr.rng.choice(["tool", "sql", "calc"], p=[0.45, 0.3, 0.25]))
        out.append(_node(pick, _seq(_node("db"))) if pick == "sql" else _node(pick))
    return out


def _assistant(tr: _Trace) -> Any:
    turns: list[Any] = [_node("mem")]
    if tr.rng.random() < 0.8 or (tr.fault and tr.fault.target in ("retr", "vec", "cache")):
        turns.append(_retrieval(tr))
    for _ in range(int(tr.rng.integers(1, 5))):
        turns += [_node("plan"), _llm(), *_tools(tr)]
    return _node("gw", _seq(_node("agent", _seq(*turns))))


def _parallel(*calls: Any) -> Body:
    """Start every call at (almost) the same time; the body ends with the slowest."""

    def body(tr: _Trace, sid: str, t: int) -> tuple[int, bool]:
        ends, failed = [], False
        for c in calls:
            e, bad = c(tr, sid, t + int(tr.rng.uniform(0.05, 2.0) * MS))
            ends.append(e)
            failed |= bad
        return max(ends), failed

    return body


def _multi_agent(tr: _Trace) -> Any:
    workers = [
        _node("worker", _seq(_llm(), *_tools(tr))) for _ in range(int(tr.rng.integers(2, 5)))
    ]
    return _node("gw", _seq(_node("sup", _seq(_llm(), _parallel(*workers), _llm()))))


def _ingest(tr: _Trace) -> Any:
    batches = [_node("embed") for _ in range(int(tr.rng.integers(1, 7)))]
    return _node(
        "gw",
        _seq(
            _node(
                "load",
                _seq(_node("chunk"), _parallel(*batches), _node("upsert"), _node("notify")),
            )
        ),
    )


BUILD = {"assistant": _assistant, "multi_agent": _multi_agent, "ingest": _ingest}
# where each fault can strike, per topology (modules that run in every trace of it, or nearly)
TARGETS: dict[str, dict[str, tuple[str, ...]]] = {
    "assistant": {
        "hang": ("provider", "vec", "tool", "mem"),
        "error": ("provider", "vec", "mem", "llm"),
        "retry_storm": ("llm", "mem"),
        "slow": ("vec", "llm", "mem", "cache"),
        "lost_span": ("llm", "retr", "agent"),
        "skipped_call": ("llm", "agent"),
        "duplicate": ("agent",),
    },
    "multi_agent": {
        "hang": ("provider", "worker"),
        "error": ("provider", "worker", "llm"),
        "retry_storm": ("llm", "worker"),
        "slow": ("llm", "sup"),
        "lost_span": ("llm", "worker", "sup"),
        "skipped_call": ("llm",),
        "duplicate": ("sup",),
    },
    "ingest": {
        "hang": ("upsert", "embed", "notify"),
        "error": ("embed", "upsert", "notify", "chunk"),
        "retry_storm": ("notify", "upsert"),
        "slow": ("chunk", "upsert", "notify"),
        "lost_span": ("load",),
        "skipped_call": ("load",),
        "duplicate": ("load",),
    },
}
# the span a duplicate dispatch repeats, per dispatcher
DUPLICATED = {"agent": "mem", "sup": "llm", "load": "upsert"}


@dataclass
class IndependentData:
    spans: pa.Table
    labels: dict[str, tuple[str, str | None]]  # trace id -> (fault kind | "normal", root)
    topology: str


def _fault(rng: np.random.Generator, topology: str, kinds: tuple[str, ...]) -> Fault:
    kind = str(rng.choice(kinds))
    target = str(rng.choice(TARGETS[topology][kind]))
    return Fault(kind, target, shape=int(rng.integers(0, 3)), exhausted=bool(rng.random() < 0.5))


def _duplicate(tr: _Trace, dispatcher: str) -> None:
    """Re-run the dispatcher's call of DUPLICATED[dispatcher] concurrently with the first."""
    sid = next(r["span_id"] for r in tr.rows if r["operation"] == M[dispatcher].operation)
    key = DUPLICATED[dispatcher]
    names = (M[key].operation, M[key].client_op)
    first = min(
        (r for r in tr.rows if r["parent_id"] == sid and r["operation"] in names),
        key=lambda r: r["start_ns"],
    )
    tr.open_services[sid] = M[dispatcher].service
    lag = int(tr.rng.uniform(0.05, 0.5) * (first["end_ns"] - first["start_ns"]))
    _call(tr, key, sid, first["start_ns"] + lag, _open(key)(None))


def _finish(tr: _Trace) -> list[dict[str, Any]]:
    rows = [r for r in tr.rows if r["span_id"] not in tr.lost]
    if tr.rng.random() < 0.01 and len(rows) > 2:  # normal: a few ms of clock skew on one span
        r = rows[int(tr.rng.integers(1, len(rows)))]
        shift = int(tr.rng.uniform(1, 4) * MS)
        r["start_ns"] -= shift
        if r["end_ns"] is not None:
            r["end_ns"] -= shift
    return rows


def generate(
    n_traces: int = 3000,
    seed: int = 0,
    topology: str = "assistant",
    anomaly_rate: float = 0.05,
    kinds: tuple[str, ...] = FAULTS,
    start_ns: int = 1_750_000_000 * 10**9,
) -> IndependentData:
    """``n_traces`` traces of one topology; a share ``anomaly_rate`` gets one fault."""
    rng = np.random.default_rng([seed, TOPOLOGIES.index(topology)])
    rows: list[dict[str, Any]] = []
    labels: dict[str, tuple[str, str | None]] = {}
    t = start_ns
    for i in range(n_traces):
        t += int(rng.exponential(0.04) * 1e9)
        trace_id = f"{rng.integers(1 << 62):016x}{seed:06x}{i:010x}"
        fault = _fault(rng, topology, kinds) if kinds and rng.random() < anomaly_rate else None
        tr = _Trace(rng, trace_id, fault)
        if fault is None and rng.random() < 0.02:  # normal: a health check of one span
            end = t + int(rng.uniform(0.2, 1) * MS)
            tr.emit("api-gateway", "GET /healthz", tr.sid(), None, t, end, "server")
        else:
            BUILD[topology](tr)(tr, None, t)
            if fault is not None and fault.kind == "duplicate":
                _duplicate(tr, fault.target)
        rows.extend(_finish(tr))
        labels[trace_id] = (
            ("normal", None) if fault is None else (fault.kind, label_of(fault.target))
        )
    return IndependentData(pa.Table.from_pylist(rows, schema=SPAN_SCHEMA), labels, topology)
