"""Metric and log signatures of a group of anomalous traces (seed ch. 3).

Why span-derived RED symptoms as well as metrics: the seed reads latency, retry and callback
signals from Prometheus, but a trace file alone must still yield a signature, so each symptom is
computed from the group's spans against normal behaviour and OR-ed with the same symptom read
from metric series of the window when a metrics table is given (a metric name mentioning
latency/retry/callback/error whose mean inside the group's window exceeds the mean outside it).
The log signature is the group's most frequent error keywords (exception types, error codes)
and log templates mined from its traces' WARN/ERROR lines.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tools.core.severity import Severity, spellings_at_least
from tools.telemetry.log_templates import TemplateMiner, mask
from tools.traces.config import TraceConfig
from tools.traces.fingerprint import METRIC_FLAGS

_METRIC_PATTERNS = {
    # first match wins: a callback failure rate is a callback drop before it is an error rate
    "latency_spike": re.compile(r"latency|duration|response_time", re.I),
    "callback_drop": re.compile(r"callback|webhook", re.I),
    "retry_peak": re.compile(r"retr", re.I),
    "error_spike": re.compile(r"error|fail|5xx", re.I),
}
_KEYWORD_ATTRS = (
    "otel.status_description",
    "exception.type",
    "error.code",
    "error.type",
    "exception.message",
    "status.message",
)


def span_symptoms(stats: dict[str, float], config: TraceConfig) -> dict[str, bool]:
    """Symptoms from a group's span statistics (shares of traces and ratios to normal)."""
    return {
        "latency_spike": stats["p95_ms"]
        > config.latency_spike_ratio * max(stats["base_p95_ms"], 1e-3),
        "error_spike": stats["error_rate"] > stats["base_error_rate"] + config.error_spike_delta,
        "retry_peak": stats["retry_share"] >= 0.5,
        "callback_drop": stats["terminal_lost_share"] >= 0.5,
        "hung_spans": stats["hung_share"] >= 0.5,
        "missing_spans": stats["missing_share"] >= 0.5,
        "span_volume_spike": stats["spans_ratio"] > 1.3,
        "span_volume_drop": stats["spans_ratio"] < 0.7,
        "throughput_drop": stats["module_lost_share"] >= 0.5,
        "duplicate_dispatch": stats["fork_share"] >= 0.5,
    }


def metric_symptoms(
    metrics: pa.Table | None, start_ns: int, end_ns: int, config: TraceConfig
) -> dict[str, bool]:
    """Symptoms read from metric series: mean inside [start, end] vs mean outside it."""
    flags = dict.fromkeys(METRIC_FLAGS, False)
    if metrics is None or metrics.num_rows == 0:
        return flags
    names = pc.unique(metrics["name"]).to_pylist()
    ts = metrics["ts_ns"]
    inside = pc.and_(pc.greater_equal(ts, start_ns), pc.less_equal(ts, end_ns))
    for name in names:
        if name is None:
            continue
        flag = next((f for f, p in _METRIC_PATTERNS.items() if p.search(name)), None)
        if flag is None or flags[flag]:
            continue
        sel = pc.equal(metrics["name"], name)
        vin = pc.mean(metrics.filter(pc.and_(sel, inside))["value"]).as_py()
        vout = pc.mean(metrics.filter(pc.and_(sel, pc.invert(inside)))["value"]).as_py()
        if (
            vin is not None
            and vout is not None
            and vin > config.latency_spike_ratio * max(vout, 1e-9)
        ):
            flags[flag] = True
    return flags


def attribute_objects(texts: list[str | None]) -> Iterator[dict[str, object]]:
    """The span-attribute JSON texts that decode to an object; empty or garbled ones are skipped."""
    for text in texts:
        if not text:
            continue
        try:
            obj = json.loads(text)
        except ValueError:
            continue
        if isinstance(obj, dict):
            yield obj


def keywords_from_attributes(
    attrs: list[str | None], error_codes: list[str | None]
) -> Counter[str]:
    """Error keywords of error/hung spans: exception types, error codes, status messages."""
    out: Counter[str] = Counter(c for c in error_codes if c)
    for obj in attribute_objects(attrs):
        for key in _KEYWORD_ATTRS:
            val = obj.get(key)
            if isinstance(val, str | int) and str(val):
                out[mask(str(val))[:80]] += 1
    return out


def log_keywords(
    logs: pa.Table | None, trace_ids: list[str], root_span_ids: set[str], miner: TemplateMiner
) -> Counter[str]:
    """Templates of the WARN/ERROR log lines of ``trace_ids``, mined with ``miner``; lines of
    the root spans themselves weigh more than lines their failure caused upstream."""
    out: Counter[str] = Counter()
    if logs is None or logs.num_rows == 0 or not trace_ids:
        return out
    sel = pc.is_in(logs["trace_id"], pa.array(trace_ids))
    sev = pc.fill_null(pc.utf8_upper(logs["severity"]), "")
    bad = pc.is_in(sev, pa.array(spellings_at_least(Severity.WARN)))
    rows = logs.filter(pc.and_(sel, bad)).select(["body", "span_id"]).to_pylist()
    by_id: Counter[int] = Counter()
    for row in rows:
        if row["body"]:
            weight = 5 if row["span_id"] in root_span_ids else 1
            by_id[miner.add(row["body"]).template_id] += weight
    # templates generalise while lines stream in: name each by its final form
    final = {t.template_id: t.template for t in miner.templates()}
    for tid, n in by_id.items():
        out[final[tid]] += n
    return out


def top_keywords(counts: Counter[str], k: int) -> list[str]:
    return [w for w, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:k]]


def group_stats(
    trace_ms: np.ndarray,
    n_spans: np.ndarray,
    errors: np.ndarray,
    retry: np.ndarray,
    hung: np.ndarray,
    missing: np.ndarray,
    terminal_lost: np.ndarray,
    module_lost: np.ndarray,
    forked: np.ndarray,
) -> dict[str, float]:
    """Shares and quantiles over one group's traces (arrays are per trace)."""
    total_spans = max(float(n_spans.sum()), 1.0)
    return {
        "p95_ms": float(np.quantile(trace_ms, 0.95)) if len(trace_ms) else 0.0,
        "error_rate": float(errors.sum()) / total_spans,
        "retry_share": float(retry.mean()) if len(retry) else 0.0,
        "hung_share": float(hung.mean()) if len(hung) else 0.0,
        "missing_share": float(missing.mean()) if len(missing) else 0.0,
        "terminal_lost_share": float(terminal_lost.mean()) if len(terminal_lost) else 0.0,
        "mean_spans": float(n_spans.mean()) if len(n_spans) else 0.0,
        "module_lost_share": float(module_lost.mean()) if len(module_lost) else 0.0,
        "fork_share": float(forked.mean()) if len(forked) else 0.0,
    }
