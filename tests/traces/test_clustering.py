"""Grouping anomalies: the numpy DBSCAN is scikit-learn's DBSCAN, label for label."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.cluster import DBSCAN

from tools.traces.clustering import cluster_vectors, dbscan

# integer points and an eps no integer distance equals: no pair sits on the boundary
points = st.lists(
    st.tuples(st.integers(0, 6), st.integers(0, 6), st.integers(0, 2)), min_size=1, max_size=60
)


@settings(max_examples=150, deadline=None)
@given(points, st.sampled_from([0.5, 1.05, 1.5, 2.3]), st.integers(1, 5))
def test_dbscan_equals_scikit_learn(rows: list[tuple], eps: float, min_samples: int) -> None:
    x = np.array(rows, dtype=float)
    expected = DBSCAN(eps=eps, min_samples=min_samples).fit(x).labels_
    assert dbscan(x, eps, min_samples).tolist() == expected.tolist()


def test_a_border_point_joins_the_first_cluster_it_touches() -> None:
    """(2, .5) is within eps of one core point of each cluster but not core itself."""
    x = np.array([[4, 0]] * 3 + [[3, 0]] + [[0, 0]] * 3 + [[1, 0], [2, 0.5]], dtype=float)
    labels = dbscan(x, 1.2, 4).tolist()
    assert labels == [0, 0, 0, 0, 1, 1, 1, 1, 0]
    assert labels == DBSCAN(eps=1.2, min_samples=4).fit(x).labels_.tolist()


def test_noise_points_get_their_own_clusters() -> None:
    labels = cluster_vectors(
        ["a::x", "a::x", "b::y"], ["error", "error", "hung"], np.ones((3, 4)), 0.5, 2
    )
    assert labels.tolist() == [0, 0, 1]
