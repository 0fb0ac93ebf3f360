"""Alignment: any subset of metrics, traces and logs -> the aligned tensor X[E, m, l].

Why robust z-scores against a fault-free baseline: raw units differ by orders of magnitude (bytes,
millicores, milliseconds, line counts) and every service has its own normal. Each raw series is
scaled by the median and MAD/IQR of its own fault-free part, so "how unusual" is comparable across
entities, channels and systems, and one outlier in the baseline cannot move the scale. When a
series has no fault-free data (Online Boutique has no fault-free traces), the first part of the
incident window stands in for it and the tensor records that in ``fallback``.

Why no label: the engine sees an :class:`~tools.learned.incident.IncidentTelemetry` (tables,
window, fault-free baseline, and an alert time only when one fired). Without an alert the fault
onset is found by :mod:`tools.learned.changepoint` from the z-scores themselves; the steps before
it are a lead-in that joins the baseline.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import networkx as nx
import numpy as np
import pandas as pd
import pyarrow as pa

from tools.core.errors import NotFoundError
from tools.learned.changepoint import ChangePoint, detect
from tools.learned.channels import CHANNEL_INDEX, CHANNELS, LOG_CHANNELS, TRACE_CHANNELS
from tools.learned.incident import IncidentTelemetry
from tools.learned.series import (
    empty_series,
    log_endings,
    log_series,
    log_templates_by_entity,
    metric_series,
    trace_series,
)
from tools.telemetry.log_templates import TemplateMiner
from tools.telemetry.metric_families import MetricHealth, count_missing, prepare_metrics
from tools.telemetry.model import (
    LOG_SCHEMA,
    METRIC_SCHEMA,
    SPAN_SCHEMA,
    CaseTelemetry,
    Incident,
    Modality,
    TimeWindow,
    empty_table,
)
from tools.telemetry.sources import (
    LogQuery,
    LogSource,
    MetricQuery,
    MetricSource,
    TraceQuery,
    TraceSource,
)
from tools.telemetry.topology import Topology, merged_call_graph
from tools.telemetry.trace_model import SpanForest, service_calls

Z_CLIP = 100.0
COUNT_CHANNELS = {"trace_calls", "trace_errors", "log_lines", "log_errors", "log_novel", "log_cut"}
# Smallest scale, as a share of the normal level, per family: a 60 s latency series with four
# fault-free samples can have a MAD of almost nothing, and then any jitter reads as z = 100.
REL_FLOOR = {
    "metric_latency": 0.5,
    "trace_p50": 0.25,
    "trace_p95": 0.5,
    "trace_p99": 0.5,
    "trace_self_p95": 0.5,
    "trace_edge_latency": 0.5,
    "metric_load": 0.2,
    "trace_calls": 0.2,
    "log_lines": 0.2,
    "metric_network": 0.2,
    "metric_io": 0.2,
    "metric_cpu": 0.1,
    "metric_memory": 0.05,
}
MIN_STEP_S, MAX_STEP_S, DEFAULT_STEP_S = 5.0, 15.0, 15.0
FALLBACK_FRACTION = 0.3
POP_FLOOR = 0.25  # share of the window used as baseline when a series has none


@dataclass
class AlignedTelemetry:
    """X[E, m, l] of robust z-scores (positive = worse), entity/channel names and context."""

    X: np.ndarray  # float32 [E, m, l], 0 where nothing is known
    raw: np.ndarray  # float64 [E, m, l], raw value of the dominant series, NaN where absent
    present: np.ndarray  # bool [E, m]: the channel has data for this entity
    entities: list[str]
    channels: list[str]
    step_s: float
    start_ns: int
    call_graph: nx.DiGraph
    modalities: list[Modality]
    baseline_X: np.ndarray  # float32 [E, m, lb] fault-free part on the same scale (may be lb=0)
    edge_z: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)
    fallback: list[str] = field(default_factory=list)  # modalities normalised on the window itself
    onset_bin: int = 0  # first step at/after the fault (alert) time; earlier steps are lead-in
    system: str | None = None
    change_point: ChangePoint | None = None  # set when the onset was detected (no alert time)
    # dropped/odd metric series (non-finite samples, constant, missing, counters read as rates)
    metric_health: dict[str, object] = field(default_factory=dict)

    @property
    def onset_detected(self) -> bool:
        """The onset came from the change-point detector, not from an alert time."""
        return self.change_point is not None

    @property
    def no_change_point(self) -> bool:
        """The detector found no change in the window: there is nothing to localise."""
        return self.change_point is not None and not self.change_point.found

    @property
    def shape(self) -> tuple[int, int, int]:
        E, m, steps = self.X.shape
        return (E, m, steps)

    def without(self, modality: Modality) -> AlignedTelemetry:
        """The same tensor with one modality's channels blanked (for ablations)."""
        names = {
            Modality.METRICS: [c for c in CHANNELS if c.startswith("metric_")],
            Modality.TRACES: list(TRACE_CHANNELS),
            Modality.LOGS: list(LOG_CHANNELS),
        }[modality]
        idx = [CHANNEL_INDEX[c] for c in names]
        X, raw, present, base = (
            self.X.copy(),
            self.raw.copy(),
            self.present.copy(),
            self.baseline_X.copy(),
        )
        X[:, idx, :] = 0.0
        raw[:, idx, :] = np.nan
        present[:, idx] = False
        base[:, idx, :] = 0.0
        graph = self.call_graph
        if modality == Modality.TRACES:  # a declared topology is not trace evidence: it stays
            graph = nx.DiGraph()
            graph.add_edges_from(
                (a, b, d) for a, b, d in self.call_graph.edges(data=True) if d.get("declared")
            )
        graph.add_nodes_from(self.entities)
        return AlignedTelemetry(
            X=X,
            raw=raw,
            present=present,
            entities=self.entities,
            channels=self.channels,
            step_s=self.step_s,
            start_ns=self.start_ns,
            call_graph=graph,
            modalities=[m for m in self.modalities if m != modality],
            baseline_X=base,
            edge_z={} if modality == Modality.TRACES else self.edge_z,
            fallback=self.fallback,
            onset_bin=self.onset_bin,
            system=self.system,
            change_point=self.change_point,
            metric_health=self.metric_health,
        )


