"""Span vectors and trace embeddings (seed ch. 2): ``[depth, duration, has_error, error-code
hash, child count, module]`` per span, normalised against the module's normal behaviour, pooled
per trace and joined with a WL structural embedding.

Why these pooled statistics: an anomaly shows up as one extreme span (max self-time z), a
structural change (missing expected child, repeated siblings, extra roots) or a distribution
shift (mean z); sum/avg/max pooling keeps all three visible to the autoencoder while the WL
histogram captures *where* in the tree it happened.
"""

from __future__ import annotations

from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from tools.traces.baseline import ModuleBaseline, _log_ms, overlapping_siblings, sibling_groups
from tools.traces.config import TraceConfig
from tools.traces.reconstruct import TraceForest
from tools.traces.wl import wl_histogram, wl_labels

POOLED = (
    "log_spans",
    "max_depth",
    "errors",
    "max_duration_z",
    "mean_duration_z",
    "max_self_z",
    "hung_spans",
    "missing_children",
    "repeat_excess",
    "orphans",
    "extra_roots",
    "unseen_modules",
    "root_duration_z",
    "error_code_mass",
    "forks",
)


@dataclass
class SpanSignals:
    """Per-span evidence, aligned with the forest's span order."""

    gmod: np.ndarray  # global module id, -1 when unseen in normal traffic
    dur_z: np.ndarray
    self_z: np.ndarray
    hung: np.ndarray  # bool
    error: np.ndarray  # bool: error status
    missing: np.ndarray  # int: expected child modules absent from a span that did not fail
    repeat_excess: np.ndarray  # float: siblings of the same module beyond the normal limit
    status_class: np.ndarray  # 0 ok, 1 error, 2 hung
    slow: np.ndarray  # bool: self time far beyond the module's own tail, short of a hang
    fork_at: np.ndarray  # bool: this span ran the same child module concurrently, abnormally
    recovered: np.ndarray  # bool: an error absorbed by a successful sibling retry


def _retried_later(forest: TraceForest, group: np.ndarray, n_groups: int) -> np.ndarray:
    """Spans inside an attempt that a later, successful sibling of the same module retried.

    Why inside: a caller that retries through its own client spans sees the failure in the
    callee's span *under* the failed attempt; that error was absorbed as much as the attempt's.
    """
    has_parent = forest.parent >= 0
    start = forest.start_ns[has_parent]
    ok = ~forest.is_error[has_parent]
    last_ok = np.full(n_groups, np.iinfo(np.int64).min)
    np.maximum.at(last_ok, group[ok], start[ok])
    covered = np.zeros(forest.n_spans, dtype=bool)
    covered[has_parent] = last_ok[group] > start
    for d in range(1, int(forest.depth.max(initial=0)) + 1):
        level = forest.depth == d
        covered[level] |= covered[forest.parent[level]]
    return covered


def _failed_within(forest: TraceForest) -> np.ndarray:
    """Spans that failed or under which something failed: an attempt whose client span says OK
    while the callee's span under it failed is a failed attempt all the same."""
    failed = forest.is_error.copy()
    for d in range(int(forest.depth.max(initial=0)), 0, -1):
        level = np.nonzero((forest.depth == d) & failed)[0]
        failed[forest.parent[level]] = True
    return failed


def _failure_runs(group: np.ndarray, start: np.ndarray, failed: np.ndarray) -> np.ndarray:
    """Per sibling group, the longest run of failed attempts one after another (start order)."""
    n_groups = int(group.max(initial=-1)) + 1
    out = np.zeros(n_groups, dtype=np.int64)
    if not failed.any():
        return out
    order = np.lexsort((start, group))
    g, bad = group[order], failed[order].astype(np.int64)
    # run length of consecutive failures, restarted at every success and every new group
    reset = np.ones(len(g), dtype=bool)
    reset[1:] = (g[1:] != g[:-1]) | (bad[:-1] == 0)
    pos = np.arange(len(g))
    run_start = np.maximum.accumulate(np.where(reset, pos, 0))
    run = np.where(bad == 1, pos - run_start + 1, 0)
    np.maximum.at(out, g, run)
    return out


