"""The two baselines the harness runs next to TAMO, implemented here from their papers' idea.

* ``baro``: BARO's robust scorer (Pham et al., FSE 2024), metrics only. Every raw metric series is
  scaled with the median and inter-quartile range of its fault-free part (the baseline plus the
  window before the injection time, where known, as BARO splits at the anomaly time; like
  scikit-learn's RobustScaler, except that where the IQR is 0 the standard deviation stands in,
  because RobustScaler's scale of 1 would compare bytes with percents; series constant in the
  fault-free part are dropped, as BARO's preprocessing drops constant columns), scored by its
  largest |z| after the injection time, and services are ranked by their top series.
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

from tools.core.errors import NotFoundError
from tools.learned.aligned import align_tables
from tools.learned.channels import CHANNEL_INDEX
from tools.telemetry.model import (
    LOG_SCHEMA,
    METRIC_SCHEMA,
    CaseTelemetry,
    empty_table,
    service_from_pod,
    to_ns,
)


def _metric_frame(table: pa.Table) -> pd.DataFrame:
    df = table.select(["name", "service", "pod", "labels", "ts_ns", "value"]).to_pandas()
    svc = df["service"].where(
        df["service"].notna(),
        df["pod"].map(lambda p: service_from_pod(p) if isinstance(p, str) else None),
    )
    df["entity"] = svc
    df["key"] = df["name"] + "|" + df["entity"].fillna("") + "|" + df["labels"].fillna("")
    return df.dropna(subset=["entity", "value"])


def baro_rank(ct: CaseTelemetry) -> list[str]:
    """Services ranked by BARO's robust score (metrics only)."""
    if ct.metrics.num_rows == 0:
        return []
    win = _metric_frame(ct.metrics)
    base = _metric_frame(ct.baseline_metrics) if ct.baseline_metrics.num_rows else win.iloc[:0]
    if ct.case.injected_at is not None:
        # BARO splits at the anomaly time: what precedes it is normal data too
        cut = to_ns(ct.case.injected_at)
        base = pd.concat([base, win[win["ts_ns"] < cut]], ignore_index=True)
        win = win[win["ts_ns"] >= cut]
    g = base.groupby("key")["value"]
    med, iqr = g.median(), g.quantile(0.75) - g.quantile(0.25)
    # Series constant in the fault-free part carry no scale (BARO's preprocessing drops constant
    # columns); keeping them with RobustScaler's scale of 1 would rank bytes against percents.
    varying = g.max() > g.min()
    med, iqr = med[varying], iqr[varying]
    iqr = iqr.where(iqr > 0, g.std()[varying])
    win = win[win["key"].isin(med.index)]
    if win.empty:  # no series with a usable fault-free part: nothing to rank on
        return []
    centre = win["key"].map(med).astype("float64")
    z = ((win["value"].astype("float64") - centre) / win["key"].map(iqr).astype("float64")).abs()
    score = z.groupby(win["entity"]).max().replace([np.inf], np.nan).fillna(0.0)
    return list(score.sort_values(ascending=False, kind="stable").index)


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
            case_id=ct.case.case_id,
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