def _metric_step_s(metrics: pa.Table) -> float:
    if metrics.num_rows == 0:
        return DEFAULT_STEP_S
    df = metrics.select(["name", "pod", "service", "ts_ns"]).to_pandas()
    key = df["name"].astype(str) + "|" + df["pod"].fillna(df["service"]).fillna("").astype(str)
    diffs = df.sort_values("ts_ns").groupby(key)["ts_ns"].diff().dropna()
    if diffs.empty:
        return DEFAULT_STEP_S
    return float(np.clip(np.median(diffs) / 1e9, MIN_STEP_S, MAX_STEP_S))


def _window_of(tables: list[pa.Table], col: str) -> tuple[int, int] | None:
    lo, hi = None, None
    for t in tables:
        if t.num_rows == 0:
            continue
        arr = t.column(col).drop_null()
        if len(arr) == 0:
            continue
        a, b = int(pa.compute.min(arr).as_py()), int(pa.compute.max(arr).as_py())
        lo = a if lo is None else min(lo, a)
        hi = b if hi is None else max(hi, b)
    return None if lo is None else (lo, hi + 1)


def _series_on_grid(
    spans: pa.Table,
    logs: pa.Table,
    metrics: pa.Table,
    start_ns: int,
    step_ns: int,
    n_bins: int,
    miner: TemplateMiner,
    templates: dict[str, set[int]] | None,
    endings: pd.Series | None = None,
) -> pd.DataFrame:
    parts = [
        metric_series(metrics, start_ns, step_ns, n_bins),
        trace_series(spans, start_ns, step_ns, n_bins),
        log_series(logs, miner, start_ns, step_ns, n_bins, templates, endings),
    ]
    parts = [p for p in parts if not p.empty]
    return pd.concat(parts, ignore_index=True) if parts else empty_series()


def _scale_stats(values: pd.DataFrame, channel_of: pd.Series) -> pd.DataFrame:
    values = values.assign(value=values["value"].astype("float64"))
    g = values.groupby("key")["value"]
    stats = pd.DataFrame(
        {
            "med": g.median(),
            "q1": g.quantile(0.25),
            "q3": g.quantile(0.75),
            "n": g.size(),
        }
    )
    if values.empty:
        return pd.DataFrame(
            columns=["med", "q1", "q3", "n", "mad", "meanabs", "scale"], dtype="float64"
        )
    dev = (values["value"] - values["key"].map(stats["med"]).astype("float64")).abs()
    stats["mad"] = dev.groupby(values["key"]).median()
    chans = channel_of.reindex(stats.index)
    floor = np.where(chans.isin(COUNT_CHANNELS), 1.0, 1e-3)
    rel = chans.map(REL_FLOOR).fillna(0.05).to_numpy(dtype=float)
    # Population floor: a series that is almost always 0 (a rarely called service's workload)
    # is scaled by the typical level of the same metric across entities, so one call is not z=100.
    name = pd.Series(stats.index.str.split("|").str[0], index=stats.index)
    stats["meanabs"] = values["value"].abs().groupby(values["key"]).mean()
    level = stats["meanabs"].groupby(name).mean()
    pop = POP_FLOOR * name.map(level).to_numpy(dtype=float)
    stats["scale"] = np.maximum.reduce(
        [
            1.4826 * stats["mad"].to_numpy(),
            (stats["q3"] - stats["q1"]).to_numpy() / 1.349,
            rel * stats["med"].abs().to_numpy(),
            pop,
            floor,
        ]
    )
    return stats


