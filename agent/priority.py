"""Priority P0–P3 from measured impact, by explicit ordered rules (the first that holds wins).

Why rules, not the model's opinion: a priority pages people; it must be reproducible and say
which rule set it, so an SRE can disagree with the rule rather than with a model.
"""

from __future__ import annotations

from collections.abc import Callable

from agent.report_model import Impact, Priority

Rule = tuple[str, str, Callable[[Impact], bool]]


def _err_increase(i: Impact) -> float:
    return i.error_rate - (i.baseline_error_rate or 0.0)


RULES: list[Rule] = [
    ("P0", "error rate >= 25%", lambda i: i.error_rate >= 0.25),
    (
        "P0",
        "error rate >= 5% across >= 3 affected services",
        lambda i: i.error_rate >= 0.05 and len(i.affected_services) >= 3,
    ),
    ("P1", "error rate >= 5%", lambda i: i.error_rate >= 0.05),
    ("P1", "p95 latency up >= 200%", lambda i: (i.latency_change_pct or 0.0) >= 200),
    ("P2", "error rate up >= 1 point over baseline", lambda i: _err_increase(i) >= 0.01),
    ("P2", "p95 latency up >= 50%", lambda i: (i.latency_change_pct or 0.0) >= 50),
    ("P2", "at least one affected service", lambda i: bool(i.affected_services)),
]


def assign_priority(impact: Impact) -> Priority:
    for level, text, holds in RULES:
        if holds(impact):
            return Priority(level=level, rule=text)  # type: ignore[arg-type]
    return Priority(level="P3", rule="no rule above held: no measurable user impact")
