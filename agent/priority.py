"""Priority P0–P3 from measured impact, by explicit ordered rules (the first that holds wins).

Why rules, not the model's opinion: a priority pages people; it must be reproducible and say
which rule set it, so an SRE can disagree with the rule rather than with a model.
"""

from __future__ import annotations

from collections.abc import Callable

from agent.report_model import Impact, Priority

Rule = tuple[str, str, Callable[[Impact], bool]]


def _err_up(i: Impact) -> float:
    """Entry points' error rate over normal (over zero when no baseline was measured)."""
    return i.error_rate - (i.baseline_error_rate or 0.0)


def _slower(i: Impact, pct: float) -> bool:
    return (i.latency_change_pct or 0.0) >= pct


# (level, rule as the report states it, test); "users" are the entry points' requests
RULES: list[Rule] = [
    (
        "P0",
        "users: error rate >= 25% and up >= 20 points over normal",
        lambda i: i.error_rate >= 0.25 and _err_up(i) >= 0.20,
    ),
    ("P1", "users: error rate up >= 5 points over normal", lambda i: _err_up(i) >= 0.05),
    ("P1", "users: p95 latency >= 3x normal", lambda i: _slower(i, 200)),
    ("P2", "users: error rate up >= 1 point over normal", lambda i: _err_up(i) >= 0.01),
    ("P2", "users: p95 latency >= 1.5x normal", lambda i: _slower(i, 50)),
    (
        "P2",
        "a service is worse than normal (errors or latency), users not yet",
        lambda i: bool(i.affected_services),
    ),
]


def assign_priority(impact: Impact) -> Priority:
    for level, text, holds in RULES:
        if holds(impact):
            return Priority(level=level, rule=text)  # type: ignore[arg-type]
    return Priority(level="P3", rule="no rule above held: no measurable change from normal")


def rules_markdown() -> str:
    """The rules as a list (docs and README show exactly these)."""
    lines = [f"{n}. **{level}** if {text}" for n, (level, text, _) in enumerate(RULES, 1)]
    lines.append(f"{len(RULES) + 1}. **P3** otherwise (no measurable change from normal)")
    return "\n".join(lines)
