"""``analyze_traces``: the whole call-chain pipeline, batch by batch.

Why batches: memory must follow the analysis window, not the file. Traces are ordered by their
first span and cut into time windows (``window_s``) of at most ``max_spans_per_batch`` spans;
each batch is reconstructed, scored and explained, and only compact per-trace rows plus the
evidence of anomalous traces survive it. Normal behaviour is learned once, from the baseline
when given, else from a seeded sample of the input's traces (anomalies must be the minority).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tools.telemetry.log_templates import TemplateMiner
from tools.traces.alerts import AlertLinker, TraceIncident
from tools.traces.clustering import cluster_vectors
from tools.traces.config import TraceConfig
from tools.traces.correlate import correlate
from tools.traces.detector import NormalModel, ScoredBatch
from tools.traces.fingerprint import METRIC_FLAGS, Fingerprint, structure_string
from tools.traces.knowledge_base import KnowledgeBase, KnownMatch
from tools.traces.reconstruct import InputCounters, reconstruct
from tools.traces.results import TraceAnalysis, TraceCluster, TraceRows
from tools.traces.root_cause import root_cause
from tools.traces.signatures import (
    attribute_objects,
    group_stats,
    keywords_from_attributes,
    log_keywords,
    metric_symptoms,
    span_symptoms,
    top_keywords,
)


@dataclass
class _Anomaly:
    """Evidence kept for one anomalous trace after its batch is gone."""

    trace_id: str
    row: int  # index into the per-trace results
    start_ns: int
    root_span: str
    reason: str
    structure: str
    deviation: np.ndarray
    trace_ms: float
    n_spans: int
    errors: int
    retry: bool
    hung: bool
    missing: bool
    terminal_lost: bool
    module_lost: bool  # a module present in (almost) every normal trace is absent
    forked: bool  # a child module ran twice concurrently where it never does normally
    keywords: Counter[str] = field(default_factory=Counter)
    root_span_id: str = ""
    shared: dict[str, str] = field(default_factory=dict)


def _trace_codes(spans: pa.Table) -> tuple[np.ndarray, int]:
    enc = pc.dictionary_encode(spans["trace_id"]).combine_chunks()
    codes = np.asarray(enc.indices.fill_null(-1), dtype=np.int64)
    return codes, len(enc.dictionary)


def sample_traces(spans: pa.Table, max_traces: int, seed: int) -> pa.Table:
    """All spans of at most ``max_traces`` traces chosen uniformly (seeded)."""
    codes, n = _trace_codes(spans)
    if n <= max_traces:
        return spans
    keep = np.zeros(n + 1, dtype=bool)
    keep[np.random.default_rng(seed).choice(n, max_traces, replace=False)] = True
    return spans.filter(pa.array(keep[codes]))


def iter_batches(spans: pa.Table, config: TraceConfig) -> Iterator[pa.Table]:
    """Whole traces, ordered by their first span, cut into time windows of bounded size."""
    if spans.num_rows == 0:
        return
    codes, n = _trace_codes(spans)
    codes = np.where(codes < 0, n, codes)  # spans without a trace id: one extra group
    start = np.asarray(pc.fill_null(spans["start_ns"], 0).combine_chunks(), dtype=np.int64)
    first = np.full(n + 1, np.iinfo(np.int64).max)
    np.minimum.at(first, codes, start)
    first[n] = first[:n].min() if n else 0  # ... that goes with the first window
    size = np.bincount(codes, minlength=n + 1)
    order = np.argsort(first, kind="stable")
    window = (first[order] - first[order[0]]) // int(config.window_s * 1e9)
    batch_of = np.zeros(n + 1, dtype=np.int64)
    batch, spans_in, last_window = 0, 0, window[0]
    for pos, t in enumerate(order):
        if spans_in and (
            window[pos] != last_window or spans_in + size[t] > config.max_spans_per_batch
        ):
            batch, spans_in = batch + 1, 0
        batch_of[t], spans_in, last_window = batch, spans_in + size[t], window[pos]
    span_batch = batch_of[codes]
    span_order = np.argsort(span_batch, kind="stable")
    bounds = np.searchsorted(span_batch[span_order], np.arange(batch + 2))
    # one gather of the whole table, then zero-copy slices: a gather per batch would re-read
    # every chunk of the input once per batch
    ordered = spans.take(span_order)
    for b in range(batch + 1):
        yield ordered.slice(int(bounds[b]), int(bounds[b + 1] - bounds[b]))


def _shared_attributes(texts: list[str | None], keys: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for obj in attribute_objects(texts):
        for k in keys:
            if k in obj and k not in out and isinstance(obj[k], str | int | float):
                out[k] = str(obj[k])
    return out


ROOT_WEIGHT = 5  # the root span's own error words outweigh those propagated to its ancestors


def _weighted_keywords(
    attrs: list[str | None], codes: list[str | None], bad: list[int], root: int
) -> Counter[str]:
    """``attrs``/``codes``: one trace's spans; ``bad``/``root``: positions within it."""
    words = keywords_from_attributes([attrs[i] for i in bad], [codes[i] for i in bad])
    own = keywords_from_attributes([attrs[root]], [codes[root]])
    for w, n in own.items():
        words[w] += (ROOT_WEIGHT - 1) * n
    return words


