"""``tamo repair`` (strategies, plan, execute) and ``tamo audit`` (list, show, verify, export).

Why two groups in one module: they are the two faces of the repair engine, what will be done and
what was done. ``tamo repair execute`` is safe to run again after a crash or a kill: the plan's
task id is derived from the diagnosis, and the write-ahead audit log tells the new process which
actions already ran (they are never sent twice).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer
from pydantic import ValidationError
from rich.table import Table

from tamo.console import console, fail
from tools.core.settings import get_settings
from tools.repair import (
    Approval,
    AuditLog,
    Diagnosis,
    RepairExecutor,
    RepairPlan,
    RuleEngine,
    SafetyPolicy,
    Verifier,
    load_strategies,
)
from tools.repair.executors import (
    Executor,
    KubernetesExecutor,
    TestbedExecutor,
    WebhookExecutor,
)

repair_app = typer.Typer(
    help="Repair strategies, plans and guarded execution.", no_args_is_help=True
)
audit_app = typer.Typer(help="The hash-chained repair audit log.", no_args_is_help=True)

StrategiesOpt = typer.Option(
    None, "--strategies", help="strategy YAML file or directory (default: the built-in library)"
)
AuditDirOpt = typer.Option(None, "--audit-dir", help="audit directory (default: data dir/audit)")


def _audit(audit_dir: Path | None) -> AuditLog:
    s = get_settings()
    return AuditLog(audit_dir or s.audit_dir or s.data_dir / "audit")


def _diagnosis(path: Path) -> Diagnosis:
    try:
        return Diagnosis.model_validate_json(path.read_text(encoding="utf-8"))
    except OSError as exc:
        fail(f"{path}: cannot read: {exc.strerror}")
    except ValidationError as exc:
        err = exc.errors()[0]
        fail(f"{path}: field {'.'.join(map(str, err['loc'])) or '<root>'}: {err['msg']}")


def _plan(diagnosis: Path, strategies: Path | None) -> tuple[RuleEngine, Diagnosis, RepairPlan]:
    d = _diagnosis(diagnosis)
    engine = RuleEngine(load_strategies(strategies))
    plan = engine.pick(d)
    if plan is None:
        reasons = "; ".join(f"{m.strategy_id}: {', '.join(m.reasons)}" for m in engine.rank(d)[:3])
        fail(f"no strategy applies to {d.label} ({reasons})")
    return engine, d, plan


def print_plan(plan: RepairPlan) -> None:
    console.print(
        f"[bold]strategy[/] {plan.strategy_id} ({plan.repair_class}, score "
        f"{plan.score:g}, {'auto' if plan.auto else 'needs approval'})"
    )
    console.print(f"  why: {'; '.join(plan.reasons)}")
    t = Table("seq", "action", "target", "executor", "params", box=None)
    for a in plan.actions:
        t.add_row(str(a.seq_no), a.type, a.target, a.executor, json.dumps(a.params))
    for a in plan.rollback:
        t.add_row(f"{a.seq_no} (rollback)", a.type, a.target, a.executor, json.dumps(a.params))
    console.print(t)
    if plan.alternatives:
        console.print(
            "  alternatives: "
            + ", ".join(f"{m.strategy_id} ({m.score:g})" for m in plan.alternatives)
        )


@repair_app.command("strategies")
def strategies_cmd(strategies: Path | None = StrategiesOpt) -> None:
    """Validate and list the strategy library."""
    t = Table("strategy", "class", "when", "actions", "auto")
    for s in load_strategies(strategies):
        cond = s.condition.model_dump(exclude_defaults=True, exclude_none=True)
        when = "; ".join(
            f"{k}={','.join(map(str, v)) if isinstance(v, list) else v}" for k, v in cond.items()
        )
        t.add_row(
            s.strategy_id,
            s.repair_class,
            when,
            ", ".join(f"{a.type} {a.target}" for a in s.actions),
            "yes" if s.auto else "no",
        )
    console.print(t)


@repair_app.command("plan")
def plan_cmd(
    diagnosis: Path = typer.Option(..., "--diagnosis", help="Diagnosis JSON file"),
    strategies: Path | None = StrategiesOpt,
    as_json: bool = typer.Option(False, "--json", help="print the plan as JSON"),
) -> None:
    """Pick the best strategy for a diagnosis and show why (changes nothing)."""
    _, _, plan = _plan(diagnosis, strategies)
    if as_json:
        sys.stdout.write(plan.model_dump_json(indent=2) + "\n")
    else:
        print_plan(plan)


@repair_app.command("execute")
def execute_cmd(
    diagnosis: Path = typer.Option(..., "--diagnosis", help="Diagnosis JSON file"),
    strategies: Path | None = StrategiesOpt,
    testbed: str | None = typer.Option(None, "--testbed", help="testbed control API URL"),
    webhook: str | None = typer.Option(None, "--webhook", help="generic webhook URL"),
    k8s_url: str | None = typer.Option(None, "--k8s-url", help="Kubernetes API server URL"),
    k8s_namespace: str = typer.Option("default", "--k8s-namespace"),
    k8s_token: str | None = typer.Option(None, "--k8s-token", envvar="TAMO_K8S_TOKEN"),
    allow: list[str] = typer.Option([], "--allow", help="allowed target (glob); repeatable"),
    yes: bool = typer.Option(False, "--yes", help="approve a non-auto strategy"),
    prometheus: str | None = typer.Option(None, "--prometheus", help="Prometheus URL to verify"),
    audit_dir: Path | None = AuditDirOpt,
) -> None:
    """Run the plan with every guard: allow-list, evidence, pre-checks, dry run, approval by
    your OS account (listed in TAMO_REPAIR_APPROVERS as os:USER), write-ahead audit,
    verification, automatic rollback. Re-running after a crash resumes the same task."""
    _, _, plan = _plan(diagnosis, strategies)
    executors: dict[str, Executor] = {}
    if testbed:
        executors["testbed"] = TestbedExecutor(testbed)
    if webhook:
        executors["webhook"] = WebhookExecutor(webhook)
    if k8s_url:
        executors["kubernetes"] = KubernetesExecutor(
            k8s_url, namespace=k8s_namespace, token=k8s_token
        )
    metric_source = None
    if prometheus:
        from tools.telemetry.backends.prometheus import PrometheusClient

        metric_source = PrometheusClient(prometheus)
    from tools.repair.identity import approvers_from_env, os_principal

    user = os_principal()  # who approves is the OS account (uid), never a typed name

    def approver(p: RepairPlan) -> Approval:
        if yes:
            return Approval(approved=True, by=user, reason="--yes")
        if sys.stdin.isatty():
            print_plan(p)
            ok = typer.confirm("execute this plan?", default=False)
            return Approval(approved=ok, by=user, reason="interactive")
        return Approval(approved=False, by=user, reason="not approved (use --yes)")

    runner = RepairExecutor(
        executors,
        _audit(audit_dir),
        SafetyPolicy(allow_targets=allow, approvers=approvers_from_env(), executed_by=user),
        verifier=Verifier(metric_source, None),
        approver=approver,
        on_event=lambda e: console.print(
            f"  {e.event:<16} {e.status:<9} {'' if e.seq_no is None else e.seq_no}"
            f" {e.details.get('detail') or e.details.get('reason') or ''}",
            highlight=False,
        ),
    )
    out = runner.run(plan)
    colour = {"success": "green", "failed": "red", "refused": "yellow"}[out.status]
    console.print(
        f"[bold {colour}]{out.status}[/] {plan.task_id}: {out.reason}"
        + (" (resumed)" if out.resumed else "")
    )
    if out.status != "success":
        raise typer.Exit(1)


@audit_app.command("list")
def audit_list(
    task: str | None = typer.Option(None, "--task"),
    strategy: str | None = typer.Option(None, "--strategy"),
    trace: str | None = typer.Option(None, "--trace"),
    event: str | None = typer.Option(None, "--event"),
    limit: int = typer.Option(50, "--limit"),
    audit_dir: Path | None = AuditDirOpt,
) -> None:
    """Audit entries, oldest first (filter by task, strategy, trace id or event)."""
    entries = _audit(audit_dir).entries(
        task_id=task, strategy_id=strategy, trace_id=trace, event=event, limit=limit
    )
    t = Table("seq", "ts", "event", "task", "no", "strategy", "status", "by", "detail")
    for e in entries:
        detail = e.details.get("detail") or e.details.get("reason") or ""
        t.add_row(
            str(e.seq),
            e.ts[11:23],
            e.event,
            e.task_id,
            "" if e.seq_no is None else str(e.seq_no),
            e.strategy_id or "",
            e.status,
            e.executed_by,
            str(detail)[:60],
        )
    console.print(t)


@audit_app.command("show")
def audit_show(
    ref: str = typer.Argument(..., help="entry id or seq number"),
    audit_dir: Path | None = AuditDirOpt,
) -> None:
    """One entry with all its fields."""
    sys.stdout.write(_audit(audit_dir).get(ref).model_dump_json(indent=2) + "\n")


@audit_app.command("verify")
def audit_verify(audit_dir: Path | None = AuditDirOpt) -> None:
    """Recompute the hash chain; exit 1 naming the first bad entry if anything was altered."""
    r = _audit(audit_dir).verify()
    if not r.ok:
        fail(f"audit chain broken at entry {r.first_bad_seq}: {r.problem}", code=1)
    console.print(f"[green]ok[/] {r.entries} entries, chain intact")


@audit_app.command("export")
def audit_export(
    out: Path | None = typer.Option(None, "--out", help="file (default: stdout)"),
    task: str | None = typer.Option(None, "--task"),
    strategy: str | None = typer.Option(None, "--strategy"),
    audit_dir: Path | None = AuditDirOpt,
) -> None:
    """The audit package (JSON): entries plus the chain's verification."""
    text = json.dumps(_audit(audit_dir).export(task_id=task, strategy_id=strategy), indent=2)
    if out is None:
        sys.stdout.write(text + "\n")
    else:
        out.write_text(text)
        console.print(f"wrote {out}")


def register(app: typer.Typer) -> None:
    app.add_typer(repair_app, name="repair")
    app.add_typer(audit_app, name="audit")
