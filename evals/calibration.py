"""Is a confidence a probability? Expected calibration error and the reliability table.

ECE = sum over equal-width confidence bins of (bin share of cases) * |hit rate - mean confidence|;
the reliability table lists, per bin, how many cases, their mean confidence and how often the
top-1 was right. "Acc@1 among confidence >= 0.8" is what a repair gate at 0.8 would see.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

BINS = 5
GATE = 0.8


def reliability(
    confidence: Sequence[float], right: Sequence[bool], bins: int = BINS
) -> list[dict[str, Any]]:
    """One row per non-empty bin: range, cases, mean confidence, hit rate."""
    c = np.asarray(confidence, dtype=float)
    y = np.asarray(right, dtype=float)
    edges = np.linspace(0.0, 1.0, bins + 1)
    idx = np.clip(np.digitize(c, edges[1:-1]), 0, bins - 1)
    rows = []
    for b in range(bins):
        mask = idx == b
        if mask.any():
            rows.append(
                {
                    "bin": f"{edges[b]:.1f}-{edges[b + 1]:.1f}",
                    "cases": int(mask.sum()),
                    "confidence": round(float(c[mask].mean()), 4),
                    "acc@1": round(float(y[mask].mean()), 4),
                }
            )
    return rows


def ece(confidence: Sequence[float], right: Sequence[bool], bins: int = BINS) -> float:
    n = len(confidence)
    if n == 0:
        return 0.0
    return round(
        sum(
            r["cases"] / n * abs(r["acc@1"] - r["confidence"])
            for r in reliability(confidence, right, bins)
        ),
        4,
    )


def calibration_report(confidence: Sequence[float], right: Sequence[bool]) -> dict[str, Any]:
    sure = [r for c, r in zip(confidence, right, strict=True) if c >= GATE]
    return {
        "ece": ece(confidence, right),
        "gate": GATE,
        "cases_at_gate": len(sure),
        "acc@1_at_gate": round(sum(sure) / len(sure), 4) if sure else None,
        "reliability": reliability(confidence, right),
    }
