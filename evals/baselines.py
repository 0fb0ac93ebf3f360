"""The baselines the harness runs next to TAMO, implemented here from their papers' idea.

* ``baro``: BARO as RCAEval runs it (Pham et al., FSE 2024; RCAEval 1.8.1 ``e2e/baro.py``),
  metrics only. The data is split into a normal and an anomalous part at the anomaly time: the
  alert (injection) time when there is one; else the fault-free baseline recording is the normal
  part and the whole window the anomalous one (Sock Shop's ``normal.csv`` / ``anomalous.csv``,
  which RCAEval reads as one frame split at the first anomalous row); else, with
  ``detect_onset``, BARO's own multivariate BOCPD finds the time (:mod:`evals.baselines_bocpd`).
  Each part drops its constant series, the two keep the series they share, every series is scaled
  by ``RobustScaler`` fitted on the normal part (median, inter-quartile range, a zero range read
  as 1; memory in MB as RCAEval converts it, since with a zero range the unit is the scale),
  scored by its largest scaled value (signed: a drop is not an anomaly to BARO), and services
  are ranked by their first series in that order. The earlier version took ``|z|``,
  replaced a zero IQR by the standard deviation and dropped only series constant in the normal
  part: that put queue-master and the databases first and scored Sock Shop Acc@1 0.67 where
  RCAEval's code gives 0.97 on the same files.
* ``trace-pagerank``: a MicroRank-style ranker, traces only. Each service's anomaly is the largest
  |z| of its span latency (p95 and self time) and error counts against the fault-free spans; a
  personalised PageRank over the caller -> callee graph (anomaly as the restart vector) moves
  mass down the call chain to the service whose slowness the callers inherit.
"""

from __future__ import annotations

import networkx as nx
import numpy as np
import pandas as pd
import pyarrow as pa

from evals.baselines_bocpd import change_step
from tools.core.errors import NotFoundError
from tools.learned.aligned import align_tables
from tools.learned.channels import CHANNEL_INDEX
from tools.telemetry.metric_families import SLI_FAMILIES, metric_family, prepare_metrics
from tools.telemetry.model import (
    LOG_SCHEMA,
    METRIC_SCHEMA,
    CaseTelemetry,
    empty_table,
    service_from_pod,
    to_ns,
)
from tools.telemetry.topology import Topology


def _metric_frame(table: pa.Table) -> pd.DataFrame:
    df = table.select(["name", "service", "pod", "labels", "ts_ns", "value"]).to_pandas()
    svc = df["service"].where(
        df["service"].notna(),
        df["pod"].map(lambda p: service_from_pod(p) if isinstance(p, str) else None),
    )
    df["entity"] = svc
    df["key"] = df["name"] + "|" + df["entity"].fillna("") + "|" + df["labels"].fillna("")
    return df.dropna(subset=["entity", "value"])


def _in_rcaeval_units(frame: pd.DataFrame) -> pd.DataFrame:
    """Memory in MB, as RCAEval's ``convert_mem_mb``: where a series' IQR is 0 its scale is 1,
    so the unit decides how far a change reads (1 MB, not 1 byte, is one unit)."""
    mem = frame["name"].str.endswith("_bytes") & (frame["name"].map(metric_family) == "memory")
    return frame.assign(value=frame["value"].where(~mem, frame["value"] / 1e6))


def _varying(frame: pd.DataFrame) -> pd.Index:
    """Keys whose samples are not all equal (RCAEval's ``drop_constant`` of one part)."""
    g = frame.groupby("key")["value"]
    spread = g.max() > g.min()
    return spread.index[spread]


def _sli_wide(frame: pd.DataFrame) -> np.ndarray:
    """The window as [time, series] for BOCPD: BARO watches latency and error series (all
    series where there are none)."""
    sli = frame[frame["name"].map(lambda n: metric_family(n) in SLI_FAMILIES)]
    use = sli if not sli.empty else frame
    return use.pivot_table(index="ts_ns", columns="key", values="value", aggfunc="mean").to_numpy()


