from __future__ import annotations

import pytest

from evals.metrics import accuracy_at, fault_type_scores, ranking_scores


def test_accuracy_at_k_and_avg5() -> None:
    truths = ["a", "b", "c", "d"]
    rankings = [["a", "x"], ["x", "b"], ["x", "y", "z", "c"], ["x"]]
    assert accuracy_at(truths, rankings, 1) == 0.25
    assert accuracy_at(truths, rankings, 2) == 0.5
    s = ranking_scores(truths, rankings)
    assert s["acc@1"] == 0.25 and s["acc@3"] == 0.5 and s["acc@5"] == 0.75
    assert s["avg@5"] == pytest.approx((0.25 + 0.5 + 0.5 + 0.75 + 0.75) / 5, abs=1e-4)


def test_fault_type_scores_count_unknown_as_wrong() -> None:
    truths = ["cpu", "cpu", "mem", "mem"]
    s = fault_type_scores(truths, ["cpu", "unknown", "mem", "mem"])
    assert s["accuracy"] == 0.75
    assert s["recall"] == pytest.approx(0.75)
    assert 0.0 < s["macro_f1"] < 1.0
    assert fault_type_scores(truths, [None] * 4)["macro_f1"] is None
