"""Grouping anomalous traces: DBSCAN now, K-Means with silhouette selection periodically.

Why both (seed ch. 2): DBSCAN needs no cluster count and tolerates the irregular shapes that
heterogeneous task types produce, so it groups the anomalies of one analysis; its noise points
become singleton clusters rather than being dropped (an anomaly seen once is still an anomaly).
K-Means with the silhouette-best k re-partitions the knowledge base's accumulated fingerprints
periodically, where a fixed partition is wanted for dashboards and strategy binding.
"""

from __future__ import annotations

import numpy as np

BLOCK = 2048  # rows of the distance matrix computed at a time: memory stays O(BLOCK x n)


def _within(x: np.ndarray, eps: float) -> tuple[np.ndarray, np.ndarray]:
    """All pairs (i, j), i <= j, of rows of ``x`` at Euclidean distance <= ``eps``."""
    sq = (x * x).sum(axis=1)
    rows, cols = [], []
    for lo in range(0, len(x), BLOCK):
        blk = x[lo : lo + BLOCK]
        d2 = sq[lo : lo + BLOCK, None] + sq[None, :] - 2.0 * (blk @ x.T)
        i, j = np.nonzero(np.sqrt(np.maximum(d2, 0.0)) <= eps)
        keep = lo + i <= j
        rows.append(lo + i[keep])
        cols.append(j[keep])
    return np.concatenate(rows), np.concatenate(cols)


def dbscan(x: np.ndarray, eps: float, min_samples: int) -> np.ndarray:
    """DBSCAN labels (-1 = noise), the same as scikit-learn's ``DBSCAN(eps, min_samples)``.

    Why not scikit-learn: importing it costs ~1.3 CPU-s on every ``tamo traces analyze``, for a
    clustering of a few thousand anomalies. Identical rows are clustered once (anomalies of one
    kind often share their vector exactly). A cluster is a connected set of core points (at
    least ``min_samples`` points, themselves included, within ``eps``); clusters are numbered
    in order of their first core point, and a border point joins the lowest-numbered cluster
    it touches -- scikit-learn's order of expansion.
    """
    uniq, inverse, counts = np.unique(x, axis=0, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1)
    m = len(uniq)
    # number the distinct rows in order of first appearance: cluster numbers follow from it
    first_row = np.full(m, len(x), dtype=np.int64)
    np.minimum.at(first_row, inverse, np.arange(len(x)))
    by_first = np.argsort(first_row)
    rank = np.empty(m, dtype=np.int64)
    rank[by_first] = np.arange(m)
    uniq, counts, inverse = uniq[by_first], counts[by_first], rank[inverse]
    i, j = _within(uniq, eps)
    weight = np.bincount(i, weights=counts[j], minlength=m)
    weight += np.bincount(j[i != j], weights=counts[i[i != j]], minlength=m)
    core = weight >= min_samples
    # connected components of core points: the smallest member, by propagation and jumping
    both = core[i] & core[j] & (i != j)
    a, b = i[both], j[both]
    comp = np.arange(m)
    while True:
        new = comp.copy()
        np.minimum.at(new, a, comp[b])
        np.minimum.at(new, b, comp[a])
        new = new[new]
        if np.array_equal(new, comp):
            break
        comp = new
    label = np.full(m, -1, dtype=np.int64)
    heads = np.unique(comp[core])
    label[core] = np.searchsorted(heads, comp[core])
    # border points: the lowest cluster number among their core neighbours
    border = np.full(m, np.iinfo(np.int64).max)
    for u, v in ((i, j), (j, i)):
        touch = core[u] & ~core[v]
        np.minimum.at(border, v[touch], label[u[touch]])
    reach = ~core & (border < np.iinfo(np.int64).max)
    label[reach] = border[reach]
    return label[inverse]


def cluster_vectors(
    root: list[str], reason: list[str], structure: np.ndarray, eps: float, min_samples: int
) -> np.ndarray:
    """DBSCAN labels (noise points get their own label) over root, reason and structure."""
    n = len(root)
    if n == 0:
        return np.zeros(0, np.int64)
    cats = sorted(set(root)), sorted(set(reason))
    onehot = np.zeros((n, len(cats[0]) + len(cats[1])))
    r_idx = {v: i for i, v in enumerate(cats[0])}
    c_idx = {v: i + len(cats[0]) for i, v in enumerate(cats[1])}
    for i in range(n):
        onehot[i, r_idx[root[i]]] = 1.0
        onehot[i, c_idx[reason[i]]] = 1.0
    norms = np.linalg.norm(structure, axis=1, keepdims=True)
    x = np.hstack([onehot * 2.0, structure / np.maximum(norms, 1e-9) * 0.5])
    labels = dbscan(x, eps, min_samples)
    noise = labels < 0
    labels[noise] = labels.max(initial=-1) + 1 + np.arange(int(noise.sum()))
    return labels


def recluster(x: np.ndarray, max_k: int, seed: int = 0) -> tuple[np.ndarray, int, float]:
    """K-Means with the k in [2, max_k] of best silhouette; returns (labels, k, silhouette)."""
    from sklearn.cluster import KMeans  # only the knowledge base's periodic re-partition
    from sklearn.metrics import silhouette_score

    n = len(x)
    if n < 3:
        return np.zeros(n, np.int64), 1, 0.0
    best: tuple[np.ndarray, int, float] = (np.zeros(n, np.int64), 1, -1.0)
    for k in range(2, min(max_k, n - 1) + 1):
        labels = KMeans(n_clusters=k, n_init=4, random_state=seed).fit_predict(x)
        if len(set(labels)) < 2:
            continue
        score = float(silhouette_score(x, labels))
        if score > best[2]:
            best = (labels.astype(np.int64), k, score)
    return best
