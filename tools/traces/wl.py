"""Weisfeiler-Lehman subtree hashing of call trees, vectorised over all traces at once.

Why WL instead of Graph2Vec training: the subtree-label histogram *is* the Graph2Vec vocabulary;
feature-hashing it into a fixed number of buckets gives an embedding with no model to train, no
vocabulary to persist, and it is stable across processes (labels come from an FNV hash of
``service::operation`` plus the span's status class, never from Python's salted ``hash``).
Children are combined with an order-independent sum of mixed hashes, so sibling order (which
depends on clock skew) never changes the embedding.
"""

from __future__ import annotations

import numpy as np

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLD = np.uint64(0x9E3779B97F4A7C15)


def mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser, element-wise on uint64 (wrapping arithmetic is intended)."""
    with np.errstate(over="ignore"):
        z = x.astype(np.uint64) + _GOLD
        z = (z ^ (z >> np.uint64(30))) * _M1
        z = (z ^ (z >> np.uint64(27))) * _M2
        return z ^ (z >> np.uint64(31))


def wl_labels(base: np.ndarray, parent: np.ndarray, iterations: int) -> list[np.ndarray]:
    """Labels of every span after 0..iterations WL refinements (each a uint64 array)."""
    labels = [mix(base.astype(np.uint64))]
    has_parent = parent >= 0
    for _ in range(iterations):
        cur = labels[-1]
        mixed = mix(cur)
        agg = np.zeros(len(cur), dtype=np.uint64)
        with np.errstate(over="ignore"):
            np.add.at(agg, parent[has_parent], mixed[has_parent])
            labels.append(mix(cur * np.uint64(31) + agg))
    return labels


def wl_histogram(
    labels: list[np.ndarray], trace_of: np.ndarray, n_traces: int, dims: int
) -> np.ndarray:
    """Feature-hashed WL histogram per trace, float32 [n_traces, dims]."""
    keys = np.concatenate(
        [trace_of * dims + (lab % np.uint64(dims)).astype(np.int64) for lab in labels]
    )
    out = np.bincount(keys, minlength=n_traces * dims).astype(np.float32)
    return out.reshape(n_traces, dims)