def _collect(
    batch: ScoredBatch,
    model: NormalModel,
    rows: TraceRows,
    out: list[_Anomaly],
    config: TraceConfig,
) -> None:
    f, s = batch.forest, batch.signals
    names = f.module_names
    n_spans = np.diff(f.offsets)
    first_start = f.start_ns[f.offsets[:-1]] if f.n_spans else np.zeros(0, np.int64)
    anomalous = np.nonzero(batch.anomalous)[0]
    base_row = rows.extend(
        f.trace_ids, batch.anomalous, batch.score, first_start, n_spans.astype(np.int64)
    )
    if not len(anomalous):
        return
    deviation = model.wl_deviation(batch.wl[anomalous])
    terminal = model.base.terminal_module
    always = np.nonzero(model.base.spans_per_trace >= config.expected_child_share)[0]
    # the anomalous traces' spans as Python values in one conversion each (a pyarrow scalar
    # per span costs microseconds; there are tens of thousands of them)
    lo_of, hi_of = f.offsets[anomalous], f.offsets[anomalous + 1]
    rows_of = np.concatenate([np.arange(a, b) for a, b in zip(lo_of, hi_of, strict=True)])
    take = pa.array(rows_of)
    attrs_py = f.table["attributes"].take(take).to_pylist()
    codes_py = f.table["error_code"].take(take).to_pylist()
    span_ids = f.table["span_id"]
    bad_span = s.error | s.hung
    pos = 0
    for j, t in enumerate(anomalous):
        lo, hi = int(lo_of[j]), int(hi_of[j])
        attrs, codes = attrs_py[pos : pos + hi - lo], codes_py[pos : pos + hi - lo]
        pos += hi - lo
        root, reason, root_name = root_cause(batch, int(t))
        path: list[str] = []
        p = root
        while p >= 0 and len(path) < 64:
            path.append(f"{names[f.module[p]]}#{s.status_class[p]}")
            p = int(f.parent[p])
        kid_rows = lo + np.nonzero(f.parent[lo:hi] == root)[0]
        kids = {f"{names[f.module[c]]}#{s.status_class[c]}" for c in kid_rows.tolist()}
        gm = s.gmod[lo:hi]
        term = (gm == terminal) & ~s.error[lo:hi]
        trace_roots = f.parent[lo:hi] < 0
        out.append(
            _Anomaly(
                trace_id=f.trace_ids[t],
                row=base_row + int(t),
                start_ns=int(first_start[t]),
                root_span=root_name,
                reason=str(reason),
                structure=structure_string(path[::-1], sorted(kids), int(f.depth[root]), root_name),
                deviation=deviation[j],
                trace_ms=float(f.duration_ns[lo:hi][trace_roots].max() / 1e6)
                if trace_roots.any()
                else 0.0,
                n_spans=hi - lo,
                errors=int(s.error[lo:hi].sum()),
                retry=bool((s.repeat_excess[lo:hi] > 0).any()),
                hung=bool(s.hung[lo:hi].any()),
                missing=bool((s.missing[lo:hi] > 0).any()),
                terminal_lost=terminal >= 0 and not term.any(),
                module_lost=not np.isin(always, gm).all(),
                forked=bool(s.fork_at[lo:hi].any()),
                keywords=_weighted_keywords(
                    attrs, codes, np.nonzero(bad_span[lo:hi])[0].tolist(), root - lo
                ),
                root_span_id=span_ids[root].as_py(),
                shared=_shared_attributes(attrs, config.shared_key_attributes),
            )
        )


