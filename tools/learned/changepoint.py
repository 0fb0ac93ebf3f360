"""Where in a window the fault began, found from the telemetry alone (no alert, no label).

Why this shape: on live data nobody hands the engine the injection time; it gets a window that
should contain the incident and must find the change itself, or say there is none. Every
(entity, channel) series of the aligned tensor is already a robust z-score against fault-free
data, so each series' |z| (clipped at ``Z_CAP``: breadth matters, not one spike) gets a CUSUM-style
mean-shift statistic for every split ``t``: ``(mean after - mean before) * sqrt(t (n - t) / n)``.
The window's shift curve is the mean over the ``TOP_SERIES`` series that shift most at that
split, so a fault that moves a handful of series stands out while a series that is high all
window long (a baseline recorded at another load) contributes nothing. The onset is the curve's
argmax when it reaches ``SHIFT_MIN``.

A window that is abnormal from its first step (the fault was already running when it opened, as
in Sock Shop's files) has no shift *inside* it: it is recognised by its level, the mean over the
``TOP_SERIES`` most deviating series of their median |z|, which must reach ``LEVEL_MIN`` and
``LEVEL_MARGIN`` times the same level over the fault-free baseline; its onset is the window
start. Anything else is "no change point": the caller names no root cause instead of forcing
one. The three constants were set on the development windows (Nezha shift curves peak at 4.7-32,
Sock Shop's at <= 3.5 with levels 4.6-8.4 against <= 0.4 in the baseline) and are listed in
docs/learned.md with that caveat.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TOP_SERIES = 5
Z_CAP = 20.0
SHIFT_MIN = 4.0
LEVEL_MIN = 2.0
LEVEL_MARGIN = 3.0


@dataclass(frozen=True)
class ChangePoint:
    """The detector's answer: the onset step (when found), the evidence and why."""

    found: bool
    onset_bin: int  # 0 when not found (then the whole window is scored)
    shift: float  # peak of the shift curve
    level: float  # the window's level against its own baseline
    reason: str  # "change inside the window" | "abnormal from the window start" | "no change"


def _capped(X: np.ndarray, present: np.ndarray) -> np.ndarray:
    return np.minimum(np.abs(X[present]), Z_CAP)  # [series, l]


def shift_curve(X: np.ndarray, present: np.ndarray) -> np.ndarray:
    """[l - 1] mean-shift statistic of the split before step t = 1 .. l - 1 (see module doc)."""
    z = _capped(X, present)
    n = X.shape[2]
    if n < 2 or len(z) == 0:
        return np.zeros(max(0, n - 1))
    c = np.cumsum(z, axis=1)
    t = np.arange(1, n)
    before = c[:, :-1] / t
    after = (c[:, -1:] - c[:, :-1]) / (n - t)
    d = (after - before) * np.sqrt(t * (n - t) / n)
    k = min(TOP_SERIES, len(z))
    return np.sort(d, axis=0)[-k:].mean(axis=0)


def level(X: np.ndarray, present: np.ndarray) -> float:
    """Mean over the ``TOP_SERIES`` most deviating series of their median |z|."""
    z = _capped(X, present)
    if z.size == 0:
        return 0.0
    med = np.median(z, axis=1)
    return float(np.sort(med)[-TOP_SERIES:].mean())


def detect(X: np.ndarray, present: np.ndarray, baseline_X: np.ndarray) -> ChangePoint:
    """The fault onset in ``X`` [E, m, l] (robust z), judged against ``baseline_X``'s level."""
    curve = shift_curve(X, present)
    lvl = level(X, present)
    if len(curve) >= 2 and float(curve.max()) >= SHIFT_MIN:
        peak = float(curve.max())
        return ChangePoint(True, int(np.argmax(curve)) + 1, peak, lvl, "change inside the window")
    peak = float(curve.max()) if len(curve) else 0.0
    base = level(baseline_X, present) if baseline_X.shape[2] else 0.0
    if lvl >= LEVEL_MIN and lvl >= LEVEL_MARGIN * base:
        return ChangePoint(True, 0, peak, lvl, "abnormal from the window start")
    return ChangePoint(False, 0, peak, lvl, "no change")
