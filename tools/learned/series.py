"""Raw telemetry tables -> long per-series frames on a fixed time grid.

Why long frames first: metrics, spans and logs arrive at different rates (60 s pod metrics, spans
every few ms, bursts of log lines). Each becomes rows ``(key, entity, channel, bin, value)`` on the
same grid of ``step_ns`` bins, so normalisation and aggregation into X[E, m, l] is one code path
whatever the modality. A bin in which a modality has no data at all (a missing trace file) is
*uncovered* and stays NaN instead of reading as a drop to zero.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from tools.core.severity import Severity, spellings_at_least
from tools.learned.channels import metric_channel
from tools.telemetry.log_templates import TemplateMiner
from tools.telemetry.metric_families import metric_sign
from tools.telemetry.model import service_from_pod
from tools.telemetry.trace_model import SpanForest, span_services

SERIES_COLUMNS = ["key", "entity", "channel", "bin", "value", "sign"]
_ERROR_BODY = re.compile(r"\b(?:ERROR|FATAL|SEVERE)\b|Exception|Traceback|\bpanic\b")
# A statement "never ends a request" when it was seen this often and ended at most this share.
CUT_MIN_SEEN, CUT_MAX_SHARE = 3, 0.1


_DTYPES = {"key": object, "entity": object, "channel": object, "bin": "int64"}
_DTYPES |= {"value": "float64", "sign": "float64"}


def empty_series() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=_DTYPES[c]) for c in SERIES_COLUMNS})


def _entity(service: pd.Series, pod: pd.Series) -> pd.Series:
    svc = service.astype(object)
    missing = svc.isna() | (svc == "")
    if missing.any():
        svc = svc.where(
            ~missing, pod.map(lambda p: service_from_pod(p) if isinstance(p, str) else None)
        )
    return svc


def _bins(ts_ns: pd.Series, start_ns: int, step_ns: int) -> pd.Series:
    return ((ts_ns.astype("int64") - start_ns) // step_ns).astype("int64")


def metric_series(metrics: pa.Table, start_ns: int, step_ns: int, n_bins: int) -> pd.DataFrame:
    """One row per (raw series, bin): the mean sample, forward-filled between scrapes."""
    if metrics.num_rows == 0:
        return empty_series()
    df = metrics.select(["name", "service", "pod", "labels", "ts_ns", "value"]).to_pandas()
    df["entity"] = _entity(df["service"], df["pod"])
    df["channel"] = [metric_channel(n, lb) for n, lb in zip(df["name"], df["labels"], strict=True)]
    df = df.dropna(subset=["entity", "channel", "value"])
    df = df[np.isfinite(df["value"].astype(float))]
    if df.empty:
        return empty_series()
    df["bin"] = _bins(df["ts_ns"], start_ns, step_ns)
    df = df[(df["bin"] >= 0) & (df["bin"] < n_bins)]
    if df.empty:
        return empty_series()
    df["key"] = df["name"] + "|" + df["entity"] + "|" + df["labels"].fillna("")
    wide = df.pivot_table(index="key", columns="bin", values="value", aggfunc="mean")
    wide = wide.reindex(columns=range(n_bins)).ffill(axis=1).bfill(axis=1)
    long = wide.stack().rename("value").reset_index()
    meta = df.drop_duplicates("key").set_index("key")
    long["entity"] = long["key"].map(meta["entity"])
    long["channel"] = long["key"].map(meta["channel"])
    long["sign"] = long["key"].map(meta["name"]).map(metric_sign)
    return long[SERIES_COLUMNS]


def _span_frame(spans: pa.Table) -> pd.DataFrame:
    """One row per exported span with its entity, duration, self time, error flag and wire time
    from the one trace model (:class:`SpanForest`: a client span's time is wire time, charged to
    the callee's edge as ``gap_ms``, and the client span has no self time)."""
    ok = pc.and_(pc.is_valid(spans["start_ns"]), pc.is_valid(spans["duration_ns"]))
    ok = pc.and_(ok, pc.is_valid(span_services(spans)))
    spans = spans.filter(pc.fill_null(ok, False))
    forest = SpanForest.build(spans)
    df = spans.select(["trace_id", "span_id", "parent_id", "start_ns"]).to_pandas()
    names = np.array(forest.service_names, dtype=object)
    df["entity"] = names[forest.service]
    df["dur_ms"] = forest.duration_ns / 1e6
    df["self_ms"] = np.where(forest.client, np.nan, forest.self_ns / 1e6)
    df["is_error"] = forest.is_error
    parent_svc = forest.parent_service()
    df["parent_entity"] = np.where(parent_svc >= 0, names[np.maximum(parent_svc, 0)], None)
    df["gap_ms"] = forest.wire_ns / 1e6
    return df


def trace_series(spans: pa.Table, start_ns: int, step_ns: int, n_bins: int) -> pd.DataFrame:
    """Per-entity latency percentiles, self time, call and error counts, and per-edge network
    time (a client span's duration minus its remote child's, charged to the callee)."""
    if spans.num_rows == 0:
        return empty_series()
    df = _span_frame(spans)
    df["bin"] = _bins(df["start_ns"], start_ns, step_ns)
    df = df[(df["bin"] >= 0) & (df["bin"] < n_bins)]
    if df.empty:
        return empty_series()
    covered = np.sort(df["bin"].unique())
    g = df.groupby(["entity", "bin"])
    stats = pd.DataFrame(
        {
            "trace_p50": g["dur_ms"].median(),
            "trace_p95": g["dur_ms"].quantile(0.95),
            "trace_p99": g["dur_ms"].quantile(0.99),
            "trace_self_p95": g["self_ms"].quantile(0.95),
            "trace_calls": g.size().astype(float),
            "trace_errors": g["is_error"].sum().astype(float),
        }
    )
    # Counts are zero (not missing) in a covered bin where an entity had no span.
    ents = df["entity"].unique()
    full = pd.MultiIndex.from_product([ents, covered], names=["entity", "bin"])
    stats = stats.reindex(full)
    stats[["trace_calls", "trace_errors"]] = stats[["trace_calls", "trace_errors"]].fillna(0.0)
    long = stats.stack().rename("value").reset_index()
    long.columns = ["entity", "bin", "channel", "value"]
    long["key"] = long["channel"] + "|" + long["entity"]
    edges = df.dropna(subset=["parent_entity", "gap_ms"])
    if not edges.empty:
        e = edges.groupby(["parent_entity", "entity", "bin"])["gap_ms"].quantile(0.95)
        e = e.rename("value").reset_index()
        e["key"] = "edge|" + e["parent_entity"] + "|" + e["entity"]
        e["channel"] = "trace_edge_latency"
        long = pd.concat([long, e[["key", "entity", "channel", "bin", "value"]]])
    long["sign"] = 1.0
    return long[SERIES_COLUMNS]


def _log_frame(logs: pa.Table, miner: TemplateMiner) -> pd.DataFrame:
    body = pc.fill_null(logs.column("body"), "")
    sev = pc.utf8_upper(pc.fill_null(logs.column("severity"), ""))
    is_error = pc.or_(
        pc.is_in(sev, value_set=pa.array(spellings_at_least(Severity.ERROR))),
        pc.match_substring_regex(
            pc.utf8_slice_codeunits(body, 0, 400), pattern=_ERROR_BODY.pattern
        ),
    )
    df = pd.DataFrame(
        {
            "ts_ns": logs.column("ts_ns").to_numpy(zero_copy_only=False),
            "entity": _entity(
                logs.column("service").to_pandas(), logs.column("pod").to_pandas()
            ).to_numpy(),
            "is_error": is_error.to_numpy(zero_copy_only=False),
            "template": miner.template_ids(body),
            "trace_id": logs.column("trace_id").to_numpy(zero_copy_only=False),
        }
    )
    df = df.dropna(subset=["entity", "ts_ns"])
    # 1.0 where the line is the last one its entity wrote for its trace, NaN without a trace id
    traced = df[df["trace_id"].fillna("") != ""].sort_values("ts_ns", kind="stable")
    last = traced.groupby(["entity", "trace_id"]).cumcount(ascending=False) == 0
    df["last"] = last.astype(float).reindex(df.index)
    return df


def log_templates_by_entity(logs: pa.Table, miner: TemplateMiner) -> dict[str, set[int]]:
    """The template ids each entity wrote, mined with ``miner`` (the alignment's one miner, so
    the window's lines are compared with the baseline's by the same ids)."""
    if logs.num_rows == 0:
        return {}
    df = _log_frame(logs, miner)
    return {e: set(g["template"]) for e, g in df.groupby("entity")}


def log_endings(logs: pa.Table, miner: TemplateMiner) -> pd.Series:
    """``(entity, template) -> share`` of the entity's traces that this statement ended, for
    statements seen at least ``CUT_MIN_SEEN`` times in traced lines.

    Why: an injected exception or early return cuts a method's code path, so the statement before
    the cut becomes the last line the service writes for a request, although it normally never
    is. Compared per statement, this is indifferent to the workload mix that moves raw counts."""
    if logs.num_rows == 0:
        return pd.Series(dtype="float64")
    df = _log_frame(logs, miner).dropna(subset=["last"])
    stats = df.groupby(["entity", "template"])["last"].agg(["size", "mean"])
    return stats.loc[stats["size"] >= CUT_MIN_SEEN, "mean"]


def log_series(
    logs: pa.Table,
    miner: TemplateMiner,
    start_ns: int,
    step_ns: int,
    n_bins: int,
    known_templates: dict[str, set[int]] | None,
    endings: pd.Series | None = None,
) -> pd.DataFrame:
    """Per-entity line counts, error-level counts, error lines of templates unseen in the
    baseline, and requests whose code path was cut (see :func:`log_endings`)."""
    if logs.num_rows == 0:
        return empty_series()
    df = _log_frame(logs, miner)
    df["bin"] = _bins(df["ts_ns"], start_ns, step_ns)
    df = df[(df["bin"] >= 0) & (df["bin"] < n_bins)]
    if df.empty:
        return empty_series()
    if known_templates is None:
        df["is_novel"] = False
    else:
        known = df["entity"].map(lambda e: known_templates.get(e, set()))
        unseen = [t not in k for t, k in zip(df["template"], known, strict=True)]
        # only error-level lines of an unseen template: a new *failure* message, not a new
        # wording of business as usual (workload mix changes make plenty of those)
        df["is_novel"] = np.asarray(unseen, dtype=bool) & df["is_error"].to_numpy(dtype=bool)
    if endings is None or endings.empty:
        df["is_cut"] = False
    else:
        idx = pd.MultiIndex.from_arrays([df["entity"], df["template"]])
        share = endings.reindex(idx).to_numpy(dtype=float)
        df["is_cut"] = (df["last"].to_numpy() == 1.0) & (share <= CUT_MAX_SHARE)
    covered = np.sort(df["bin"].unique())
    g = df.groupby(["entity", "bin"])
    stats = pd.DataFrame(
        {
            "log_lines": g.size().astype(float),
            "log_errors": g["is_error"].sum().astype(float),
            "log_novel": g["is_novel"].sum().astype(float),
            "log_cut": g["is_cut"].sum().astype(float),
        }
    )
    full = pd.MultiIndex.from_product([df["entity"].unique(), covered], names=["entity", "bin"])
    stats = stats.reindex(full).fillna(0.0)
    long = stats.stack().rename("value").reset_index()
    long.columns = ["entity", "bin", "channel", "value"]
    long["key"] = long["channel"] + "|" + long["entity"]
    long["sign"] = 1.0
    return long[SERIES_COLUMNS]
