"""Guards that stand between a plan and a production system.

Why each guard (chapter 5 of the seed): a target allow-list, so a strategy can never touch what
the operator did not hand over; evidence, so a repair acts only on a target that a calibrated
confidence and two modalities (or a confirmed incident) point at, never on one noisy signal such
as a single log line; approval by an allow-listed, authenticated principal
(:mod:`tools.repair.identity`) unless the strategy is marked ``auto: true`` and the policy allows
automatic repairs at all; a TTL and a maximum number of attempts per repair task, so a failing
repair cannot turn into a re-dispatch storm.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from typing import Protocol

from pydantic import BaseModel, Field

from tools.repair.diagnosis import Diagnosis
from tools.repair.engine import RepairPlan

AUTO_PREFIX = "policy:"  # approvals the runner gives itself (auto strategies, the demo)


MODALITIES = ("metrics", "traces", "logs")


class SafetyPolicy(BaseModel):
    """What the operator allows. An empty allow-list allows nothing; no approvers, no approval."""

    allow_targets: list[str] = Field(default_factory=list)  # glob patterns of action targets
    approvers: list[str] = Field(default_factory=list)  # principals, e.g. os:alice, slack:U024
    allow_auto: bool = True  # honour ``auto: true`` strategies
    dry_run_first: bool = True
    executed_by: str = "auto-repair-engine"
    min_confidence: float = Field(0.8, ge=0.0, le=1.0)  # calibrated P(target is the root cause)
    min_modalities: int = Field(2, ge=1, le=len(MODALITIES))
    # Whether an uncalibrated stand-in confidence (a live alert's vote share) may pass the gate.
    # Off in production; only a front that owns its alert source and says so (``tamo demo``).
    accept_uncalibrated: bool = False

    def evidence_problems(self, d: Diagnosis) -> list[str]:
        """Why the evidence for ``d.service`` is not enough to act on (empty: enough)."""
        out = []
        if d.confidence is None:
            out.append("no calibrated confidence for the root cause")
        elif not d.confidence_calibrated and not self.accept_uncalibrated:
            out.append("the confidence is an alert's vote share, not a calibrated probability")
        elif d.confidence < self.min_confidence:
            out.append(f"confidence {d.confidence:.2f} below {self.min_confidence:.2f}")
        kinds = sorted(set(d.evidence_modalities) & set(MODALITIES))
        if len(kinds) < self.min_modalities and not d.kb_match:
            out.append(
                f"evidence from {len(kinds)} modality ({', '.join(kinds) or 'none'}), "
                f"needs {self.min_modalities} or a knowledge-base match"
            )
        return out

    def approval_problem(self, approval: Approval) -> str | None:
        """Why ``approval`` cannot authorise a real run (None: it can)."""
        if not approval.by:
            return "no authenticated identity approved the repair"
        if approval.by.startswith(AUTO_PREFIX):
            return None if self.allow_auto else f"automatic approval ({approval.by}) not allowed"
        if approval.by not in self.approvers:
            return f"{approval.by} is not in TAMO_REPAIR_APPROVERS"
        return None

    def disallowed(self, plan: RepairPlan) -> list[str]:
        """Targets of the plan's actions and rollback steps that the allow-list does not cover."""
        out = []
        for a in [*plan.actions, *plan.rollback]:
            if not any(fnmatch.fnmatchcase(a.target, p) for p in self.allow_targets):
                out.append(a.target)
        return sorted(set(out))


class Approval(BaseModel):
    """A decision on a plan; ``by`` is an authenticated principal (``os:``, ``slack:``,
    ``mcp:``) or the runner's own ``policy:`` approval — never a name a caller typed."""

    approved: bool
    by: str
    reason: str = ""


class Approver(Protocol):
    def __call__(self, plan: RepairPlan) -> Approval: ...


def auto_approver(by: str = "policy:demo-auto-approve") -> Callable[[RepairPlan], Approval]:
    """An approver that says yes to everything (the unattended demo); the audit names it. It
    counts only where the policy allows automatic repairs."""

    def approve(plan: RepairPlan) -> Approval:
        return Approval(approved=True, by=by, reason="auto-approved for the demo")

    return approve
