"""The rule engine: which strategy fits this diagnosis, how well, and why.

Why scores and reasons instead of first-match: several strategies usually apply (a generic
restart and a specific fallback); the engine prefers the most specific one, says which
conditions matched, and lists the alternatives so an approver can see what was not chosen.
Score = sum of the weights of the conditions that matched (a specific error code or module
outweighs a severity) + the strategy's ``priority``; a strategy with any failing condition is
rejected with the reason.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import AwareDatetime, BaseModel, Field

from tools.repair.diagnosis import Diagnosis
from tools.repair.strategy import ActionSpec, Strategy, VerifySpec, glob_match
from tools.telemetry.untrusted import quote

WEIGHTS = {
    "fault_type": 4.0,
    "error_code": 3.0,
    "module": 3.0,
    "service": 1.0,
    "metric": 2.0,
    "severity": 1.0,
    "min_confidence": 0.5,
}


class PlannedAction(BaseModel):
    """A concrete action: target resolved from the diagnosis, numbered within its repair task."""

    seq_no: int
    type: str
    target: str
    executor: str
    params: dict[str, Any] = Field(default_factory=dict)

    def key(self, task_id: str) -> str:
        """The idempotency key ``task_id:seq_no`` sent with the action and kept in the audit."""
        return f"{task_id}:{self.seq_no}"


class StrategyMatch(BaseModel):
    strategy_id: str
    matched: bool
    score: float
    reasons: list[str]


class RepairPlan(BaseModel):
    """What will be done for one incident: the chosen strategy made concrete."""

    task_id: str
    strategy_id: str
    repair_class: str
    description: str
    auto: bool
    score: float
    reasons: list[str]
    alternatives: list[StrategyMatch] = Field(default_factory=list)
    diagnosis: Diagnosis
    prechecks: list[str] = Field(default_factory=list)
    actions: list[PlannedAction]
    rollback: list[PlannedAction] = Field(default_factory=list)
    verify: VerifySpec | None = None
    ttl_s: float
    max_attempts: int
    fallback_used: bool = False
    created_at: AwareDatetime = Field(default_factory=lambda: datetime.now(UTC))


def substitute(text: str, diagnosis: Diagnosis) -> str:
    """Replace ``{module}``, ``{service}`` and ``{last_good_task}`` literally (PromQL's own
    braces are left alone)."""
    return (
        text.replace("{module}", diagnosis.component)
        .replace("{service}", diagnosis.service)
        .replace("{last_good_task}", diagnosis.last_good_task_id or "")
    )


def _resolve(value: Any, diagnosis: Diagnosis) -> Any:
    if isinstance(value, str):
        return substitute(value, diagnosis)
    if isinstance(value, dict):
        return {k: _resolve(v, diagnosis) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, diagnosis) for v in value]
    return value


def evaluate(strategy: Strategy, d: Diagnosis) -> StrategyMatch:
    """Test every condition of ``strategy`` against ``d``; all given conditions must hold."""
    c = strategy.condition
    reasons: list[str] = []
    failed: list[str] = []
    score = 0.0

    def check(key: str, ok: bool, yes: str, no: str) -> None:
        nonlocal score
        if ok:
            score += WEIGHTS[key]
            reasons.append(yes)
        else:
            failed.append(no)

    for key, value, patterns in (
        ("fault_type", d.fault_type, c.fault_type),
        ("module", d.component, c.module),
        ("service", d.service, c.service),
    ):
        if patterns:
            p = glob_match(value, patterns)
            v = quote(value, 80)  # service and module names come from telemetry
            check(key, p is not None, f"{key} {v} ~ {p}", f"{key} {v} not in {patterns}")
    if c.error_code:
        wanted = {e.upper() for e in c.error_code}
        seen = sorted(wanted & {e.upper() for e in d.error_codes})
        check(
            "error_code",
            bool(seen),
            f"error_code {', '.join(quote(e, 40) for e in seen)} observed",
            f"none of error codes {sorted(wanted)} observed",
        )
    for t in c.metric:
        v = d.metrics.get(t.metric)
        if v is None:
            failed.append(f"metric {t.metric} not measured")
            continue
        check(
            "metric",
            t.holds(v),
            f"{t.metric}={v:g} {t.op} {t.value:g}",
            f"{t.metric}={v:g} fails {t}",
        )
    if c.severity is not None:
        check(
            "severity",
            d.severity.rank >= c.severity.rank,
            f"severity {d.severity} >= {c.severity}",
            f"severity {d.severity} below {c.severity}",
        )
    if c.min_confidence > 0:
        p = d.confidence
        check(
            "min_confidence",
            p is not None and p >= c.min_confidence,
            f"confidence {p:.2f} >= {c.min_confidence:.2f}" if p is not None else "",
            f"confidence {'not calibrated' if p is None else f'{p:.2f}'} "
            f"below {c.min_confidence:.2f}",
        )
    if failed:
        return StrategyMatch(
            strategy_id=strategy.strategy_id, matched=False, score=0.0, reasons=failed
        )
    if strategy.priority:
        reasons.append(f"priority {strategy.priority:+d}")
    return StrategyMatch(
        strategy_id=strategy.strategy_id,
        matched=True,
        score=score + strategy.priority,
        reasons=reasons,
    )


class RuleEngine:
    """Matches a :class:`Diagnosis` against a strategy library (see module docstring)."""

    def __init__(self, strategies: list[Strategy]) -> None:
        self.strategies = {s.strategy_id: s for s in strategies}

    def rank(self, diagnosis: Diagnosis) -> list[StrategyMatch]:
        """Every strategy evaluated; matches first, best score first, then rejections."""
        out = [evaluate(s, diagnosis) for s in self.strategies.values()]
        return sorted(out, key=lambda m: (not m.matched, -m.score, m.strategy_id))

    def pick(self, diagnosis: Diagnosis) -> RepairPlan | None:
        """The best-matching strategy as a concrete plan, or None when nothing applies."""
        ranking = self.rank(diagnosis)
        if not ranking or not ranking[0].matched:
            return None
        best = ranking[0]
        return self.plan(
            self.strategies[best.strategy_id],
            diagnosis,
            best,
            [m for m in ranking[1:] if m.matched],
        )

    def plan(
        self,
        strategy: Strategy,
        diagnosis: Diagnosis,
        match: StrategyMatch | None = None,
        alternatives: list[StrategyMatch] | None = None,
    ) -> RepairPlan:
        match = match or evaluate(strategy, diagnosis)

        def concrete(specs: list[ActionSpec], first: int) -> list[PlannedAction]:
            return [
                PlannedAction(
                    seq_no=first + i,
                    type=a.type,
                    target=substitute(a.target, diagnosis),
                    executor=a.executor or strategy.executor,
                    params=_resolve(a.params, diagnosis),
                )
                for i, a in enumerate(specs)
            ]

        actions = concrete(strategy.actions, 1)
        verify = None
        if strategy.verify is not None:
            verify = VerifySpec.model_validate(_resolve(strategy.verify.model_dump(), diagnosis))
        return RepairPlan(
            task_id=diagnosis.repair_task_id(),
            strategy_id=strategy.strategy_id,
            repair_class=strategy.repair_class,
            description=strategy.description,
            auto=strategy.auto,
            score=match.score,
            reasons=match.reasons,
            alternatives=alternatives or [],
            diagnosis=diagnosis,
            prechecks=list(strategy.prechecks),
            actions=actions,
            rollback=concrete(strategy.rollback, len(actions) + 1),
            verify=verify,
            ttl_s=strategy.ttl_s,
            max_attempts=strategy.max_attempts,
            fallback_used=strategy.fallback_used,
        )
