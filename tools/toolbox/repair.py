"""Repair tools: the strategy library, a plan for a diagnosis, and (guarded) execution.

Why plans are kept by id: ``plan_repair`` is read-only and cheap; ``execute_repair`` refers to a
plan by id so that what runs is exactly what was shown (and approved), never arguments a model
made up. Execution goes through :class:`tools.repair.RepairExecutor` — allow-list, pre-checks,
dry run, approval, write-ahead audit, verification, automatic rollback — and the plan's
``task_id`` makes a repeated call a no-op that returns the recorded outcome.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from tools.core.errors import NotFoundError
from tools.repair import (
    AlarmLevel,
    Approval,
    AuditEntry,
    AuditLog,
    Diagnosis,
    Executor,
    RepairExecutor,
    RepairMetrics,
    RepairPlan,
    RuleEngine,
    SafetyPolicy,
    Strategy,
    Verifier,
    load_strategies,
)
from tools.repair.executors import KubernetesExecutor, TestbedExecutor, WebhookExecutor
from tools.repair.identity import approvers_from_env, comma_list, current_approval
from tools.telemetry.untrusted import quote
from tools.toolbox.context import ToolContext
from tools.toolbox.spec import WindowInput, tool


@dataclass
class RepairSetup:
    """What execution needs, configured by the front that builds the context."""

    strategies: list[Strategy] = field(default_factory=load_strategies)
    executors: dict[str, Executor] = field(default_factory=dict)
    policy: SafetyPolicy = field(default_factory=SafetyPolicy)
    audit: AuditLog | None = None
    verifier: Verifier | None = None
    metrics: RepairMetrics | None = None  # repair counters a Prometheus scrapes, when exported
    on_audit: Callable[[AuditEntry], None] | None = None  # each audit entry as it is written


class RepairSettings(BaseSettings):
    """Where repairs can act (``TAMO_REPAIR_*``). Nothing configured: plans and dry runs only."""

    model_config = SettingsConfigDict(env_prefix="TAMO_REPAIR_", extra="ignore")

    testbed_url: str | None = None
    k8s_api_url: str | None = None
    k8s_token: SecretStr | None = None
    k8s_namespace: str = "default"
    webhook_url: str | None = None
    webhook_token: SecretStr | None = None
    allow_targets: Annotated[list[str], NoDecode] = []  # globs; empty allows nothing
    min_confidence: float = Field(0.8, ge=0.0, le=1.0)  # calibrated P(root cause) to act on
    strategies: Path | None = None  # a strategy file or folder instead of the built-in library

    _split = field_validator("allow_targets", mode="before")(comma_list)


def setup_from_settings(ctx: ToolContext, rs: RepairSettings | None = None) -> RepairSetup:
    """Executors for what is configured, the safety allow-list, the audit log, a verifier over
    the context's own sources."""
    rs = rs or RepairSettings()
    executors: dict[str, Executor] = {}
    if rs.testbed_url:
        executors["testbed"] = TestbedExecutor(rs.testbed_url)
    if rs.k8s_api_url:
        token = rs.k8s_token.get_secret_value() if rs.k8s_token else None
        executors["kubernetes"] = KubernetesExecutor(
            rs.k8s_api_url, namespace=rs.k8s_namespace, token=token
        )
    if rs.webhook_url:
        token = rs.webhook_token.get_secret_value() if rs.webhook_token else None
        executors["webhook"] = WebhookExecutor(rs.webhook_url, token=token)
    return RepairSetup(
        strategies=load_strategies(rs.strategies),
        executors=executors,
        policy=SafetyPolicy(
            allow_targets=rs.allow_targets,
            approvers=approvers_from_env(),
            min_confidence=rs.min_confidence,
            executed_by="tamo-agent",
        ),
        audit=AuditLog(ctx.settings.path("audit_dir", "audit")),
        verifier=Verifier(ctx.metrics, ctx.traces),
    )


def setup(ctx: ToolContext) -> RepairSetup:
    """The context's repair setup: as configured (``configure``), else from ``TAMO_REPAIR_*``."""
    return ctx.cached("repair_setup", lambda: setup_from_settings(ctx))


