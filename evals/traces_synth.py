"""Synthetic agent-platform call chains with injected, labelled anomalies (seed ch. 1).

Why synthetic: no public dataset has labelled anomalous call chains of an LLM-agent platform.
Each trace follows the seed's structure

    AgentRouter -> TaskPreprocessor (-> Vectorizer) -> ModelExecutor -> LLMAdapter (xN)
    -> InferenceRPC ; AgentRouter -> CallbackSender -> WebhookDeliver

with log-normal latencies and background noise that is *normal* (optional vectoriser, 1-3 LLM
turns of an agent loop, a webhook retry that succeeds, small clock skew, single-span health
checks). A minority of traces gets one injected anomaly with its ground-truth root span:

- ``hang``: a span runs 15-60 s (sometimes never ends); ancestors time out with errors;
  later steps never run. Root: the hung span.
- ``retry_storm``: 4-8 sequential failing attempts of a call. Root: the retried module.
- ``error``: a span fails; the error propagates to ancestors; later steps never run. Root: it.
- ``missing``: a module returns without calling its downstream (the child subtree is absent).
  Root: the module whose downstream is missing.
- ``fork``: the router dispatches the same task to ModelExecutor twice, concurrently.
  Root: the router.
- ``slow``: a span takes 8-12x its usual time, not long enough to be a hang and with no error:
  only the latency profile changes (the autoencoder's case). Root: the slow span.

Evaluation protocol: thresholds were tuned on seeds 0-4 only; reported figures use seeds
100-109 (``evals/traces_eval.py``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from tools.telemetry.model import LOG_SCHEMA, SPAN_SCHEMA

KINDS = ("hang", "retry_storm", "error", "missing", "fork", "slow")
TUNE_SEEDS = tuple(range(5))
REPORT_SEEDS = tuple(range(100, 110))

# (service, operation, median self ms, sigma)
MODULES: dict[str, tuple[str, str, float, float]] = {
    "router": ("AgentRouter", "route", 3.0, 0.3),
    "pre": ("TaskPreprocessor", "preprocess", 15.0, 0.4),
    "vec": ("Vectorizer", "embed", 40.0, 0.35),
    "exec": ("ModelExecutor", "execute", 5.0, 0.3),
    "llm": ("LLMAdapter", "chat_completion", 12.0, 0.3),
    "rpc": ("InferenceRPC", "/v1/infer", 800.0, 0.45),
    "cb": ("CallbackSender", "send", 4.0, 0.3),
    "hook": ("WebhookDeliver", "POST /hook", 60.0, 0.4),
}
ERRORS = {
    "vec": ("EMBEDDING_FAILED", "ValueError", "embedding dimension mismatch for task"),
    "pre": ("CTX_LOAD_FAILED", "RedisError", "context load failed from redis"),
    "llm": ("MODEL_5XX", "APIError", "model endpoint returned 500"),
    "rpc": ("INFERENCE_OOM", "RuntimeError", "CUDA out of memory during inference"),
    "hook": ("503", "HTTPError", "webhook endpoint unavailable"),
}
PROPAGATED = {
    "timeout": ("TIMEOUT", "TimeoutError", "deadline exceeded waiting for downstream"),
    "error": ("UPSTREAM_ERROR", "UpstreamError", "downstream call failed"),
}
MODEL_VERSIONS = ("v3.1.5", "v3.1.7")


def root_name(key: str) -> str:
    svc, op, _, _ = MODULES[key]
    return f"{svc}::{op}"


@dataclass
class SynthData:
    spans: pa.Table
    logs: pa.Table
    labels: dict[str, tuple[str, str | None]]  # trace_id -> (kind | "normal", root span | None)


@dataclass
class _Builder:
    rng: np.random.Generator
    trace_id: str
    spans: list[dict[str, Any]] = field(default_factory=list)
    logs: list[dict[str, Any]] = field(default_factory=list)
    counter: int = 0

    def new_id(self) -> str:
        self.counter += 1
        return f"{self.rng.integers(1 << 62):016x}"[:8] + f"{self.counter:08x}"

    def self_ms(self, key: str) -> float:
        _, _, med, sigma = MODULES[key]
        return float(med * np.exp(self.rng.normal(0.0, sigma)))

    def log(self, key: str, severity: str, ts: int, sid: str, text: str) -> None:
        svc, op, _, _ = MODULES[key]
        self.logs.append(
            {
                "ts_ns": ts,
                "service": svc,
                "severity": severity,
                "body": f"{svc} {op}: {text} task={self.trace_id[16:24]}",
                "trace_id": self.trace_id,
                "span_id": sid,
            }
        )

    def span(
        self,
        key: str,
        parent: str | None,
        start: int,
        end: int | None,
        *,
        sid: str,
        error: str | None = None,
        attrs: dict[str, Any] | None = None,
    ) -> None:
        svc, op, _, _ = MODULES[key]
        a = dict(attrs or {})
        code = None
        if error:
            code, exc, msg = ERRORS.get(error) or PROPAGATED[error]
            a.update({"exception.type": exc, "exception.message": msg, "error.code": code})
            self.logs.append(
                {
                    "ts_ns": end or start,
                    "service": svc,
                    "severity": "ERROR",
                    "body": f"{svc} {op} failed: {exc} {msg} task={self.trace_id[16:24]} "
                    f"after {((end or start) - start) // 1_000_000} ms",
                    "trace_id": self.trace_id,
                    "span_id": sid,
                }
            )
        self.spans.append(
            {
                "trace_id": self.trace_id,
                "span_id": sid,
                "parent_id": parent,
                "service": svc,
                "operation": op,
                "kind": "server",
                "start_ns": start,
                "end_ns": end,
                "duration_ns": None if end is None else end - start,
                "status": "error" if error else "ok",
                "error_code": code,
                "attributes": json.dumps(a) if a else None,
            }
        )


MS = 1_000_000
TIMEOUT_MS = 10_000
CHILDREN = {
    "router": ("pre", "exec", "cb"),
    "pre": ("vec",),
    "exec": ("llm",),
    "llm": ("rpc",),
    "cb": ("hook",),
}


def _repeats(b: _Builder, parent_key: str, child: str, fault: dict[str, Any]) -> int:
    if fault.get("retry") == child:
        return int(b.rng.integers(4, 9))
    if child == "vec":
        return int(
            b.rng.random() < 0.7
            or "vec" in (fault.get("error"), fault.get("hang"), fault.get("slow"))
        )
    if child == "llm":
        return int(b.rng.integers(1, 4))  # agent loop: 1-3 model turns
    if child == "hook" and not fault and b.rng.random() < 0.01:
        return 2  # noise: a webhook retry that succeeds
    return 1


def _run(
    b: _Builder, key: str, parent: str | None, t: int, fault: dict[str, Any], attrs: dict[str, Any]
) -> tuple[int, bool]:
    """Emit span ``key`` and its subtree starting at ``t``; returns (end, failed)."""
    sid = b.new_id()
    start = t
    if fault.get("hang") == key:
        end = None if b.rng.random() < 0.3 else start + int(b.rng.uniform(15_000, 60_000) * MS)
        b.span(key, parent, start, end, sid=sid, attrs=attrs.get(key))
        return start + TIMEOUT_MS * MS, "timeout"
    slow = float(b.rng.uniform(8.0, 12.0)) if fault.get("slow") == key else 1.0
    t += int(b.self_ms(key) * slow * MS / 2)
    failed: str | None = None
    if fault.get("missing") == key:
        b.log(key, "WARN", t, sid, "empty execution plan, downstream call skipped")
        b.log(
            key,
            "WARN",
            t,
            sid,
            f"returning partial result without downstream after {int(b.rng.integers(1, 50))} ms",
        )
    if key == "router" and fault.get("fork"):
        b.log(
            key, "WARN", t, sid, f"context lookup miss in redis key ctx-{int(b.rng.integers(500))}"
        )
        b.log(key, "WARN", t, sid, "task dispatched twice to ModelExecutor")
    if fault.get("missing") != key:
        for child in CHILDREN.get(key, ()):
            n = _repeats(b, key, child, fault)
            retrying = fault.get("retry") == child or (n == 2 and child == "hook")
            ok_at = n - 1 if not (fault.get("retry") == child and fault.get("exhausted")) else -1
            if key == "router" and child == "exec" and fault.get("fork"):
                end1, f1 = _run(b, child, sid, t, fault, attrs)
                end2, f2 = _run(b, child, sid, t + int(b.rng.uniform(1, 30) * MS), fault, attrs)
                t, failed = max(end1, end2), f1 or f2
            for i in range(0 if key == "router" and child == "exec" and fault.get("fork") else n):
                if retrying:
                    end = t + int(b.self_ms(child) * MS)
                    bad = i != ok_at
                    b.span(
                        child,
                        sid,
                        t,
                        end,
                        sid=b.new_id(),
                        error=child if bad else None,
                        attrs={"retry.attempt": i},
                    )
                    t = end + int(b.rng.uniform(50, 200) * MS)
                    failed = "error" if bad and i == n - 1 else None
                    continue
                t, failed = _run(b, child, sid, t, fault, attrs)
                if failed:
                    break
            if failed:
                break
    end = t + int(b.self_ms(key) * slow * MS / 2)
    own_error = fault.get("error") == key
    b.span(
        key,
        parent,
        start,
        end,
        sid=sid,
        error=key if own_error else failed,
        attrs=attrs.get(key),
    )
    return end, failed or ("error" if own_error else None)


def _fault(rng: np.random.Generator, kind: str) -> tuple[dict[str, Any], str]:
    """An injected fault and its ground-truth root span."""
    if kind == "hang":
        key = str(rng.choice(["rpc", "llm", "vec", "hook"]))
        return {"hang": key}, root_name(key)
    if kind == "retry_storm":
        key = str(rng.choice(["hook", "rpc"]))
        return {"retry": key, "exhausted": bool(rng.random() < 0.6)}, root_name(key)
    if kind == "error":
        key = str(rng.choice(["vec", "pre", "llm", "rpc", "hook"]))
        return {"error": key}, root_name(key)
    if kind == "slow":
        key = str(rng.choice(["rpc", "vec", "hook", "pre"]))
        return {"slow": key}, root_name(key)
    if kind == "missing":
        key = str(rng.choice(["exec", "llm", "cb"]))
        return {"missing": key}, root_name(key)
    return {"fork": True}, root_name("router")


def generate(
    n_traces: int = 2000,
    seed: int = 0,
    anomaly_rate: float = 0.05,
    kinds: tuple[str, ...] = KINDS,
    start_ns: int = 1_700_000_000 * 10**9,
    traces_per_s: float = 20.0,
) -> SynthData:
    """``n_traces`` traces, a share ``anomaly_rate`` anomalous (kinds in equal parts), labelled."""
    rng = np.random.default_rng(seed)
    spans: list[dict[str, Any]] = []
    logs: list[dict[str, Any]] = []
    labels: dict[str, tuple[str, str | None]] = {}
    t = start_ns
    for i in range(n_traces):
        t += int(rng.exponential(1.0 / traces_per_s) * 1e9)
        trace_id = f"{seed:04x}{i:012x}{rng.integers(1 << 62):016x}"
        b = _Builder(rng, trace_id)
        kind = "normal"
        fault: dict[str, Any] = {}
        truth: str | None = None
        if kinds and rng.random() < anomaly_rate:
            kind = kinds[int(rng.integers(len(kinds)))]
            fault, truth = _fault(rng, kind)
        attrs = {
            "exec": {"model.version": str(rng.choice(MODEL_VERSIONS))},
            "pre": {"kv.key": f"ctx-{int(rng.integers(500))}"},
            "router": {"agent.id": f"agent-{int(rng.integers(50))}", "task.id": trace_id[16:28]},
        }
        if kind == "normal" and rng.random() < 0.02:  # noise: a health-check trace of one span
            end = t + int(rng.uniform(0.5, 2) * MS)
            b.spans.append(
                {
                    "trace_id": trace_id,
                    "span_id": b.new_id(),
                    "parent_id": None,
                    "service": "AgentRouter",
                    "operation": "health",
                    "kind": "server",
                    "start_ns": t,
                    "end_ns": end,
                    "duration_ns": end - t,
                    "status": "ok",
                    "error_code": None,
                    "attributes": None,
                }
            )
        else:
            _run(b, "router", None, t, fault, attrs)
        if rng.random() < 0.005 and len(b.spans) > 1:  # noise: a few ms of clock skew on one span
            s = b.spans[int(rng.integers(len(b.spans)))]
            if s["parent_id"] is not None:
                shift = int(rng.uniform(2, 5) * MS)
                s["start_ns"] -= shift
                if s["end_ns"] is not None:
                    s["end_ns"] -= shift
        spans.extend(b.spans)
        logs.extend(b.logs)
        labels[trace_id] = (kind, truth)
    span_table = pa.Table.from_pylist(spans, schema=SPAN_SCHEMA)
    log_rows = [{**r, "pod": None, "attributes": None} for r in logs]
    return SynthData(
        spans=span_table, logs=pa.Table.from_pylist(log_rows, schema=LOG_SCHEMA), labels=labels
    )


def _attr(key: str, value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"key": key, "value": {"boolValue": value}}
    if isinstance(value, int):
        return {"key": key, "value": {"intValue": str(value)}}
    return {"key": key, "value": {"stringValue": str(value)}}


_KINDS = {"internal": 1, "server": 2, "client": 3, "producer": 4, "consumer": 5}


def to_otlp_json(spans: pa.Table) -> dict[str, Any]:
    """OTLP/HTTP JSON (``resourceSpans``) for ``spans``: one resource per service."""
    by_service: dict[str, list[dict[str, Any]]] = {}
    for r in spans.to_pylist():
        span: dict[str, Any] = {
            "traceId": r["trace_id"],
            "spanId": r["span_id"],
            "name": r["operation"],
            "kind": _KINDS.get(r["kind"] or "", 0),
            "startTimeUnixNano": str(r["start_ns"]),
            "endTimeUnixNano": str(r["end_ns"] or 0),
            "attributes": [_attr(k, v) for k, v in json.loads(r["attributes"] or "{}").items()],
            "status": {"code": {"error": 2, "ok": 1}.get(r["status"] or "", 0)},
        }
        if r["parent_id"]:
            span["parentSpanId"] = r["parent_id"]
        if r["error_code"]:  # under the key the OTLP parser reads the code from
            span["attributes"].append(_attr("error_code", r["error_code"]))
        by_service.setdefault(r["service"], []).append(span)
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": [_attr("service.name", svc)]},
                "scopeSpans": [{"scope": {"name": "tamo.synth"}, "spans": sp}],
            }
            for svc, sp in by_service.items()
        ]
    }


def to_jaeger_json(spans: pa.Table) -> dict[str, Any]:
    """Jaeger query-API JSON (``{"data": [trace, ...]}``, microsecond times) for ``spans``.

    A span that never ended gets no duration it does not have: Jaeger cannot express one, so it
    is written with duration 0 (the hang still shows as its parent's timeout and idle time).
    """
    traces: dict[str, dict[str, Any]] = {}
    for r in spans.to_pylist():
        t = traces.setdefault(
            r["trace_id"], {"traceID": r["trace_id"], "spans": [], "processes": {}}
        )
        pid = f"p{len(t['processes']) + 1}"
        for known, proc in t["processes"].items():
            if proc["serviceName"] == r["service"]:
                pid = known
        t["processes"][pid] = {"serviceName": r["service"], "tags": []}
        tags = [
            {"key": k, "type": "string", "value": str(v)}
            for k, v in json.loads(r["attributes"] or "{}").items()
        ]
        if r["status"] == "error":
            tags.append({"key": "error", "type": "bool", "value": True})
        end = r["end_ns"] or r["start_ns"]
        t["spans"].append(
            {
                "traceID": r["trace_id"],
                "spanID": r["span_id"],
                "operationName": r["operation"],
                "references": [
                    {"refType": "CHILD_OF", "traceID": r["trace_id"], "spanID": r["parent_id"]}
                ]
                if r["parent_id"]
                else [],
                "startTime": r["start_ns"] // 1000,
                "duration": (end - r["start_ns"]) // 1000,
                "tags": tags,
                "processID": pid,
            }
        )
    return {"data": list(traces.values())}


def _otlp_logs(logs: pa.Table) -> list[dict[str, Any]]:
    by_service: dict[str, list[dict[str, Any]]] = {}
    for r in logs.to_pylist():
        rec = {
            "timeUnixNano": str(r["ts_ns"]),
            "severityText": r["severity"],
            "body": {"stringValue": r["body"]},
            "traceId": r["trace_id"],
            "spanId": r["span_id"],
        }
        by_service.setdefault(r["service"], []).append(rec)
    return [
        {
            "resource": {"attributes": [_attr("service.name", svc)]},
            "scopeLogs": [{"scope": {"name": "tamo.synth"}, "logRecords": recs}],
        }
        for svc, recs in by_service.items()
    ]


def write_otlp(spans: pa.Table, path: Path, logs: pa.Table | None = None) -> Path:
    """One OTLP JSON file with ``resourceSpans`` (and ``resourceLogs`` when ``logs`` given)."""
    doc = to_otlp_json(spans)
    if logs is not None and logs.num_rows:
        doc["resourceLogs"] = _otlp_logs(logs)
    path.write_text(json.dumps(doc))
    return path
