"""The seed's matching rule, each gate on its own, and config validation of the weights."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from tools.traces.config import MatchRule, MatchWeights
from tools.traces.fingerprint import Fingerprint, cosine, match_score


def make(
    vec: list[float], metrics: dict[str, bool], logs: list[str], root: str = "A::x"
) -> Fingerprint:
    return Fingerprint(
        structure_fingerprint="span_hash_tree:1::depth1::error@" + root,
        structure_vector=vec,
        metric_signature=metrics,
        log_signature=logs,
        root_span=root,
        reason="error",
    )


M2 = {"latency_spike": True, "error_spike": True}
L3 = ["E1", "E2", "E3"]


def test_identical_fingerprint_matches_with_top_score() -> None:
    s = match_score(make([1, 2, 3], M2, L3), make([1, 2, 3], M2, L3), {"A::x"}, MatchRule())
    assert s.matched and s.score == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("candidate", "roots"),
    [
        (make([3, -2, 0], M2, L3), {"A::x"}),  # structure too different
        (make([1, 2, 3], {"latency_spike": True}, L3), {"A::x"}),  # one metric hit
        (make([1, 2, 3], M2, ["E1"]), {"A::x"}),  # one log hit
        (make([1, 2, 3], M2, L3), {"B::y"}),  # root-cause node not archived
    ],
)
def test_each_gate_rejects(candidate: Fingerprint, roots: set[str]) -> None:
    assert not match_score(candidate, make([1, 2, 3], M2, L3), roots, MatchRule()).matched


def test_score_threshold_is_configurable() -> None:
    cand, known = make([1, 2, 3], M2, ["E1", "E2", "X"]), make([1, 2, 3], M2, L3)
    assert match_score(cand, known, {"A::x"}, MatchRule()).matched  # 0.4 + 0.2 + 0.1 + 0.2
    assert not match_score(cand, known, {"A::x"}, MatchRule(min_score=0.95)).matched


def test_weights_must_sum_to_one() -> None:
    with pytest.raises(ValidationError):
        MatchWeights(structure=0.5, metrics=0.5, logs=0.5, root=0.5)


def test_cosine_edge_cases() -> None:
    assert cosine([], []) == 0.0
    assert cosine([0, 0], [0, 0]) == 1.0
    assert cosine([1, 0], [1, 0, 0]) == 0.0


def test_fingerprint_id_is_stable() -> None:
    assert make([1], M2, L3).fingerprint_id == make([9], {}, []).fingerprint_id
    assert len(make([1], M2, L3).fingerprint_id) == 12