def configure(ctx: ToolContext, repair: RepairSetup) -> None:
    """Give the context executors, a safety policy and an audit log for real repairs."""
    ctx.remember("repair_setup", repair)


# ----------------------------------------------------------------------------------------------


class ListStrategiesInput(BaseModel):
    fault_type: str | None = Field(None, description="only strategies whose condition names it")


class StrategyView(BaseModel):
    id: str
    repair_class: str
    when: str
    actions: list[str]
    auto: bool


class ListStrategiesResult(BaseModel):
    strategies: list[StrategyView]


def _when(s: Strategy) -> str:
    c = s.condition.model_dump(exclude_defaults=True, exclude_none=True)
    return ", ".join(f"{k}={v}" for k, v in c.items())


@tool()
def list_strategies(inp: ListStrategiesInput, ctx: ToolContext) -> ListStrategiesResult:
    """The repair strategy library: id, class (restart, scale, rollback ...), when it applies and
    its actions. Cheap. plan_repair picks from these automatically; list them to explain options."""
    out = []
    for s in setup(ctx).strategies:
        if inp.fault_type and inp.fault_type not in (s.condition.fault_type or []):
            continue
        out.append(
            StrategyView(
                id=s.strategy_id,
                repair_class=s.repair_class,
                when=_when(s),
                actions=[f"{a.type} {a.target}" for a in s.actions],
                auto=s.auto,
            )
        )
    return ListStrategiesResult(strategies=out)


# ----------------------------------------------------------------------------------------------


class PlanRepairInput(BaseModel):
    """The evidence a repair needs (calibrated confidence, modalities, knowledge-base match) is
    not an input: ``plan_repair`` reads it from the incident's own analysis, so a caller cannot
    talk a plan into acting."""

    service: str = Field(description="root-cause service (from localize_root_cause)")
    fault_type: str = Field(description="from classify_fault")
    module: str | None = None
    error_codes: list[str] = Field(default_factory=list)
    metrics: dict[str, float] = Field(default_factory=dict, description="e.g. error_rate")
    severity: AlarmLevel = AlarmLevel.WARN
    trace_ids: list[str] = Field(default_factory=list)
    task_ids: list[str] = Field(default_factory=list)
    incident_id: str | None = None
    last_good_task_id: str | None = Field(
        None, description="a task that completed just before the incident (snapshot restores)"
    )
    evidence: list[str] = Field(default_factory=list, description="observations, for the audit")


class PlanRepairResult(BaseModel):
    plan_id: str | None = Field(description="pass to execute_repair; null: nothing matched")
    strategy: str | None = None
    description: str = ""
    auto: bool = False
    actions: list[str] = Field(default_factory=list)
    rollback: list[str] = Field(default_factory=list)
    reasons: list[str] = Field(default_factory=list)
    alternatives: list[str] = Field(default_factory=list)
    executable: bool = Field(False, description="false: evidence too weak, plan and report only")
    held_back: list[str] = Field(default_factory=list, description="why it may not act")
    plan: dict | None = Field(None, exclude=True)  # full plan, kept for resumption, not shown


# The live alert that opened the context's investigation (set by the graph from its state, never
# by a tool's arguments): ``evidence_for`` counts its triage for the service it points at.
LIVE_ALERT = "live_alert"
EVIDENCE_SHARE = 0.5  # a channel counts as evidence at half the strength of the entity's top one


def _modality(channel: str) -> str:
    return {"metric": "metrics", "trace": "traces", "log": "logs"}.get(channel.split("_")[0], "?")


def _names(root_cause: str, service: str) -> bool:
    """A knowledge-base root cause (a span node such as ``svc``, ``svc:op``) names ``service``."""
    return root_cause == service or (
        root_cause.startswith(service) and root_cause[len(service) : len(service) + 1] in ":./ "
    )


