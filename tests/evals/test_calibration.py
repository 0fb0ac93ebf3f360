from __future__ import annotations

import pytest

from evals.calibration import calibration_report, ece, reliability


def test_perfectly_calibrated_bins_have_zero_ece() -> None:
    conf = [0.1] * 10 + [0.9] * 10
    right = [True] + [False] * 9 + [True] * 9 + [False]
    assert ece(conf, right) == pytest.approx(0.0)


def test_ece_is_the_case_weighted_gap_per_bin() -> None:
    conf = [0.9, 0.9, 0.9, 0.9, 0.3]
    right = [True, False, False, False, False]
    # bin 0.8-1.0: 4 cases, conf 0.9, hit 0.25 -> 0.65; bin 0.2-0.4: 1 case, gap 0.3
    assert ece(conf, right) == pytest.approx(4 / 5 * 0.65 + 1 / 5 * 0.3, abs=1e-4)
    rows = reliability(conf, right)
    assert [r["cases"] for r in rows] == [1, 4]


def test_report_gives_accuracy_above_the_gate() -> None:
    rep = calibration_report([0.95, 0.85, 0.5], [True, False, True])
    assert rep["cases_at_gate"] == 2 and rep["acc@1_at_gate"] == 0.5
