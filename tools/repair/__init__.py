"""Closed-loop repair: strategy library, rule engine, executors, safety, verification, audit.

Flow: a :class:`Diagnosis` -> :meth:`RuleEngine.pick` -> :class:`RepairPlan` ->
:meth:`RepairExecutor.run` (allow-list, pre-checks, dry run, approval, write-ahead audited
actions, verification, automatic rollback) -> :class:`RepairOutcome`.
"""

from __future__ import annotations

from tools.repair.audit import AuditEntry, AuditLog
from tools.repair.diagnosis import AlarmLevel, Diagnosis
from tools.repair.engine import PlannedAction, RepairPlan, RuleEngine, StrategyMatch
from tools.repair.executors.base import ActionResult, Executor
from tools.repair.metrics import RepairMetrics
from tools.repair.runner import RepairExecutor, RepairOutcome
from tools.repair.safety import Approval, SafetyPolicy, auto_approver
from tools.repair.strategy import Strategy, load_strategies
from tools.repair.verify import Verification, Verifier

__all__ = [
    "ActionResult",
    "AlarmLevel",
    "Approval",
    "AuditEntry",
    "AuditLog",
    "Diagnosis",
    "Executor",
    "PlannedAction",
    "RepairExecutor",
    "RepairMetrics",
    "RepairOutcome",
    "RepairPlan",
    "RuleEngine",
    "SafetyPolicy",
    "Strategy",
    "StrategyMatch",
    "Verification",
    "Verifier",
    "auto_approver",
    "load_strategies",
]
