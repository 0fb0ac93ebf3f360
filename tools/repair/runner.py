"""The repair run: safety -> dry run -> approval -> actions -> verification -> rollback.

Why one place: every safety property of the engine is decided here, in order, and every step is
written to the audit log *before* it runs. The runner is resumable: handed the same plan again
(after a crash, a restart, a second operator), it reads the task's audit history and

* returns the recorded outcome of a finished task without touching anything;
* never re-runs an action that has a result, and never re-runs an action whose intent was
  logged without a result (it may have happened) unless its executor's receiver dedupes by the
  idempotency key ``task_id:seq_no``, in which case re-sending the same key is harmless;
* refuses when the task has used ``max_attempts`` runs or outlived its ``ttl_s``.

Before anything runs, the policy decides: every target allow-listed, enough evidence for the
diagnosis (calibrated confidence over the threshold and two modalities or a knowledge-base
match), and an approval by an allow-listed, authenticated principal — each refusal audited with
the identity it was given.

A repair whose verification fails (or whose action fails) is rolled back — the inverse of every
executed action, newest first, then the strategy's own ``rollback`` steps — and reported failed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from tools.core.errors import TamoError
from tools.repair.audit import AuditEntry, AuditLog
from tools.repair.engine import PlannedAction, RepairPlan
from tools.repair.executors.base import ActionResult, Executor
from tools.repair.metrics import RepairMetrics
from tools.repair.safety import Approval, Approver, SafetyPolicy
from tools.repair.verify import Verification, Verifier

log = logging.getLogger("tamo.repair")

Status = Literal["success", "failed", "refused"]
# Audit entries may come from several hosts; a history this far in the future means their
# clocks disagree, and TTLs and verification windows computed across them mean nothing.
MAX_CLOCK_SKEW_S = 60.0


class RepairOutcome(BaseModel):
    task_id: str
    strategy_id: str
    status: Status
    recovered: bool
    reason: str = ""
    executed: list[int] = Field(default_factory=list)  # seq_no of actions performed this run
    skipped: list[int] = Field(default_factory=list)  # already done (or in doubt) earlier
    verification: Verification | None = None
    rollback_applied: bool = False
    duration_ms: float = 0.0
    audit_ids: list[str] = Field(default_factory=list)
    resumed: bool = False


class _Refused(Exception):
    pass


class RepairExecutor:
    """Runs :class:`RepairPlan` s with the executors by name (``testbed``, ``kubernetes`` ...)."""

    def __init__(
        self,
        executors: Mapping[str, Executor],
        audit: AuditLog,
        policy: SafetyPolicy,
        *,
        verifier: Verifier | None = None,
        approver: Approver | None = None,
        metrics: RepairMetrics | None = None,
        on_event: Callable[[AuditEntry], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.executors = dict(executors)
        self.audit = audit
        self.policy = policy
        self.verifier = verifier
        self.approver = approver
        self.metrics = metrics or RepairMetrics()
        self.on_event = on_event
        self.clock = clock

    # -- audit helpers -------------------------------------------------------------------------
    def _rec(self, plan: RepairPlan, ids: list[str], event: str, **fields: Any) -> AuditEntry:
        d = plan.diagnosis
        entry = self.audit.record(
            event,
            plan.task_id,
            trace_id=d.trace_ids[0] if d.trace_ids else None,
            detected_at=d.detected_at.isoformat(),
            root_cause=d.label,
            strategy_id=plan.strategy_id,
            executed_by=fields.pop("executed_by", self.policy.executed_by),
            fallback_used=plan.fallback_used,
            **fields,
        )
        ids.append(entry.entry_id)
        if self.on_event:
            self.on_event(entry)
        return entry

    def _executor(self, action: PlannedAction) -> Executor:
        ex = self.executors.get(action.executor)
        if ex is None:
            raise _Refused(f"no executor {action.executor!r} configured for action {action.seq_no}")
        if action.type not in ex.supported:
            raise _Refused(f"executor {ex.name} cannot perform {action.type!r}")
        return ex

    # -- the run -------------------------------------------------------------------------------
    def run(self, plan: RepairPlan) -> RepairOutcome:
        t0 = self.clock()
        history = self.audit.entries(task_id=plan.task_id)
        done = [e for e in history if e.event == "finished"]
        if done:
            prev = RepairOutcome.model_validate(done[-1].details["outcome"])
            return prev.model_copy(
                update={"resumed": True, "executed": [], "skipped": prev.executed + prev.skipped}
            )
        ids: list[str] = []
        attempts = sum(1 for e in history if e.event == "run_started")
        resumed = attempts > 0
        if not any(e.event == "plan" for e in history):
            self._rec(
                plan,
                ids,
                "plan",
                status="info",
                details={
                    "plan": plan.model_dump(mode="json", exclude={"diagnosis", "alternatives"}),
                    "diagnosis": plan.diagnosis.model_dump(mode="json"),
                    "alternatives": [a.model_dump() for a in plan.alternatives],
                },
            )
            history = self.audit.entries(task_id=plan.task_id)
        first_ts = datetime.fromisoformat(history[0].ts).timestamp()
        outcome = RepairOutcome(
            task_id=plan.task_id,
            strategy_id=plan.strategy_id,
            status="refused",
            recovered=False,
            resumed=resumed,
            audit_ids=ids,
        )
        try:
            if attempts >= plan.max_attempts:
                raise _Refused(f"repair task used all {plan.max_attempts} attempts")
            age = self.clock() - first_ts
            if age < -MAX_CLOCK_SKEW_S:
                raise _Refused(
                    f"the task's audit history starts {-age:.0f}s in the future: clocks differ "
                    "between the hosts writing the audit log; fix NTP before repairing"
                )
            if age > plan.ttl_s:
                raise _Refused(f"repair task older than its TTL of {plan.ttl_s:g}s")
            self._rec(
                plan,
                ids,
                "run_started",
                status="started",
                details={"attempt": attempts + 1, "resumed": resumed},
            )
            self.metrics.attempt(plan.strategy_id)
            started_actions = any(e.event == "action_intent" for e in history)
            self._guard(plan, ids, history, started_actions)
            outcome = self._act_and_verify(plan, ids, history, outcome)
        except _Refused as exc:
            outcome.reason = str(exc)
            outcome.status = "refused"
            self._rec(plan, ids, "refused", status="refused", details={"reason": str(exc)})
        outcome.duration_ms = (self.clock() - t0) * 1000
        if outcome.status != "refused":
            self.metrics.outcome(
                plan.strategy_id,
                outcome.status == "success",
                outcome.duration_ms / 1000,
                rebuilt=int(plan.repair_class == "trace_rebuild" and outcome.status == "success"),
            )
        final = (
            self._rec(
                plan,
                ids,
                "finished",
                status=outcome.status,
                duration_ms=outcome.duration_ms,
                rollback_applied=outcome.rollback_applied,
                details={"outcome": outcome.model_dump(mode="json", exclude={"audit_ids"})},
            )
            if outcome.status != "refused"
            else None
        )
        if final is not None:
            log.info(
                "[trace_id=%s] Repair chain: %s -> %s",
                final.trace_id,
                " -> ".join(a.type for a in plan.actions),
                outcome.status,
            )
        outcome.audit_ids = ids
        return outcome

    def _guard(
        self, plan: RepairPlan, ids: list[str], history: list[AuditEntry], resuming: bool
    ) -> None:
        bad = self.policy.disallowed(plan)
        if bad:
            raise _Refused(f"targets not in the allow-list: {', '.join(bad)}")
        weak = self.policy.evidence_problems(plan.diagnosis)
        if weak:
            raise _Refused(f"evidence too weak to act (plan and report only): {'; '.join(weak)}")
        for a in [*plan.actions, *plan.rollback]:
            self._executor(a)
        if not resuming:
            first = plan.actions[0]
            for check in plan.prechecks:
                r = self._call(self._executor(first).precheck, check, first)
                self._preflight(
                    plan, ids, "precheck", first.seq_no, r, {"check": check}, f"pre-check {check}"
                )
            if self.policy.dry_run_first:
                for a in plan.actions:
                    r = self._call(self._executor(a).dry_run, a, key=a.key(plan.task_id))
                    self._preflight(
                        plan,
                        ids,
                        "dry_run",
                        a.seq_no,
                        r,
                        {"action": a.type, "target": a.target},
                        f"dry run of {a.type} {a.target}",
                    )
        if any(e.event == "approval" and e.status == "approved" for e in history):
            return
        if plan.auto and self.policy.allow_auto:
            approval = Approval(approved=True, by="policy:auto", reason="strategy is auto: true")
        elif self.approver is None:
            raise _Refused("approval required (strategy is not auto) and no approver configured")
        else:
            approval = self.approver(plan)
        problem = self.policy.approval_problem(approval) if approval.approved else None
        self._rec(
            plan,
            ids,
            "approval",
            status="refused" if problem else "approved" if approval.approved else "denied",
            executed_by=approval.by or "unauthenticated",
            details={"reason": approval.reason, **({"refused": problem} if problem else {})},
        )
        if problem:
            raise _Refused(f"approval refused: {problem}")
        if not approval.approved:
            raise _Refused(f"not approved by {approval.by}: {approval.reason}")

    def _preflight(
        self,
        plan: RepairPlan,
        ids: list[str],
        event: str,
        seq_no: int,
        r: ActionResult,
        details: dict[str, Any],
        what: str,
    ) -> None:
        """Audit one pre-check or dry run; a failed one refuses the repair."""
        self._rec(
            plan,
            ids,
            event,
            seq_no=seq_no,
            status="success" if r.ok else "failed",
            details={**details, "detail": r.detail},
        )
        if not r.ok:
            raise _Refused(f"{what} failed: {r.detail}")

    @staticmethod
    def _call(fn: Callable[..., ActionResult], *args: Any, **kw: Any) -> ActionResult:
        try:
            return fn(*args, **kw)
        except TamoError as exc:
            return ActionResult(ok=False, detail=str(exc))

    def _act_and_verify(
        self, plan: RepairPlan, ids: list[str], history: list[AuditEntry], outcome: RepairOutcome
    ) -> RepairOutcome:
        results = {e.seq_no: e for e in history if e.event == "action_result"}
        intents = {e.seq_no for e in history if e.event == "action_intent"}
        performed: list[tuple[PlannedAction, dict[str, Any]]] = [
            (a, results[a.seq_no].details.get("previous", {}))
            for a in plan.actions
            if a.seq_no in results and results[a.seq_no].status == "success"
        ]
        failure = next(
            (f"action {e.seq_no} failed earlier" for e in results.values() if e.status == "failed"),
            None,
        )
        for a in plan.actions if failure is None else []:
            ex = self._executor(a)
            key = a.key(plan.task_id)
            if a.seq_no in results:
                outcome.skipped.append(a.seq_no)
                continue
            if a.seq_no in intents and not ex.dedupes:
                self._rec(
                    plan,
                    ids,
                    "action_result",
                    seq_no=a.seq_no,
                    status="in_doubt",
                    details={
                        "action": a.type,
                        "target": a.target,
                        "key": key,
                        "detail": "intent logged before a crash; not re-sent "
                        "(receiver does not dedupe)",
                    },
                )
                outcome.skipped.append(a.seq_no)
                performed.append((a, {}))
                continue
            if a.seq_no not in intents:
                self._rec(
                    plan,
                    ids,
                    "action_intent",
                    seq_no=a.seq_no,
                    status="started",
                    details={"action": a.type, "target": a.target, "key": key, "params": a.params},
                )
            t = self.clock()
            r = self._call(ex.execute, a, key=key)
            self._rec(
                plan,
                ids,
                "action_result",
                seq_no=a.seq_no,
                status="success" if r.ok else "failed",
                duration_ms=(self.clock() - t) * 1000,
                details={
                    "action": a.type,
                    "target": a.target,
                    "key": key,
                    "detail": r.detail,
                    "previous": r.previous,
                    "resent": a.seq_no in intents,
                },
            )
            if not r.ok:
                failure = f"{a.type} {a.target} failed: {r.detail}"
                break
            outcome.executed.append(a.seq_no)
            performed.append((a, r.previous))
        if failure is None:
            outcome.verification = self._verify(plan, ids)
            if outcome.verification is None or outcome.verification.passed:
                outcome.status, outcome.recovered = "success", True
                outcome.reason = (
                    "recovery verified"
                    if outcome.verification
                    else "no verification defined by the strategy"
                )
                return outcome
            failed = [
                f"{c.name}: {c.note}" if c.note else c.name
                for c in outcome.verification.checks
                if not c.passed
            ]
            failure = f"recovery not verified ({'; '.join(failed)})"
        outcome.status, outcome.recovered, outcome.reason = "failed", False, failure
        outcome.rollback_applied = self._rollback(plan, ids, history, performed)
        return outcome

    def _verify(self, plan: RepairPlan, ids: list[str]) -> Verification | None:
        if plan.verify is None:
            return None
        if self.verifier is None:
            raise _Refused("the strategy defines verification checks but no verifier is configured")
        since = datetime.fromtimestamp(self.clock(), tz=UTC)
        v = self.verifier.verify(plan.verify, since)
        self._rec(
            plan,
            ids,
            "verify",
            status="success" if v.passed else "failed",
            duration_ms=v.seconds * 1000,
            details={"polls": v.polls, "checks": [c.model_dump() for c in v.checks]},
        )
        return v

    def _rollback(
        self,
        plan: RepairPlan,
        ids: list[str],
        history: list[AuditEntry],
        performed: list[tuple[PlannedAction, dict[str, Any]]],
    ) -> bool:
        t0 = self.clock()
        done = {e.details.get("step") for e in history if e.event == "rollback_result"}
        intents = {e.details.get("step") for e in history if e.event == "rollback_intent"}
        steps: list[tuple[str, PlannedAction, Callable[[], ActionResult]]] = []
        for a, prev in reversed(performed):
            ex, key = self._executor(a), a.key(plan.task_id)
            steps.append(
                (
                    f"undo:{a.seq_no}",
                    a,
                    lambda ex=ex, a=a, key=key, prev=prev: ex.rollback(a, key=key, previous=prev),
                )
            )
        for a in plan.rollback:
            ex, key = self._executor(a), a.key(plan.task_id)
            steps.append(
                (f"step:{a.seq_no}", a, lambda ex=ex, a=a, key=key: ex.execute(a, key=key))
            )
        for step, a, fn in steps:
            if step in done or (step in intents and not self._executor(a).dedupes):
                continue
            if step not in intents:
                self._rec(
                    plan,
                    ids,
                    "rollback_intent",
                    seq_no=a.seq_no,
                    status="started",
                    details={"step": step, "action": a.type, "target": a.target},
                )
            r = self._call(fn)
            self._rec(
                plan,
                ids,
                "rollback_result",
                seq_no=a.seq_no,
                status="success" if r.ok else "failed",
                rollback_applied=True,
                details={"step": step, "action": a.type, "target": a.target, "detail": r.detail},
            )
        self.metrics.rollback_latency.observe(self.clock() - t0)
        return bool(steps)
