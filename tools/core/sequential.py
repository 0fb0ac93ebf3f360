"""Sequential tests on a stream of good/bad observations (traces, spans): decide as soon as the
evidence suffices, not after a fixed window.

Why: a fixed window has to wait for a fixed share of bad traffic however strong the evidence
already is (three hung traces in a row at a normal anomaly rate of 2 % are decisive), and a fixed
number of good polls says nothing about how many good *samples* stood behind them. Both the live
alert ("has the traffic left normal?") and the repair verification ("is it back to normal?")
are a change between two Bernoulli rates: the rate of bad observations under normal traffic,
learned from fault-free data, and the rate under the fault. Page's CUSUM on the log-likelihood
ratio of the two rates fires at the first point where the evidence since the most likely change
reaches ``h``; by Lorden's bound the mean run between false alarms on traffic that did not change
is at least ``exp(h)`` observations, which is how ``h`` follows from a false-alarm budget.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

RATE_FLOOR = 1e-3  # no rate is exactly 0 or 1: one odd observation must not be infinitely telling


def laplace_rate(bad: int, n: int) -> float:
    """The rule of succession ``(bad + 1) / (n + 2)``: a rate estimate that never claims
    certainty from a finite sample (0 of 25 is not 0 %)."""
    return (bad + 1) / (n + 2)


def upper_rate(bad: int, n: int, z: float = 1.96) -> float:
    """Wilson's upper confidence bound on a rate (``z`` = 1.96: 97.5 % one-sided): the normal
    rate an alarm must allow for, since a few dozen traces only bound it (0 of 100 still allows
    3.7 %)."""
    if n <= 0:
        return 1.0
    p, z2 = bad / n, z * z
    centre = p + z2 / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    return min((centre + spread) / (1 + z2 / n), 1.0)


def threshold_for(observations_per_s: float, false_alarms_per_day: float) -> float:
    """The CUSUM threshold ``h`` whose mean run between false alarms (``>= exp(h)``
    observations) is a day's observations divided by the false alarms allowed per day."""
    per_day = max(observations_per_s, 1e-6) * 86_400.0
    return math.log(max(per_day / max(false_alarms_per_day, 1e-9), math.e))


def _clip(p: float) -> float:
    return min(max(p, RATE_FLOOR), 1.0 - RATE_FLOOR)


@dataclass
class BernoulliCusum:
    """Page's CUSUM for a shift of the bad-observation rate from ``p_from`` to ``p_to``.

    ``update`` takes one observation (``True`` = bad, i.e. what ``p_to`` predicts more often when
    ``p_to > p_from``); ``fired`` once the statistic reached ``h``. ``since_change`` counts the
    observations (and the bad ones) since the statistic last left zero: the CUSUM's own estimate
    of when the change happened, so ``rate_since_change`` is the rate under the new regime.
    """

    p_from: float
    p_to: float
    h: float
    statistic: float = 0.0
    observations: int = 0
    since_change: int = 0
    bad_since_change: int = 0
    _llr: tuple[float, float] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        a, b = _clip(self.p_from), _clip(self.p_to)
        if a == b:
            raise ValueError("a CUSUM needs two different rates")
        self._llr = (math.log(b / a), math.log((1 - b) / (1 - a)))  # (bad, good)

    def update(self, bad: bool) -> bool:
        """Add one observation; returns whether the test has fired."""
        self.observations += 1
        if self.statistic == 0.0:
            self.since_change = self.bad_since_change = 0
        self.statistic = max(0.0, self.statistic + self._llr[0 if bad else 1])
        if self.statistic > 0.0:
            self.since_change += 1
            self.bad_since_change += bad
        return self.fired

    @property
    def fired(self) -> bool:
        return self.statistic >= self.h

    @property
    def rate_since_change(self) -> float:
        return self.bad_since_change / self.since_change if self.since_change else 0.0

    def reset(self) -> None:
        self.statistic = 0.0
        self.since_change = self.bad_since_change = 0
