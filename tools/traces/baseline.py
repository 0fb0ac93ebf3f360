"""What each module (``service::operation``) normally does, learned from fault-free traces.

Why per module: a 7 s span is a hang for a vectoriser and normal for an LLM call, so every span
feature is a robust z-score (median / MAD of log duration) against its own module's behaviour.
The same statistics say which children a module always calls (a missing one is a broken
downstream) and how many times it normally repeats a child (more is a retry storm or a fork).
When no separate baseline exists, the input itself is used: medians and high quantiles are
robust as long as anomalies are the minority.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from tools.traces.config import TraceConfig
from tools.traces.reconstruct import TraceForest, _fnv

_EPS = 0.05


def _log_ms(ns: np.ndarray) -> np.ndarray:
    return np.log1p(ns / 1e6)


def _group_median_mad(
    values: np.ndarray, groups: np.ndarray, n: int
) -> tuple[np.ndarray, np.ndarray]:
    med = np.zeros(n)
    mad = np.full(n, 1.0)
    for m, v in _groups(values, groups, n):
        med[m] = np.median(v)
        mad[m] = 1.4826 * np.median(np.abs(v - med[m]))
    return med, np.maximum(mad, _EPS)


def _group_quantile(values: np.ndarray, groups: np.ndarray, n: int, q: float) -> np.ndarray:
    out = np.zeros(n)
    for m, v in _groups(values, groups, n):
        out[m] = np.quantile(v, q)
    return out


def _groups(values: np.ndarray, groups: np.ndarray, n: int) -> Iterator[tuple[int, np.ndarray]]:
    """``(group, its values)`` for every non-empty group code below ``n``."""
    order = np.argsort(groups, kind="stable")
    g_sorted, v_sorted = groups[order], values[order]
    bounds = np.searchsorted(g_sorted, np.arange(n + 1))
    for m in range(n):
        v = v_sorted[bounds[m] : bounds[m + 1]]
        if len(v):
            yield m, v


def sibling_groups(
    forest: TraceForest, module: np.ndarray, n_modules: int
) -> tuple[np.ndarray, np.ndarray]:
    """(parent span, child module) groups: their codes and the number of spans in each."""
    has_parent = forest.parent >= 0
    key = forest.parent[has_parent] * (n_modules + 1) + module[has_parent]
    codes, counts = np.unique(key, return_counts=True)
    return codes, counts


def overlapping_siblings(forest: TraceForest, module: np.ndarray) -> np.ndarray:
    """Spans that started while a sibling of the same module was still running (concurrent)."""
    idx = np.nonzero(forest.parent >= 0)[0]
    if len(idx) < 2:
        return np.zeros(0, np.int64)
    s = idx[np.lexsort((forest.start_ns[idx], module[idx], forest.parent[idx]))]
    same = (forest.parent[s[1:]] == forest.parent[s[:-1]]) & (module[s[1:]] == module[s[:-1]])
    prev_end = forest.start_ns[s[:-1]] + forest.duration_ns[s[:-1]]
    return s[1:][same & (forest.start_ns[s[1:]] < prev_end)]


def _usual_parent(forest: TraceForest, n: int, share: float = 0.5) -> np.ndarray:
    """Per module, the parent module of at least ``share`` of its spans that have a parent."""
    out = np.full(n, -1, dtype=np.int64)
    child = forest.parent >= 0
    if not child.any():
        return out
    pair = forest.module[child] * n + forest.module[forest.parent[child]]
    pairs, counts = np.unique(pair, return_counts=True)
    per_module = np.bincount(pairs // n, weights=counts, minlength=n)
    best = np.zeros(n)
    for p, c in zip(pairs.tolist(), counts.tolist(), strict=True):
        m = p // n
        if c > best[m] and c >= share * per_module[m]:
            best[m], out[m] = c, p % n
    return out


@dataclass
class ModuleBaseline:
    """Per-module normal behaviour; index ``m`` is ``names[m]``; unknown modules map to -1."""

    names: list[str]
    index: dict[str, int]
    med_dur: np.ndarray
    mad_dur: np.ndarray
    med_self: np.ndarray
    mad_self: np.ndarray
    p99_dur_ns: np.ndarray
    tail_self_z: np.ndarray  # each module's own tail of self-time z-scores (~99.9%)
    error_rate: np.ndarray
    spans_per_trace: np.ndarray  # mean count of each module per trace
    expected_children: dict[int, np.ndarray] = field(default_factory=dict)  # parent -> child ids
    repeat_limit: dict[tuple[int, int], float] = field(default_factory=dict)
    default_repeat_limit: float = 1.5
    concurrent_ok: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # pair codes
    terminal_module: int = -1  # the module that normally starts last (e.g. a callback)
    trace_p95_ms: float = 0.0
    span_error_rate: float = 0.0
    label_hash: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint64))
    # the module that normally calls each module (-1: none or no clear one): an orphan's
    # missing parent is named from it
    usual_parent: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    # modules whose spans are normally client spans (their time is wire time)
    client_like: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))

    @property
    def n(self) -> int:
        return len(self.names)

    def map_modules(self, forest: TraceForest) -> np.ndarray:
        """Global module id per span (-1 for a module never seen in normal traffic)."""
        lut = np.array([self.index.get(name, -1) for name in forest.module_names] or [-1])
        return lut[forest.module] if forest.n_spans else np.zeros(0, np.int64)

    def base_labels(self, forest: TraceForest) -> np.ndarray:
        """Stable per-span hash of ``service::operation`` (independent of the vocabulary)."""
        lut = np.array(
            [_fnv(name) & 0x7FFFFFFFFFFFFFFF for name in forest.module_names] or [0],
            dtype=np.uint64,
        )
        return lut[forest.module] if forest.n_spans else np.zeros(0, np.uint64)

    @classmethod
    def fit(cls, forest: TraceForest, config: TraceConfig) -> ModuleBaseline:
        names = list(forest.module_names)
        n = len(names)
        mod = forest.module
        done = ~forest.unfinished
        med_dur, mad_dur = _group_median_mad(_log_ms(forest.duration_ns[done]), mod[done], n)
        med_self, mad_self = _group_median_mad(_log_ms(forest.self_ns[done]), mod[done], n)
        p99_dur = _group_quantile(forest.duration_ns[done], mod[done], n, 0.99)
        # the tail leaves out spans with a failed child: their self time includes the back-off
        # between attempts, which the detector does not count as slow either (span_signals)
        kids = forest.parent >= 0
        failed_child = np.zeros(forest.n_spans, dtype=bool)
        failed_child[forest.parent[kids & forest.is_error]] = True
        calm = done & ~failed_child
        self_z = (_log_ms(forest.self_ns[calm]) - med_self[mod[calm]]) / mad_self[mod[calm]]
        # the 99% quantile extrapolated to 99.9% as for a normal law (x 3.09 / 2.33): a few
        # anomalies in the fit data (learning from the input) cannot drag it up as they
        # would the 99.9% quantile itself
        tail_self_z = _group_quantile(self_z, mod[calm], n, 0.99) * (3.09 / 2.33)
        counts = np.bincount(mod, minlength=n).astype(float)
        errors = np.bincount(mod[forest.is_error], minlength=n)
        error_rate = errors / np.maximum(counts, 1)
        spt = counts / max(forest.n_traces, 1)

        codes, sib_counts = sibling_groups(forest, mod, n)
        parents, child_mod = codes // (n + 1), codes % (n + 1)
        parent_mod = mod[parents]
        expected: dict[int, np.ndarray] = {}
        pair = parent_mod * (n + 1) + child_mod
        pairs, with_child = np.unique(pair, return_counts=True)
        # a failed span may stop before its children: expected children are what the
        # module's successful spans call
        ok_pair = pair[~forest.is_error[parents]]
        ok_with_child = np.bincount(np.searchsorted(pairs, ok_pair), minlength=len(pairs))
        ok_counts = np.bincount(mod[~forest.is_error], minlength=n).astype(float)
        share = ok_with_child / np.maximum(ok_counts[pairs // (n + 1)], 1)
        for p, s in zip(pairs, share, strict=True):
            if s >= config.expected_child_share:
                pm, cm = int(p // (n + 1)), int(p % (n + 1))
                expected.setdefault(pm, np.zeros(0, np.int64))
                expected[pm] = np.append(expected[pm], cm)
        repeat: dict[tuple[int, int], float] = {}
        order = np.argsort(pair, kind="stable")
        ps, cs = pair[order], sib_counts[order]
        bounds = np.searchsorted(ps, pairs)
        bounds = np.append(bounds, len(ps))
        for i, p in enumerate(pairs):
            c = cs[bounds[i] : bounds[i + 1]]
            q = float(np.quantile(c, config.repeat_quantile))
            med = float(np.median(c))
            repeat[(int(p // (n + 1)), int(p % (n + 1)))] = max(q, med + 1.5)

        ov = overlapping_siblings(forest, mod)
        ov_pairs, ov_counts = np.unique(
            mod[forest.parent[ov]] * (n + 1) + mod[ov], return_counts=True
        )
        pair_total = dict(zip(pairs.tolist(), with_child.tolist(), strict=True))
        concurrent_ok = np.array(
            [
                p
                for p, c in zip(ov_pairs.tolist(), ov_counts.tolist(), strict=True)
                if c >= config.normal_concurrency_share * pair_total[p]
            ],
            dtype=np.int64,
        )
        rel_start = forest.start_ns - forest.start_ns[forest.offsets[forest.trace_of]]
        mean_rel = np.bincount(mod, weights=rel_start.astype(float), minlength=n) / np.maximum(
            counts, 1
        )
        common = spt >= 0.5
        terminal = int(np.argmax(np.where(common, mean_rel, -1))) if common.any() else -1
        usual_parent = _usual_parent(forest, n)
        client_like = np.bincount(mod[forest.client], minlength=n) >= 0.5 * counts
        roots = forest.parent < 0
        trace_ms = np.zeros(forest.n_traces)
        np.maximum.at(trace_ms, forest.trace_of[roots], forest.duration_ns[roots] / 1e6)
        return cls(
            names=names,
            index={name: i for i, name in enumerate(names)},
            med_dur=med_dur,
            mad_dur=mad_dur,
            med_self=med_self,
            mad_self=mad_self,
            p99_dur_ns=p99_dur,
            tail_self_z=tail_self_z,
            error_rate=error_rate,
            spans_per_trace=spt,
            expected_children=expected,
            repeat_limit=repeat,
            concurrent_ok=concurrent_ok,
            terminal_module=terminal,
            trace_p95_ms=float(np.quantile(trace_ms, 0.95)) if len(trace_ms) else 0.0,
            span_error_rate=float(forest.is_error.mean()) if forest.n_spans else 0.0,
            usual_parent=usual_parent,
            client_like=client_like,
        )