def _zscore(
    window: pd.DataFrame, baseline: pd.DataFrame, n_bins: int, onset_bin: int
) -> tuple[pd.DataFrame, pd.DataFrame, set[str]]:
    """z of window and baseline rows; keys without baseline fall back to the window's start.

    The window's bins before ``onset_bin`` (before the fault/alert) join the baseline: they are
    the nearest fault-free data there is.
    """
    reference = baseline
    if onset_bin > 0:
        reference = pd.concat([baseline, window[window["bin"] < onset_bin]], ignore_index=True)
    channel_of = pd.concat([window, baseline]).drop_duplicates("key").set_index("key")["channel"]
    stats = _scale_stats(reference, channel_of) if not reference.empty else pd.DataFrame()
    have = set(stats.index[stats["n"] >= 3]) if not stats.empty else set()
    missing = window[~window["key"].isin(have)]
    fallback_channels: set[str] = set()
    if not missing.empty:
        cut = max(2, onset_bin, int(np.ceil(n_bins * FALLBACK_FRACTION)))
        early = missing[missing["bin"] < cut]
        fb = _scale_stats(early, channel_of)
        stats = pd.concat([stats.loc[sorted(have)] if have else None, fb])
        fallback_channels = set(missing["channel"].unique())
    out = []
    for frame in (window, baseline):
        f = frame[frame["key"].isin(stats.index)].copy()
        med = f["key"].map(stats["med"]).to_numpy(dtype=float)
        scale = f["key"].map(stats["scale"]).to_numpy(dtype=float)
        z = f["sign"].to_numpy(dtype=float) * (f["value"].to_numpy(dtype=float) - med) / scale
        f["z"] = np.clip(np.nan_to_num(z, nan=0.0), -Z_CLIP, Z_CLIP)
        out.append(f)
    return out[0], out[1], fallback_channels