def _split(ct: CaseTelemetry, detect_onset: bool) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(normal, anomalous) samples, split at the anomaly time as BARO does."""
    win = _metric_frame(ct.metrics)
    base = _metric_frame(ct.baseline_metrics) if ct.baseline_metrics.num_rows else win.iloc[:0]
    cut: int | None = None
    if not detect_onset and ct.case.injected_at is not None:
        cut = to_ns(ct.case.injected_at)
    elif base.empty:
        times = np.sort(win["ts_ns"].unique())
        step = change_step(_sli_wide(win))
        cut = int(times[step]) if step is not None else None
    if cut is None:
        return base, win
    return pd.concat([base, win[win["ts_ns"] < cut]], ignore_index=True), win[win["ts_ns"] >= cut]


def baro_rank(ct: CaseTelemetry, *, detect_onset: bool = False) -> list[str]:
    """Services ranked by BARO's robust score (metrics only), as RCAEval computes it.

    ``detect_onset`` ignores the case's injection time and lets BOCPD find the anomaly time
    when no fault-free recording exists (the ``window`` protocol).
    """
    if ct.metrics.num_rows == 0:
        return []
    normal, anomal = (_in_rcaeval_units(f) for f in _split(ct, detect_onset))
    keys = _varying(normal).intersection(_varying(anomal))
    if keys.empty:  # no series moves in both parts: nothing to rank on
        return []
    normal = normal[normal["key"].isin(keys)]
    anomal = anomal[anomal["key"].isin(keys)]
    g = normal.groupby("key")["value"]
    med = g.median()
    iqr = g.quantile(0.75) - g.quantile(0.25)
    iqr = iqr.where(iqr > 0, 1.0)  # scikit-learn's RobustScaler: a zero scale becomes 1
    z = (anomal["value"] - anomal["key"].map(med)) / anomal["key"].map(iqr)
    score = z.groupby(anomal["key"]).max()
    entity = anomal.drop_duplicates("key").set_index("key")["entity"]
    # RCAEval sorts its columns by score (stable, in column order) and reads each one's service
    order = score.reindex(keys).sort_values(ascending=False, kind="stable").index
    return list(dict.fromkeys(entity[order]))


def trace_pagerank_rank(ct: CaseTelemetry) -> list[str]:
    """Services ranked by personalised PageRank of trace-latency anomalies (traces only)."""
    if ct.spans.num_rows == 0:
        return []
    try:
        aligned = align_tables(
            ct.spans,
            empty_table(LOG_SCHEMA),
            empty_table(METRIC_SCHEMA),
            ct.case.window,
            baseline_spans=ct.baseline_spans,
            source=ct.case.case_id,
        )
    except NotFoundError:  # spans exist but none inside the incident window
        return []
    idx = [CHANNEL_INDEX[c] for c in ("trace_p95", "trace_self_p95", "trace_errors")]
    anomaly = np.abs(aligned.X[:, idx, :]).max(axis=(1, 2)).astype(float)
    ents = aligned.entities
    graph = nx.DiGraph()
    graph.add_nodes_from(ents)
    for a, b in aligned.call_graph.edges:
        if a in ents and b in ents:
            graph.add_edge(a, b, weight=1.0 + anomaly[ents.index(b)])
    pers = {e: float(s) + 1e-6 for e, s in zip(ents, anomaly, strict=True)}
    pr = nx.pagerank(graph, alpha=0.85, personalization=pers, weight="weight")
    return sorted(ents, key=lambda e: (-pr[e], e))


def metric_walk_rank(ct: CaseTelemetry, topology: Topology) -> list[str]:
    """A graph-traversal baseline for metrics-only systems (MicroCause/CloudRanger style).

    Each service's anomaly is its largest robust |z| (median/IQR of the fault-free part) over
    its metric series after counters are read as rates; a personalised PageRank over the declared
    caller -> callee graph (anomaly as the restart vector, edges weighted by the callee's
    anomaly) moves mass down the calls to the component whose trouble the callers inherit.
    """
    win, _ = prepare_metrics(ct.metrics)
    base, _ = prepare_metrics(ct.baseline_metrics, scored=False)
    w, b = _metric_frame(win), _metric_frame(base)
    if w.empty or b.empty:
        return []
    g = b.groupby("key")["value"]
    med, iqr = g.median(), (g.quantile(0.75) - g.quantile(0.25))
    iqr = iqr.where(iqr > 0, g.std()).where(lambda s: s > 0, 1.0)
    w = w[w["key"].isin(med.index)]
    z = ((w["value"] - w["key"].map(med)) / w["key"].map(iqr)).abs()
    anomaly = z.groupby(w["entity"]).max().fillna(0.0)
    graph = topology.graph()
    graph.add_nodes_from(anomaly.index)
    for a, c in graph.edges:
        graph.edges[a, c]["weight"] = 1.0 + float(anomaly.get(c, 0.0))
    pers = {n: float(anomaly.get(n, 0.0)) + 1e-6 for n in graph.nodes}
    pr = nx.pagerank(graph, alpha=0.85, personalization=pers, weight="weight")
    return sorted((n for n in pr if n in anomaly.index), key=lambda n: (-pr[n], n))