def evidence_for(ctx: ToolContext, service: str) -> tuple[float | None, bool, list[str], bool]:
    """(confidence, whether it is calibrated, modalities that moved, knowledge-base match) for
    ``service`` as the root cause of the context's incident, from the ranking and the trace
    analysis."""
    from tools.toolbox.learned import ranking_for
    from tools.toolbox.traces import analysis_for

    scope = WindowInput()
    ranking = ranking_for(ctx, scope)
    top = ranking.ranking[0] if ranking.ranking else None
    confidence, calibrated, modalities = None, True, []
    if top is not None and top.entity == service:
        confidence = ranking.confidence
        strongest = max((e.score for e in top.evidence), default=0.0)
        modalities = sorted(
            {
                _modality(e.channel)
                for e in top.evidence
                if strongest > 0 and e.score >= EVIDENCE_SHARE * strongest
            }
        )
    alert = ctx.recall(LIVE_ALERT)
    if confidence is None and alert is not None and alert.suspect == service:
        # the live trace triage backs the service T2 does not rank first: its vote share stands
        # in for the confidence, marked uncalibrated so that only a policy accepting that (as
        # ``tamo demo``'s does) lets it pass the repair gate; traces are its modality
        confidence, calibrated = alert.share, False
        modalities = sorted({*modalities, "traces"})
    clusters = analysis_for(ctx, scope).clusters
    kb = any(c.known is not None and _names(c.known.root_cause, service) for c in clusters)
    return confidence, calibrated, modalities, kb


@tool()
def plan_repair(inp: PlanRepairInput, ctx: ToolContext) -> PlanRepairResult:
    """Pick the best repair strategy for a diagnosis (root-cause service + fault type) with the
    rule engine, and say why; changes nothing. Call after localize_root_cause and classify_fault.
    Returns a plan_id for execute_repair (executable only when the incident's evidence is
    strong enough), or plan_id null with the reasons nothing matched."""
    confidence, calibrated, modalities, kb = evidence_for(ctx, inp.service)
    diagnosis = Diagnosis(
        service=inp.service,
        module=inp.module,
        fault_type=inp.fault_type,
        confidence=confidence,
        confidence_calibrated=calibrated,
        evidence_modalities=modalities,
        kb_match=kb,
        error_codes=inp.error_codes,
        metrics=inp.metrics,
        severity=inp.severity,
        trace_ids=inp.trace_ids[:5],
        task_ids=inp.task_ids[:5],
        incident_id=inp.incident_id,
        last_good_task_id=inp.last_good_task_id,
        evidence=inp.evidence,
    )
    engine = RuleEngine(setup(ctx).strategies)
    plan = engine.pick(diagnosis)
    if plan is None:
        rejected = [f"{m.strategy_id}: {'; '.join(m.reasons)}" for m in engine.rank(diagnosis)[:3]]
        return PlanRepairResult(plan_id=None, reasons=rejected)
    ctx.remember(f"plan:{plan.task_id}", plan)
    held_back = setup(ctx).policy.evidence_problems(diagnosis)
    return PlanRepairResult(
        plan_id=plan.task_id,
        strategy=plan.strategy_id,
        description=plan.description,
        auto=plan.auto,
        actions=[
            f"{a.seq_no}. {a.type} {quote(a.target, 120)} via {a.executor}" for a in plan.actions
        ],
        rollback=[f"{a.type} {quote(a.target, 120)}" for a in plan.rollback],
        reasons=plan.reasons,
        alternatives=[f"{m.strategy_id} ({m.score:g})" for m in plan.alternatives[:3]],
        executable=not held_back,
        held_back=held_back,
        plan=plan.model_dump(mode="json"),
    )


# ----------------------------------------------------------------------------------------------


class ExecuteRepairInput(BaseModel):
    """No approver field on purpose: who approved comes from the front that authenticated the
    person (:func:`tools.repair.identity.approving`), never from the caller's arguments."""

    plan_id: str = Field(description="from plan_repair")
    dry_run: bool = Field(True, description="false performs the actions (needs human approval)")


