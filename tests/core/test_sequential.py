"""The sequential tests behind the live alert and the repair verification, on seeded data: they
fire soon after a real shift, stay quiet on stationary noise at the normal rate, and their
threshold follows the false-alarm budget."""

from __future__ import annotations

import math
import random

import pytest

from tools.core.sequential import BernoulliCusum, laplace_rate, threshold_for, upper_rate


def _first_fire(test: BernoulliCusum, draws: list[bool]) -> int | None:
    for i, bad in enumerate(draws):
        if test.update(bad):
            return i
    return None


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_fires_soon_after_a_shift_and_not_before(seed: int) -> None:
    rng = random.Random(seed)
    normal = [rng.random() < 0.04 for _ in range(5000)]
    shifted = [rng.random() < 0.6 for _ in range(200)]
    test = BernoulliCusum(0.05, 0.3, threshold_for(5.0, 1.0))
    assert _first_fire(test, normal) is None  # 5000 normal observations: no alarm
    at = _first_fire(test, shifted)
    assert at is not None and at < 30  # a 60 % shift is certain within a few dozen
    assert test.rate_since_change > 0.4  # the rate since the estimated change is the new one


def test_stationary_noise_at_the_normal_rate_rarely_alarms() -> None:
    """Over 20 seeded runs of 20,000 normal observations each (a day at 0.23/s), the mean
    run between false alarms stays above exp(h) / 10 (Lorden: at least exp(h))."""
    h = math.log(2000.0)
    alarms, total = 0, 0
    for seed in range(20):
        rng = random.Random(100 + seed)
        test = BernoulliCusum(0.05, 0.3, h)
        for _ in range(20_000):
            total += 1
            if test.update(rng.random() < 0.05):
                alarms += 1
                test.reset()
    assert alarms <= total / 200


def test_recovery_direction_needs_only_a_few_good_samples_after_a_total_failure() -> None:
    test = BernoulliCusum(laplace_rate(20, 20), laplace_rate(0, 60), math.log(99))
    fired = [test.update(False) for _ in range(4)]
    assert fired.index(True) <= 2  # three good tasks after a hang that failed all of them
    subtle = BernoulliCusum(laplace_rate(3, 20), laplace_rate(0, 60), math.log(99))
    assert _first_fire(subtle, [False] * 100) > 10  # a subtle error rate needs many more


def test_rates_and_thresholds() -> None:
    assert laplace_rate(0, 25) == pytest.approx(1 / 27)
    assert 0.03 < upper_rate(0, 100) < 0.045  # 0 of 100 still allows ~3.7 %
    assert upper_rate(5, 100) > 0.05 and upper_rate(0, 0) == 1.0
    assert threshold_for(5.0, 1.0) == pytest.approx(math.log(5 * 86_400))
    assert threshold_for(5.0, 0.1) > threshold_for(5.0, 1.0)  # a tighter budget waits longer
    with pytest.raises(ValueError):
        BernoulliCusum(0.1, 0.1, 5.0)
