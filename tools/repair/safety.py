"""Guards that stand between a plan and a production system.

Why each guard (chapter 5 of the seed): a target allow-list, so a strategy can never touch what
the operator did not hand over; approval by a person unless the strategy is marked
``auto: true`` and the policy allows automatic repairs at all; a TTL and a maximum number of
attempts per repair task, so a failing repair cannot turn into a re-dispatch storm.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from typing import Protocol

from pydantic import BaseModel, Field

from tools.repair.engine import RepairPlan


class SafetyPolicy(BaseModel):
    """What the operator allows. An empty allow-list allows nothing."""

    allow_targets: list[str] = Field(default_factory=list)  # glob patterns of action targets
    allow_auto: bool = True  # honour ``auto: true`` strategies
    dry_run_first: bool = True
    executed_by: str = "auto-repair-engine"

    def disallowed(self, plan: RepairPlan) -> list[str]:
        """Targets of the plan's actions and rollback steps that the allow-list does not cover."""
        out = []
        for a in [*plan.actions, *plan.rollback]:
            if not any(fnmatch.fnmatchcase(a.target, p) for p in self.allow_targets):
                out.append(a.target)
        return sorted(set(out))


class Approval(BaseModel):
    approved: bool
    by: str
    reason: str = ""


class Approver(Protocol):
    def __call__(self, plan: RepairPlan) -> Approval: ...


def auto_approver(by: str = "demo:auto-approve") -> Callable[[RepairPlan], Approval]:
    """An approver that says yes to everything (the unattended demo); the audit names it."""

    def approve(plan: RepairPlan) -> Approval:
        return Approval(approved=True, by=by, reason="auto-approved for the demo")

    return approve