class ExecuteRepairResult(BaseModel):
    plan_id: str
    dry_run: bool
    status: str  # dry-run-ok | dry-run-failed | success | failed | refused
    detail: str
    executed: list[int] = Field(default_factory=list)
    verified: bool | None = None
    verification: str | None = None
    rolled_back: bool = False
    resumed: bool = False


def decision_refused(
    ctx: ToolContext, plan_id: str, by: str | None, approved: bool, reason: str = ""
) -> str | None:
    """Audit a person's decision on ``plan_id``; the one-line reason it is refused (``by`` is
    no allow-listed, authenticated principal), else None. Denials by approvers are audited here;
    approvals are audited by the runner when it acts on them."""
    rs = setup(ctx)
    audit = rs.audit or AuditLog(ctx.settings.path("audit_dir", "audit"))
    problem = rs.policy.approval_problem(Approval(approved=True, by=by or ""))
    if problem is None and approved:
        return None
    audit.record(
        "approval",
        plan_id,
        status="refused" if problem else "denied",
        executed_by=by or "unauthenticated",
        details={"reason": reason, **({"refused": problem} if problem else {})},
    )
    return f"decision refused: {problem}" if problem else None


def _plan(ctx: ToolContext, plan_id: str) -> RepairPlan:
    plan = ctx.recall(f"plan:{plan_id}")
    if plan is None:
        raise NotFoundError(f"no repair plan {plan_id!r}: call plan_repair first")
    return plan if isinstance(plan, RepairPlan) else RepairPlan.model_validate(plan)


def _dry_run(rs: RepairSetup, plan: RepairPlan) -> ExecuteRepairResult:
    lines, ok = [], True
    for a in plan.actions:
        ex = rs.executors.get(a.executor)
        if ex is None:
            ok = False
            lines.append(
                f"{a.seq_no}. {a.type} {quote(a.target, 120)}: "
                f"no {a.executor!r} executor configured"
            )
            continue
        r = ex.dry_run(a, key=a.key(plan.task_id))
        ok = ok and r.ok
        lines.append(f"{a.seq_no}. {a.type} {quote(a.target, 120)}: {quote(r.detail, 200)}")
    return ExecuteRepairResult(
        plan_id=plan.task_id,
        dry_run=True,
        status="dry-run-ok" if ok else "dry-run-failed",
        detail="; ".join(lines),
    )


@tool(read_only=False, destructive=True, idempotent=True)
def execute_repair(inp: ExecuteRepairInput, ctx: ToolContext) -> ExecuteRepairResult:
    """Run a repair plan. DESTRUCTIVE when dry_run=false: restarts/scales/rolls back services.
    Default dry_run=true only validates each action where it would run. A real run needs the
    confirmation of an allow-listed, authenticated person (asked by the client, never passed as
    an argument) and enough evidence; it is audited, verified and rolled back on failure;
    re-calling with the same plan_id never repeats an action (returns the recorded outcome)."""
    rs = setup(ctx)
    plan = _plan(ctx, inp.plan_id)
    if inp.dry_run:
        return _dry_run(rs, plan)
    approval = current_approval()
    audit = rs.audit or AuditLog(ctx.settings.path("audit_dir", "audit"))

    def approver(_: RepairPlan) -> Approval:
        # No authenticated person behind this call: the runner audits and refuses it.
        return approval or Approval(approved=True, by="", reason="no authenticated approver")

    runner = RepairExecutor(
        rs.executors,
        audit,
        rs.policy,
        verifier=rs.verifier,
        approver=approver,
        metrics=rs.metrics,
        on_event=rs.on_audit,
    )
    out = runner.run(plan)
    v = out.verification
    return ExecuteRepairResult(
        plan_id=plan.task_id,
        dry_run=False,
        status=out.status,
        detail=out.reason or f"executed actions {out.executed}",
        executed=out.executed,
        verified=None if v is None else v.passed,
        verification=None
        if v is None
        else "; ".join(
            f"{c.name}={c.value} {c.op} {c.threshold:g}: {'ok' if c.passed else 'FAIL'}"
            for c in v.checks
        ),
        rolled_back=out.rollback_applied,
        resumed=out.resumed,
    )