def _fingerprint(
    group: list[_Anomaly],
    model: NormalModel,
    metrics: pa.Table | None,
    logs: pa.Table | None,
    miner: TemplateMiner,
    config: TraceConfig,
) -> Fingerprint:
    root = Counter(a.root_span for a in group).most_common(1)[0][0]
    reason = Counter(a.reason for a in group).most_common(1)[0][0]
    structure = Counter(a.structure for a in group).most_common(1)[0][0]
    stats = group_stats(
        np.array([a.trace_ms for a in group]),
        np.array([a.n_spans for a in group], dtype=float),
        np.array([a.errors for a in group], dtype=float),
        np.array([a.retry for a in group], dtype=float),
        np.array([a.hung for a in group], dtype=float),
        np.array([a.missing for a in group], dtype=float),
        np.array([a.terminal_lost for a in group], dtype=float),
        np.array([a.module_lost for a in group], dtype=float),
        np.array([a.forked for a in group], dtype=float),
    )
    base = model.base
    stats["base_p95_ms"] = base.trace_p95_ms
    stats["base_error_rate"] = base.span_error_rate
    stats["spans_ratio"] = stats["mean_spans"] / max(float(base.spans_per_trace.sum()), 1e-9)
    symptoms = span_symptoms(stats, config)
    from_metrics = metric_symptoms(
        metrics,
        min(a.start_ns for a in group),
        max(a.start_ns for a in group) + int(stats["p95_ms"] * 1e6),
        config,
    )
    signature = {k: bool(symptoms.get(k) or from_metrics.get(k)) for k in METRIC_FLAGS}
    words: Counter[str] = Counter()
    for a in group:
        words.update(a.keywords)
    sample = group[:200]
    words.update(
        log_keywords(logs, [a.trace_id for a in sample], {a.root_span_id for a in sample}, miner)
    )
    vector = np.mean([a.deviation for a in group], axis=0)
    return Fingerprint(
        structure_fingerprint=structure,
        structure_vector=[round(float(v), 4) for v in vector],
        metric_signature=signature,
        log_signature=top_keywords(words, config.top_log_keywords),
        root_span=root,
        reason=reason,
    )


class SpanStream(Protocol):
    """Spans too many to hold at once, read twice: a sample to learn from, then the windows
    (:class:`tools.traces.stream.SpanFileStream`); ``num_rows`` is known after either.
    """

    num_rows: int

    def sample(self, max_traces: int, seed: int) -> pa.Table: ...

    def batches(self, config: TraceConfig) -> Iterator[pa.Table]: ...