def _to_tensor(
    z: pd.DataFrame, entities: list[str], n_bins: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    E, m = len(entities), len(CHANNELS)
    X = np.zeros((E, m, n_bins), dtype=np.float32)
    raw = np.full((E, m, n_bins), np.nan)
    present = np.zeros((E, m), dtype=bool)
    if z.empty:
        return X, raw, present
    z = z[z["entity"].isin(entities)]
    z = z.assign(absz=z["z"].abs()).sort_values("absz", ascending=False)
    top = z.drop_duplicates(["entity", "channel", "bin"])
    ei = top["entity"].map({e: i for i, e in enumerate(entities)}).to_numpy()
    ci = top["channel"].map(CHANNEL_INDEX).to_numpy()
    ti = top["bin"].to_numpy(dtype=int)
    X[ei, ci, ti] = top["z"].to_numpy(dtype=np.float32)
    raw[ei, ci, ti] = top["value"].to_numpy(dtype=float)
    present[ei, ci] = True
    return X, raw, present


def _call_graph(spans: list[pa.Table], entities: list[str]) -> nx.DiGraph:
    """Service call graph of the window and baseline spans (the one trace model's edges)."""
    graph = nx.DiGraph()
    graph.add_nodes_from(entities)
    for table in spans:
        for edge in service_calls(SpanForest.build(table)):
            a, b = edge.caller, edge.callee
            prev = graph.edges[a, b]["calls"] if graph.has_edge(a, b) else 0
            graph.add_edge(a, b, calls=prev + edge.calls)
    return graph


def _log_endings(
    logs: pa.Table,
    b_logs: pa.Table,
    window: TimeWindow,
    onset_ns: int | None,
    miner: TemplateMiner,
) -> pd.Series:
    """Which statements end a request normally: the fault-free logs, else the lead-in before the
    onset, else the window's first part (as for the templates)."""
    if b_logs.num_rows:
        return log_endings(b_logs, miner)
    lead_end = onset_ns if onset_ns is not None and onset_ns > window.start_ns else None
    lead_end = lead_end or window.start_ns + int(
        (window.end_ns - window.start_ns) * FALLBACK_FRACTION
    )
    return log_endings(logs.filter(pa.compute.less(logs.column("ts_ns"), lead_end)), miner)


def align_tables(
    spans: pa.Table,
    logs: pa.Table,
    metrics: pa.Table,
    window: TimeWindow,
    baseline_spans: pa.Table | None = None,
    baseline_logs: pa.Table | None = None,
    baseline_metrics: pa.Table | None = None,
    step_s: float | None = None,
    system: str | None = None,
    alert_ns: int | None = None,
    source: str | None = None,
    topology: Topology | None = None,
) -> AlignedTelemetry:
    """The core of :func:`align` and :func:`align_case`: tables in, aligned tensor out.

    ``alert_ns`` is when an alert fired, when one did: steps before it are a lead-in that
    normalises the rest, and only later steps are scored. Without it the onset is detected
    (:func:`tools.learned.changepoint.detect`) on the tensor scored against the baseline alone,
    and the tensor is then rescored with the detected lead-in. ``source`` names the data in
    errors. ``topology`` is a
    declared service graph, merged into the traced call graph.
    """
    b_spans = baseline_spans if baseline_spans is not None else empty_table(SPAN_SCHEMA)
    b_logs = baseline_logs if baseline_logs is not None else empty_table(LOG_SCHEMA)
    b_metrics = baseline_metrics if baseline_metrics is not None else empty_table(METRIC_SCHEMA)
    # metric names of any convention: counters as rates, histograms as means, NaN dropped
    health = MetricHealth()
    count_missing(metrics, b_metrics, health)
    metrics, _ = prepare_metrics(metrics, health)
    b_metrics, _ = prepare_metrics(b_metrics, health, scored=False)
    if spans.num_rows + logs.num_rows + metrics.num_rows == 0:
        raise NotFoundError(
            f"no metrics, spans or logs in the incident window {window.start} - {window.end}",
            source=source or "incident window",
        )
    step = float(step_s) if step_s else _metric_step_s(metrics if metrics.num_rows else b_metrics)
    step_ns = int(step * 1e9)
    n_bins = max(1, int(np.ceil((window.end_ns - window.start_ns) / step_ns)))
    miner = TemplateMiner()  # one per alignment: baseline and window lines share template ids
    known = log_templates_by_entity(b_logs, miner) if b_logs.num_rows else None
    if known is None and logs.num_rows:
        # no fault-free logs: templates of the window's first part are "known"
        cut = window.start_ns + int((window.end_ns - window.start_ns) * FALLBACK_FRACTION)
        early = logs.filter(pa.compute.less(logs.column("ts_ns"), cut))
        known = log_templates_by_entity(early, miner)
    endings = _log_endings(logs, b_logs, window, alert_ns, miner)
    win = _series_on_grid(
        spans, logs, metrics, window.start_ns, step_ns, n_bins, miner, known, endings
    )
    b_lo_hi = [
        r
        for r in (
            _window_of([b_metrics, b_logs], "ts_ns"),
            _window_of([b_spans], "start_ns"),
        )
        if r is not None
    ]
    if b_lo_hi:
        b_start = min(r[0] for r in b_lo_hi)
        b_bins = max(1, int(np.ceil((max(r[1] for r in b_lo_hi) - b_start) / step_ns)))
        base = _series_on_grid(b_spans, b_logs, b_metrics, b_start, step_ns, b_bins, miner, known)
    else:
        b_bins, base = 0, empty_series()
    change: ChangePoint | None = None
    onset_bin = 0
    if alert_ns is not None and window.start_ns < alert_ns < window.end_ns:
        onset_bin = min(n_bins - 1, int((alert_ns - window.start_ns) // step_ns))
    elif alert_ns is None:
        zw, zb, _ = _zscore(win, base, n_bins, 0)
        ents = sorted(set(zw["entity"].dropna()))
        if ents:
            X, _, present = _to_tensor(zw, ents, n_bins)
            change = detect(X, present, _to_tensor(zb, ents, b_bins)[0])
            onset_bin = change.onset_bin
        if onset_bin > 0 and not b_logs.num_rows and logs.num_rows:
            # the lead-in's normal request endings, now that the lead-in is known
            onset_ns = window.start_ns + onset_bin * step_ns
            endings = _log_endings(logs, b_logs, window, onset_ns, miner)
            log_part = log_series(logs, miner, window.start_ns, step_ns, n_bins, known, endings)
            win = pd.concat([win[~win["channel"].isin(LOG_CHANNELS)], log_part], ignore_index=True)
    zw, zb, fb_channels = _zscore(win, base, n_bins, onset_bin)
    entities = sorted(set(zw["entity"].dropna()))
    if not entities:
        raise NotFoundError(
            "no telemetry in the incident window could be attributed to a service",
            source=source or "incident window",
        )
    X, raw, present = _to_tensor(zw, entities, n_bins)
    BX, _, _ = _to_tensor(zb, entities, b_bins)
    edge_z: dict[tuple[str, str], np.ndarray] = {}
    edges = zw[zw["key"].str.startswith("edge|")]
    for key, g in edges.groupby("key"):
        _, a, b = str(key).split("|", 2)
        arr = np.zeros(n_bins, dtype=np.float32)
        arr[g["bin"].to_numpy(dtype=int)] = g["z"].to_numpy(dtype=np.float32)
        edge_z[(a, b)] = arr
    modalities = []
    if metrics.num_rows:
        modalities.append(Modality.METRICS)
    if spans.num_rows:
        modalities.append(Modality.TRACES)
    if logs.num_rows:
        modalities.append(Modality.LOGS)
    fallback = sorted(
        {"metrics" if c.startswith("metric_") else c.split("_")[0] + "s" for c in fb_channels}
    )
    return AlignedTelemetry(
        X=X,
        raw=raw,
        present=present,
        entities=entities,
        channels=list(CHANNELS),
        step_s=step,
        start_ns=window.start_ns,
        call_graph=merged_call_graph(_call_graph([spans, b_spans], entities), topology, entities),
        modalities=modalities,
        baseline_X=BX,
        edge_z=edge_z,
        fallback=fallback,
        onset_bin=onset_bin,
        system=system,
        change_point=change,
        metric_health=health.as_dict(),
    )


def align_incident(
    incident: IncidentTelemetry, step_s: float | None = None, topology: Topology | None = None
) -> AlignedTelemetry:
    """Align one incident's tables (window + fault-free baseline); the engine's only input type."""
    return align_tables(
        incident.spans,
        incident.logs,
        incident.metrics,
        incident.window,
        incident.baseline_spans,
        incident.baseline_logs,
        incident.baseline_metrics,
        step_s=step_s,
        system=incident.system,
        alert_ns=incident.alert_ns,
        source=incident.source,
        topology=topology,
    )


def align_case(
    ct: CaseTelemetry, step_s: float | None = None, alert_ns: int | None = None
) -> AlignedTelemetry:
    """Align a dataset case's telemetry *without its label*: only the window and tables are read
    (see :meth:`IncidentTelemetry.of_case`); ``alert_ns`` is the alert time, when one is given."""
    return align_incident(IncidentTelemetry.of_case(ct, alert_ns), step_s)


def align(
    traces: TraceSource | None,
    logs: LogSource | None,
    metrics: MetricSource | None,
    incident: Incident,
    metric_names: list[str] | None = None,
    step_s: float | None = None,
    topology: Topology | None = None,
    alert_ns: int | None = None,
) -> AlignedTelemetry:
    """Align telemetry read from sources for an incident; any source may be ``None``.

    ``metric_names`` lists the metric names (or PromQL expressions on Prometheus) to read; by
    default a source that can list its metric names (the embedded store) is asked. The
    incident's ``baseline`` window, when given, supplies the fault-free scale. ``topology``
    defaults to the one declared in the embedded store, when a source is one. ``alert_ns`` is when
    the alert fired (without it the onset is detected in the window).
    """
    if topology is None:
        topology = next(
            (s.topology() for s in (metrics, traces) if s is not None and hasattr(s, "topology")),
            None,
        )

    names = metric_names
    if names is None and metrics is not None and hasattr(metrics, "metric_names"):
        names = list(metrics.metric_names())  # the embedded store can list what it holds

    def read(window: TimeWindow) -> tuple[pa.Table, pa.Table, pa.Table]:
        s = traces.spans(TraceQuery(window)) if traces is not None else empty_table(SPAN_SCHEMA)
        lg = logs.logs(LogQuery(window)) if logs is not None else empty_table(LOG_SCHEMA)
        mt = [metrics.series(MetricQuery(n, window)) for n in (names or [])] if metrics else []
        m = pa.concat_tables(mt) if mt else empty_table(METRIC_SCHEMA)
        return s, lg, m

    spans, lgs, mets = read(incident.window)
    if incident.baseline is not None:
        b_spans, b_logs, b_metrics = read(incident.baseline)
    else:
        b_spans, b_logs, b_metrics = None, None, None
    return align_tables(
        spans,
        lgs,
        mets,
        incident.window,
        b_spans,
        b_logs,
        b_metrics,
        step_s=step_s,
        system=incident.system,
        alert_ns=alert_ns,
        source=incident.task_id,
        topology=topology,
    )
