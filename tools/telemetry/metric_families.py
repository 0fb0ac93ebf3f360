"""Metric names from any convention -> the family of signal they carry (cpu, latency, ...).

Why by name and unit: Prometheus (``container_cpu_usage_seconds_total``,
``http_server_requests_seconds_bucket``), OpenTelemetry (``http.server.request.duration``),
cAdvisor, Nezha (``pod_cpu_usage_rate_percent``) and RCD (``carts_lat_90``) name the same
signals differently, and nothing else about a series says what it measures. The rules are an
ordered list of keyword patterns over the normalised name (lower case, ``.``/``-`` as ``_``); the
first match wins, the unit suffix decides only when no keyword does, and a series no rule claims
is ``generic``: still a channel, never dropped. docs/telemetry.md lists the rules.

Counters are cumulative, so their raw level says nothing: :func:`prepare_metrics` turns
``*_total`` / ``*_count`` / ``*_sum`` series into per-second rates (a drop is a counter reset, as
in PromQL's ``rate``), adds a histogram's mean (``_sum`` rate / ``_count`` rate: a latency) in
place of its ``_sum``, drops its ``_bucket`` series (the mean summarises them), turns request
counters split by a status label into an error ratio (failed / all) in place of the failed
counts, and counts what it met: non-finite samples, constant series, series absent from a part.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import lru_cache

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from tools.telemetry.model import METRIC_SCHEMA

FAMILIES: tuple[str, ...] = (
    "cpu",
    "memory",
    "gc",
    "network",
    "disk",
    "latency",
    "load",
    "errors",
    "availability",
    "saturation",
    "generic",
)
# Latency and failure series are the service level indicators (BARO watches these for the onset).
SLI_FAMILIES = frozenset({"latency", "errors", "availability"})

# Series that describe something else than the entity they are labelled with: a host shared by
# many services would blame every tenant; a client-side latency measures the *callee*.
_EXCLUDE = re.compile(
    r"(^|_)(node|machine|host)_|client_lat|client_(request_)?duration|rpc_client_"
)
_RULES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("availability", re.compile(r"success|availab|apdex|(^|_)up$|healthy")),
    ("errors", re.compile(r"error|err(_|$)|fail|5xx|exception|fault|panic|reject|abort")),
    ("gc", re.compile(r"(^|_)gc(_|$)|garbage")),
    ("cpu", re.compile(r"cpu|throttl")),
    ("memory", re.compile(r"mem|rss|heap|resident|working_set|swap|page_fault")),
    (
        "saturation",
        re.compile(
            r"thread|queue|backlog|pending|inflight|in_flight|active_requests|concurren"
            r"|goroutine|connections|pool|saturat|waiting"
        ),
    ),
    (
        "network",
        re.compile(
            r"network|(^|_)net_|receive|transmit|(^|_)rx_|(^|_)tx_|bytes_(sent|recv)|packet"
            r"|tcp|socket|bandwidth"
        ),
    ),
    ("disk", re.compile(r"disk|(^|_)fs_|filesystem|_io(_|$)|iops|syscall|read|write|blkio")),
    ("latency", re.compile(r"latency|duration|response_time|_lat(_|$)|rtt|elapsed")),
    (
        "load",
        re.compile(
            r"workload|_lod$|load|request|ops|qps|rps|throughput|calls|hits|invocation"
            r"|transaction|message"
        ),
    ),
)
# Used only when no keyword matched: the unit says what a gauge measures.
_UNIT_RULES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("latency", re.compile(r"_(seconds|milliseconds|ms|us|microseconds)$")),
    ("memory", re.compile(r"_bytes$")),
)
HISTOGRAM_MEAN = "_mean"  # the suffix of the series prepare_metrics derives from _sum/_count
_COUNTER = re.compile(r"_(total|count|sum)$")
_HISTOGRAM_SUFFIX = re.compile(r"_(count|sum|bucket)$")
# Label keys whose value says a request failed (Prometheus ``code``, OTel ``http.response...``).
_STATUS_KEYS = ("code", "status", "status_code", "http_status_code", "http_response_status_code")
_FAILED_STATUS = re.compile(r"^(5\d\d|error|server_error|fail\w*)$", re.IGNORECASE)


def normalise(name: str) -> str:
    """``http.server.request.duration`` -> ``http_server_request_duration``."""
    return re.sub(r"[.\-/:\s]+", "_", name.strip().lower())


@lru_cache(maxsize=65536)
def metric_family(name: str, unit: str | None = None) -> str | None:
    """The family of a metric name (``None``: describes another entity, not used)."""
    low = normalise(name)
    if _EXCLUDE.search(low):
        return None
    if low.endswith("_count"):
        # a histogram's or summary's count is how many requests (or events) there were
        stem = metric_family(low.removesuffix("_count"))
        return stem if stem in ("errors", "gc") else "load"
    if low.endswith(HISTOGRAM_MEAN):  # a histogram's mean: its unit says what it averages
        stem = low.removesuffix(HISTOGRAM_MEAN)
        return next((f for f, p in _UNIT_RULES if p.search(stem)), None) or metric_family(stem)
    for family, pattern in _RULES:
        if pattern.search(low):
            return family
    text = low if unit is None else f"{low}_{normalise(unit)}"
    base = _COUNTER.sub("", text)
    for family, pattern in _UNIT_RULES:
        if pattern.search(base):
            return family
    return "generic"


def _label_json(labels: str | None) -> dict[str, object]:
    if not labels:
        return {}
    try:
        parsed = json.loads(labels)
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _label_map(labels: str | None) -> dict[str, str]:
    return {normalise(str(k)): str(v) for k, v in _label_json(labels).items()}


@lru_cache(maxsize=65536)
def series_family(name: str, labels: str | None) -> str | None:
    """:func:`metric_family` refined by labels: requests with a failed status are errors, and
    a ``unit`` label (OTel's metric unit, when the source kept it) is the unit."""
    lab = _label_map(labels)
    family = metric_family(name, lab.get("unit"))
    if family in ("load", "generic"):  # a count of failed requests; their latency stays latency
        status = next((lab[k] for k in _STATUS_KEYS if k in lab), None)
        outcome = lab.get("outcome", "")
        if (status is not None and _FAILED_STATUS.match(status)) or outcome.upper() in (
            "SERVER_ERROR",
            "FAILURE",
        ):
            return "errors"
    return family


def metric_sign(name: str) -> float:
    """+1, or -1 for 'higher is better' series (success, availability) so that positive z means
    worse."""
    return -1.0 if metric_family(name) == "availability" else 1.0


def is_counter(name: str) -> bool:
    """Cumulative by the Prometheus/OpenMetrics naming rules (``_total``, ``_count``, ``_sum``)."""
    return bool(_COUNTER.search(normalise(name)))


@dataclass
class MetricHealth:
    """What :func:`prepare_metrics` found wrong with the series it was given, for the report."""

    series: int = 0
    non_finite_samples: int = 0
    constant_series: int = 0
    missing_series: int = 0  # in the fault-free part but not in the window, or the reverse
    counters_as_rates: int = 0
    histogram_means: int = 0
    error_ratios: int = 0
    buckets_dropped: int = 0
    by_family: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return {k: v for k, v in self.__dict__.items() if v}


def _series_key(df: pd.DataFrame) -> pd.Series:
    return df["name"] + "|" + df["service"].fillna("") + "|" + df["pod"].fillna("")


def _rates(df: pd.DataFrame) -> pd.DataFrame:
    """Per-second increase of each counter series between consecutive samples (resets read as
    a restart from 0, as PromQL's ``rate`` does); a series' first sample has no rate."""
    df = df.sort_values(["key", "ts_ns"])
    dv = df.groupby("key")["value"].diff()
    dt = df.groupby("key")["ts_ns"].diff() / 1e9
    inc = dv.where(dv >= 0, df["value"])  # a reset: the counter restarted from 0
    out = df.assign(value=inc / dt)
    return out[dt > 0]


def _histogram_means(rated: pd.DataFrame) -> tuple[pd.DataFrame, set[str]]:
    """``X_sum`` / ``X_count`` rate pairs (same labels) -> one ``X_mean`` series (a latency
    when X is a duration); returns the means and the names of the ``_sum`` series they replace."""
    stem = rated["name"].str.replace(r"_(sum|count)$", "", regex=True)
    sums = rated[rated["name"].str.endswith("_sum")].assign(stem=stem)
    counts = rated[rated["name"].str.endswith("_count")].assign(stem=stem)
    series = ["stem", "service", "pod", "labels"]
    pairs = sums.merge(
        counts[[*series, "ts_ns", "value"]], on=[*series, "ts_ns"], suffixes=("", "_n")
    )
    if pairs.empty:
        return rated.iloc[:0].drop(columns="key"), set()
    busy = pairs["value_n"] > 0
    pairs["value"] = (pairs["value"] / pairs["value_n"]).where(busy)
    # an idle interval has no mean: carry the previous one (no requests is not zero latency)
    pairs["value"] = pairs.groupby(series, dropna=False)["value"].ffill()
    means = pairs.dropna(subset=["value"]).assign(name=lambda f: f["stem"] + HISTOGRAM_MEAN)
    return means[list(METRIC_SCHEMA.names)], set(sums["name"].unique()) & set(pairs["name"])


def _status_of(labels: str | None) -> tuple[str | None, str]:
    """(the request status a series is labelled with, its labels without it)."""
    lab = _label_json(labels)
    key = next((k for k in lab if normalise(k) in _STATUS_KEYS or normalise(k) == "outcome"), None)
    if key is None:
        return None, labels or ""
    status = str(lab.pop(key))
    return status, json.dumps(lab, sort_keys=True, separators=(",", ":"))


def _failed(status: str) -> bool:
    return bool(_FAILED_STATUS.match(status)) or status.upper() in ("SERVER_ERROR", "FAILURE")


def _error_ratios(rated: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    """Request counters split by status -> one ``<stem>_error_ratio`` series per endpoint.

    Why: a failed-request count sits in the same metric name as the successful ones, so its
    level is judged against theirs (a 2/s error count beside 200/s of 200s reads as nothing);
    the failed share of all requests is the SRE's error ratio. Returns the ratios and a mask of
    the failed-status count rows they replace.
    """
    parsed = rated["labels"].map(_status_of)
    status = parsed.map(lambda p: p[0])
    counts = rated["name"].map(lambda n: series_family(n, None) == "load").astype(bool)
    has = status.notna().astype(bool) & counts
    if not has.any():
        return rated.iloc[:0].drop(columns="key"), pd.Series(False, index=rated.index)
    part = rated[has].assign(rest=parsed[has].map(lambda p: p[1]), failed=status[has].map(_failed))
    part["bad"] = part["value"].where(part["failed"], 0.0)
    series = ["name", "service", "pod", "rest", "ts_ns"]
    agg = part.groupby(series, dropna=False)[["value", "bad"]].sum().reset_index()
    agg = agg[agg["value"] > 0]
    ratio = agg.assign(
        name=agg["name"].str.replace(r"_(total|count)$", "", regex=True) + "_error_ratio",
        labels=agg["rest"],
        value=agg["bad"] / agg["value"],
    )
    replaced = pd.Series(False, index=rated.index)
    replaced[part.index[part["failed"]]] = True
    return ratio[list(METRIC_SCHEMA.names)], replaced


_SERIES = ["name", "service", "pod", "labels"]


def _derived(table: pa.Table, health: MetricHealth, scored: bool) -> pa.Table:
    """Counters as rates, histogram means, error ratios (the pandas part of the preparation)."""
    df = table.to_pandas().assign(key=lambda f: _series_key(f) + "|" + f["labels"].fillna(""))
    bucket = df["name"].str.endswith("_bucket")
    counter = ~bucket & df["name"].map(is_counter)
    rated = _rates(df[counter])
    means, replaced = _histogram_means(rated)
    ratios, failed_counts = _error_ratios(rated)
    rated = rated[~rated["name"].isin(replaced) & ~failed_counts].drop(columns="key")
    out = pd.concat([df[~counter & ~bucket].drop(columns="key"), rated, means, ratios])
    if scored:
        health.buckets_dropped += int(df.loc[bucket, "key"].nunique())
        health.counters_as_rates += int(df.loc[counter, "key"].nunique())
        health.error_ratios += int(ratios.groupby(_SERIES, dropna=False).ngroups)
        health.histogram_means += int(means.groupby(_SERIES, dropna=False).ngroups)
    return pa.Table.from_pandas(out, schema=METRIC_SCHEMA, preserve_index=False)


def prepare_metrics(
    metrics: pa.Table, health: MetricHealth | None = None, *, scored: bool = True
) -> tuple[pa.Table, MetricHealth]:
    """Metric samples as the aligner should read them (see module doc) and what was wrong.

    ``scored`` marks the incident window (its series are counted per family); the fault-free
    part adds only its dropped samples to ``health``. Gauges only (the datasets' case) stay in
    Arrow: only counters and histograms need the pandas pass.
    """
    health = health or MetricHealth()
    if metrics.num_rows == 0:
        return metrics, health
    table = metrics.select(list(METRIC_SCHEMA.names))
    finite = pc.fill_null(pc.is_finite(table.column("value")), False)
    health.non_finite_samples += table.num_rows - int(pc.sum(finite).as_py() or 0)
    table = table.filter(finite)
    names = pc.unique(table.column("name")).to_pylist()
    if any(is_counter(n) or n.endswith("_bucket") for n in names):
        table = _derived(table, health, scored)
    if scored and table.num_rows:
        stats = table.group_by(_SERIES, use_threads=False).aggregate(
            [("value", "min"), ("value", "max")]
        )
        health.series += stats.num_rows
        same = pc.equal(stats.column("value_min"), stats.column("value_max"))
        health.constant_series += int(pc.sum(same).as_py() or 0)
        for name, labels in zip(
            stats.column("name").to_pylist(), stats.column("labels").to_pylist(), strict=True
        ):
            family = series_family(name, labels) or "not used"
            health.by_family[family] = health.by_family.get(family, 0) + 1
    return table, health


def count_missing(window: pa.Table, baseline: pa.Table, health: MetricHealth) -> None:
    """Series present in only one of the fault-free part and the window (when both exist)."""
    if window.num_rows == 0 or baseline.num_rows == 0:
        return
    keys = []
    for t in (window, baseline):
        df = t.select(["name", "service", "pod", "labels"]).to_pandas().drop_duplicates()
        keys.append(set(_series_key(df) + "|" + df["labels"].fillna("")))
    health.missing_series += len(keys[0] ^ keys[1])
