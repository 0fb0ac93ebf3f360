"""Grouping anomalous traces: DBSCAN now, K-Means with silhouette selection periodically.

Why both (seed ch. 2): DBSCAN needs no cluster count and tolerates the irregular shapes that
heterogeneous task types produce, so it groups the anomalies of one analysis; its noise points
become singleton clusters rather than being dropped (an anomaly seen once is still an anomaly).
K-Means with the silhouette-best k re-partitions the knowledge base's accumulated fingerprints
periodically, where a fixed partition is wanted for dashboards and strategy binding.
"""

from __future__ import annotations

import numpy as np
from sklearn.cluster import DBSCAN, KMeans
from sklearn.metrics import silhouette_score


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
    labels = DBSCAN(eps=eps, min_samples=min_samples).fit(x).labels_.astype(np.int64)
    noise = labels < 0
    labels[noise] = labels.max(initial=-1) + 1 + np.arange(int(noise.sum()))
    return labels


def recluster(x: np.ndarray, max_k: int, seed: int = 0) -> tuple[np.ndarray, int, float]:
    """K-Means with the k in [2, max_k] of best silhouette; returns (labels, k, silhouette)."""
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
