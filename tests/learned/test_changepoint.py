from __future__ import annotations

import numpy as np

from tests.learned.conftest import make_case
from tools.learned import align_case
from tools.learned.changepoint import SHIFT_MIN, detect, shift_curve


def _noise(steps: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.0, 1.0, size=(4, 3, steps)).astype(np.float32)


def test_a_step_in_a_few_series_is_found_where_it_starts() -> None:
    X = _noise(40)
    X[1, 0, 25:] += 8.0
    X[2, 1, 25:] -= 6.0  # a drop (a service that stops logging) counts as much as a rise
    cp = detect(X, np.ones((4, 3), dtype=bool), _noise(40, seed=1))
    assert cp.found and cp.reason == "change inside the window"
    assert abs(cp.onset_bin - 25) <= 1


def test_noise_alone_has_no_change_point() -> None:
    X = _noise(40)
    cp = detect(X, np.ones((4, 3), dtype=bool), _noise(40, seed=1))
    assert not cp.found and cp.onset_bin == 0 and cp.reason == "no change"
    assert shift_curve(X, np.ones((4, 3), dtype=bool)).max() < SHIFT_MIN


def test_a_window_abnormal_from_its_start_is_recognised_against_the_baseline() -> None:
    X = _noise(40)
    X[0, 2] += 9.0  # the fault was already running when the window opened
    cp = detect(X, np.ones((4, 3), dtype=bool), _noise(40, seed=1))
    assert cp.found and cp.onset_bin == 0 and cp.reason == "abnormal from the window start"


def test_a_series_high_in_window_and_baseline_is_not_a_change() -> None:
    base, X = _noise(40, seed=1), _noise(40)
    base[0, 2] += 9.0
    X[0, 2] += 9.0
    assert not detect(X, np.ones((4, 3), dtype=bool), base).found


def test_without_alert_the_onset_is_detected_on_real_alignment() -> None:
    aligned = align_case(make_case())  # fault from 60 s of 180 s
    assert aligned.onset_detected and aligned.change_point is not None
    assert aligned.change_point.found
    assert abs(aligned.onset_bin * aligned.step_s - 60.0) <= 2 * aligned.step_s
    alerted = align_case(make_case(), alert_ns=aligned.start_ns + int(60e9))
    assert not alerted.onset_detected and alerted.onset_bin * alerted.step_s == 60.0