def _tail_stretch(base: ModuleBaseline, config: TraceConfig) -> float:
    """Factor on a module's ~99.9% self-time tail (3.09 sigma) for the slow-span threshold:
    ``slow_quantile_factor``, or more where a trace of the usual size would otherwise exceed
    ``slow_trace_alpha``."""
    spans_per_trace = max(float(base.spans_per_trace.sum()), 1.0)
    per_span = NormalDist().inv_cdf(1.0 - config.slow_trace_alpha / spans_per_trace)
    return max(config.slow_quantile_factor, per_span / NormalDist().inv_cdf(0.999))


def span_signals(forest: TraceForest, base: ModuleBaseline, config: TraceConfig) -> SpanSignals:
    n = base.n
    gmod = base.map_modules(forest)
    known = gmod >= 0
    g = np.where(known, gmod, 0)
    fallback_med = float(np.median(base.med_dur)) if n else 0.0
    med_dur = np.where(known, base.med_dur[g] if n else 0.0, fallback_med)
    mad_dur = np.where(known, base.mad_dur[g] if n else 1.0, 1.0)
    med_self = np.where(known, base.med_self[g] if n else 0.0, fallback_med)
    mad_self = np.where(known, base.mad_self[g] if n else 1.0, 1.0)
    dur_z = (_log_ms(forest.duration_ns) - med_dur) / mad_dur
    self_z = (_log_ms(forest.self_ns) - med_self) / mad_self
    p99 = np.where(known, base.p99_dur_ns[g] if n else 0.0, 0.0)
    hung = forest.unfinished | (
        known
        & (self_z > config.hang_z)
        & (forest.idle_ns > config.hang_min_ratio * np.maximum(p99, 1e6))
    )

    gm = np.where(known, gmod, n)  # unseen modules share id n
    codes, counts = sibling_groups(forest, gm, n)
    parents, child = codes // (n + 1), codes % (n + 1)
    pair = gm[parents] * (n + 1) + child
    # expected children present, per parent span
    exp_pairs = np.array(
        sorted(pm * (n + 1) + int(c) for pm, cs in base.expected_children.items() for c in cs),
        dtype=np.int64,
    )
    n_expected = np.zeros(n + 1, dtype=np.int64)
    for pm, cs in base.expected_children.items():
        n_expected[pm] = len(cs)
    present = np.bincount(parents[np.isin(pair, exp_pairs)], minlength=forest.n_spans)
    # a failed span stops before its children: its error is the evidence, the absence is not
    missing = np.where(forest.is_error, 0, np.maximum(n_expected[gm] - present, 0))
    # repeated siblings beyond the module pair's normal limit
    lim_keys = np.array(sorted(p * (n + 1) + c for p, c in base.repeat_limit), dtype=np.int64)
    lim_vals = np.array(
        [base.repeat_limit[(int(k // (n + 1)), int(k % (n + 1)))] for k in lim_keys]
    )
    pos = np.searchsorted(lim_keys, pair)
    hit = (
        (pos < len(lim_keys)) & (lim_keys[np.minimum(pos, max(len(lim_keys) - 1, 0))] == pair)
        if len(lim_keys)
        else np.zeros(len(pair), bool)
    )
    limit = np.where(
        hit,
        lim_vals[np.minimum(pos, max(len(lim_vals) - 1, 0))] if len(lim_vals) else 0.0,
        base.default_repeat_limit,
    )
    has_parent = forest.parent >= 0
    own = forest.parent[has_parent] * (n + 1) + gm[has_parent]
    group = np.searchsorted(codes, own)
    # repeats are a retry storm when attempts kept failing one after another (or there are far
    # too many): an agent loop that calls a tool a few more times than usual, or rate-limited
    # calls each retried once, is not
    failed = _failed_within(forest)[has_parent]
    failures = _failure_runs(group, forest.start_ns[has_parent], failed)
    storm = (failures >= config.retry_min_failures) | (counts > 2 * limit)
    group_excess = np.where(storm, counts - limit, np.minimum(counts - limit, 0))
    span_excess = np.zeros(forest.n_spans)
    span_excess[has_parent] = group_excess[group]
    ov = overlapping_siblings(forest, gm)
    ov_pair = gm[forest.parent[ov]] * (n + 1) + gm[ov]
    fork_at = np.zeros(forest.n_spans, dtype=bool)
    fork_at[forest.parent[ov[~np.isin(ov_pair, base.concurrent_ok)]]] = True
    recovered = forest.is_error & _retried_later(forest, group, len(codes))
    tail = np.where(known, base.tail_self_z[g] if n else np.inf, np.inf)
    slow = ~hung & (self_z > np.maximum(_tail_stretch(base, config) * tail, config.slow_min_z))
    # time spent backing off between retries that finally succeeded is not a slow span
    slow[np.unique(forest.parent[recovered])] = False
    status = np.where(hung, 2, np.where(forest.is_error, 1, 0))
    return SpanSignals(
        gmod=gmod,
        dur_z=dur_z,
        self_z=self_z,
        hung=hung,
        error=forest.is_error,
        missing=missing,
        repeat_excess=span_excess,
        status_class=status,
        slow=slow,
        fork_at=fork_at,
        recovered=recovered,
    )


def _reduce(fn: np.ufunc, values: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    if len(values) == 0:
        return np.zeros(len(offsets) - 1)
    return fn.reduceat(values, offsets[:-1])


def pooled_features(forest: TraceForest, s: SpanSignals) -> np.ndarray:
    """The POOLED statistics per trace, float64 [n_traces, len(POOLED)]."""
    off = forest.offsets
    n_spans = np.diff(off).astype(float)
    roots = forest.parent < 0
    root_z = np.full(forest.n_traces, -np.inf)
    np.maximum.at(root_z, forest.trace_of[roots], s.dur_z[roots])
    root_pos = np.zeros(forest.n_traces)
    np.add.at(root_pos, forest.trace_of[roots], 1.0)
    real_roots = np.zeros(forest.n_traces)
    np.add.at(real_roots, forest.trace_of[roots & ~forest.orphan], 1.0)
    cols = [
        np.log1p(n_spans),
        _reduce(np.maximum, forest.depth.astype(float), off),
        _reduce(np.add, s.error.astype(float), off),
        _reduce(np.maximum, s.dur_z, off),
        _reduce(np.add, s.dur_z, off) / np.maximum(n_spans, 1),
        _reduce(np.maximum, s.self_z, off),
        _reduce(np.add, s.hung.astype(float), off),
        _reduce(np.add, s.missing.astype(float), off),
        _reduce(np.maximum, np.maximum(s.repeat_excess, 0.0), off),
        _reduce(np.add, forest.orphan.astype(float), off),
        np.maximum(real_roots - 1, 0),
        _reduce(np.add, (s.gmod < 0).astype(float), off),
        np.where(np.isfinite(root_z), root_z, 0.0),
        _reduce(np.add, (forest.error_code > 0).astype(float), off),
        _reduce(np.add, s.fork_at.astype(float), off),
    ]
    return np.column_stack(cols)


def module_counts(forest: TraceForest, base: ModuleBaseline, dims: int) -> np.ndarray:
    """Per-trace span count of each module, feature-hashed (the autoencoder's standardiser
    centres them on the normal expectation)."""
    bucket_of_label = (base.base_labels(forest) % np.uint64(dims)).astype(np.int64)
    t = forest.n_traces
    counts = np.bincount(forest.trace_of * dims + bucket_of_label, minlength=t * dims).reshape(
        t, dims
    )
    return counts.astype(np.float64)


def module_latency(
    forest: TraceForest, base: ModuleBaseline, s: SpanSignals, dims: int
) -> np.ndarray:
    """Per trace and module bucket, the largest self-time z-score (0 where the module is absent).

    Why per module: a 5x slower vectoriser is far outside *its* normal range while a retry
    backoff in the callback sender routinely is not; pooled over the trace the two look alike.
    """
    bucket = (base.base_labels(forest) % np.uint64(dims)).astype(np.int64)
    out = np.full(forest.n_traces * dims, -np.inf)
    np.maximum.at(out, forest.trace_of * dims + bucket, s.self_z)
    out[~np.isfinite(out)] = 0.0
    return out.reshape(forest.n_traces, dims)


def trace_embedding(
    forest: TraceForest, base: ModuleBaseline, s: SpanSignals, config: TraceConfig
) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """(feature matrix [n_traces, F], WL histogram [n_traces, wl_dims], WL labels per span)."""
    status = s.status_class.astype(np.uint64)
    labels = wl_labels(
        base.base_labels(forest) * np.uint64(3) + status, forest.parent, config.wl_iterations
    )
    wl = wl_histogram(labels, forest.trace_of, forest.n_traces, config.wl_dims)
    feats = np.hstack(
        [
            pooled_features(forest, s),
            module_counts(forest, base, config.module_dims),
            module_latency(forest, base, s, config.module_dims),
            wl,
        ]
    ).astype(np.float32)
    return feats, wl, labels