def analyze_traces(
    spans: pa.Table | SpanStream,
    baseline: pa.Table | None = None,
    kb: KnowledgeBase | None = None,
    logs: pa.Table | None = None,
    metrics: pa.Table | None = None,
    config: TraceConfig | None = None,
) -> TraceAnalysis:
    """Find anomalous call chains in ``spans`` (SPAN_SCHEMA), name each one's root span and
    reason, cluster and fingerprint them, recognise known ones in ``kb``, raise incidents for
    recurring ones and find dependencies shared by many failing traces.

    ``baseline``: fault-free spans to learn normal behaviour from (else the input itself).
    ``logs`` / ``metrics``: the window's LOG_SCHEMA / METRIC_SCHEMA tables for the signatures.
    """
    config = config or TraceConfig()
    from_baseline = baseline is not None and baseline.num_rows > 0
    if from_baseline or isinstance(spans, pa.Table):
        fit_source = baseline if from_baseline else spans
        fit = sample_traces(fit_source, config.max_fit_traces, config.seed)
    else:
        fit = spans.sample(config.max_fit_traces, config.seed)
    fit_forest, _ = reconstruct(fit, config)
    del fit
    model = NormalModel.fit(fit_forest, config)
    del fit_forest

    counters = InputCounters()
    rows = TraceRows()
    anomalies: list[_Anomaly] = []
    n_batches = 0
    windows = iter_batches(spans, config) if isinstance(spans, pa.Table) else spans.batches(config)
    for table in windows:
        forest, c = reconstruct(table, config)
        counters.add(c)
        _collect(model.score(forest), model, rows, anomalies, config)
        n_batches += 1
    if spans.num_rows == 0:
        counters.spans_in = 0

    analysis = TraceAnalysis(
        trace_table=rows.table(),
        counters=counters,
        baseline_source="baseline" if from_baseline else "input",
        batches=n_batches,
    )
    if not anomalies:
        return analysis
    labels = cluster_vectors(
        [a.root_span for a in anomalies],
        [a.reason for a in anomalies],
        np.array([a.deviation for a in anomalies]),
        config.dbscan_eps,
        config.dbscan_min_samples,
    )
    miner = TemplateMiner(similarity=config.template_similarity, state_path=config.template_state)
    groups: dict[int, list[_Anomaly]] = {}
    for a, lab in zip(anomalies, labels, strict=True):
        groups.setdefault(int(lab), []).append(a)
    ordered = sorted(groups.values(), key=lambda g: (-len(g), g[0].start_ns))
    linker = AlertLinker(config.alert_count, config.alert_window_s)
    for i, group in enumerate(ordered):
        cid = f"cluster-{i:02d}"
        fp = _fingerprint(group, model, metrics, logs, miner, config)
        fid = fp.fingerprint_id
        known = kb.match(fp) if kb is not None else None
        for a in group:
            rows.label(a.row, cid, a.root_span, a.reason, fid)
        if kb is not None and config.record_in_kb:
            kb.record(
                fp,
                seen_ns=max(a.start_ns for a in group),
                count=len(group),
                cluster_key=f"{fid}:{cid}",
            )
        analysis.clusters.append(
            TraceCluster(
                cluster_id=cid,
                size=len(group),
                root_span=fp.root_span,
                reason=fp.reason,
                fingerprint_id=fid,
                fingerprint=fp,
                known=known,
                trace_ids=[a.trace_id for a in group[: config.max_traces_in_summary]],
            )
        )
        for a in sorted(group, key=lambda a: a.start_ns):
            incident = linker.observe(fid, a.start_ns, a.trace_id, fp.root_span, fp.reason)
            if incident is not None:
                analysis.incidents.append(_with_known(incident, known))
    if config.template_state is not None:
        miner.save()
    analysis.trace_table = rows.table()
    analysis.shared_root_causes = correlate(
        {a.trace_id: (a.root_span, a.shared) for a in anomalies},
        config.min_community_traces,
        config.seed,
    )
    return analysis


def _with_known(incident: TraceIncident, known: KnownMatch | None) -> TraceIncident:
    if known is not None:
        return incident.model_copy(
            update={
                "known_root_cause": known.root_cause,
                "known_fix": known.strategy,
                "match_score": known.score,
            }
        )
    return incident
