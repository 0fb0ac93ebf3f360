"""What ``tamo demo`` prints: each stage as it happens, then the before/after and the audit.

Why apart from the run: the run (:mod:`tamo.demo_scenario`) records every stage as an event
whether or not anyone watches; this module only turns events, graph tool calls and audit entries
into lines, and a finished result into tables.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

from tamo.console import console
from tools.repair import AuditEntry, AuditLog

STAGE_STYLE = {
    "baseline": "dim",
    "inject": "bold magenta",
    "detect": "bold red",
    "investigate": "yellow",
    "localize": "bold yellow",
    "strategy": "bold cyan",
    "approval": "bold green",
    "execute": "bold blue",
    "verify": "bold green",
    "rollback": "bold red",
    "report": "bold white",
}

AUDIT_STAGE = {
    "plan": "strategy",
    "approval": "approval",
    "action_intent": "execute",
    "action_result": "execute",
    "verify": "verify",
    "rollback_intent": "rollback",
    "rollback_result": "rollback",
    "precheck": "execute",
    "dry_run": "execute",
    "refused": "report",
    "finished": "report",
}


class Live:
    """Records each stage of the run, and prints it unless headless."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.t0: float | None = None
        self.events: list[dict[str, Any]] = []

    def line(
        self, stage: str, message: str, at: float | None = None, details: list[str] | None = None
    ) -> None:
        at = at or time.time()
        self.events.append({"stage": stage, "at": at, "message": message})
        if self.quiet:
            return
        rel = f"+{at - self.t0:5.1f}s" if self.t0 else "  setup"
        style = STAGE_STYLE.get(stage, "")
        # telemetry content is data: escaped, never rich markup
        console.print(
            f"[dim]{rel}[/] [{style}]{stage.upper():<11}[/] {escape(message)}", highlight=False
        )
        for item in details or []:
            console.print(f"              · {escape(item)}", highlight=False, style="dim")

    def graph_event(self, e: dict[str, Any]) -> None:
        """A tool call of the investigation graph (``Investigator``'s ``on_event``)."""
        if e.get("type") == "tool_call" and e["tool"] == "plan_repair":
            a = e["args"]
            codes = ", ".join(a.get("error_codes") or []) or "none"
            self.line(
                "localize",
                f"root cause: {a['service']}.{a['fault_type']} "
                f"(severity {a.get('severity')}, error codes {codes})",
            )
        elif e.get("type") == "tool_result" and e["tool"] == "match_fingerprint":
            self.line("investigate", *fingerprint_lines(e.get("result")))
        elif e.get("type") == "tool_result" and e["tool"] == "plan_repair":
            self.line("strategy", *plan_lines(e.get("result")))
        elif e.get("type") == "tool_result":
            self.line("investigate", f"{e['tool']}: {e.get('summary') or 'done'}"[:160])
        elif e.get("type") == "tool_error":
            self.line("investigate", f"{e['tool']} failed: {e['error']}"[:160])

    def audit_event(self, e: AuditEntry) -> None:
        stage = AUDIT_STAGE.get(e.event)
        if stage is None:
            return
        d = e.details
        if e.event == "plan":
            msg = f"{e.strategy_id} for {e.root_cause}"
        elif e.event == "approval":
            msg = f"{e.status} by {e.executed_by} ({d.get('reason', '')})"
        elif e.event == "verify":
            checks = ", ".join(
                f"{c['name']}={c['value'] if c['value'] is None else round(c['value'], 3)}"
                f"{'✓' if c['passed'] else '✗'}"
                for c in d.get("checks", [])
            )
            msg = f"{e.status} after {d.get('polls')} polls: {checks}"
        elif e.event == "finished":
            msg = f"repair {e.status} ({d['outcome'].get('reason', '')})"
        else:
            what = d.get("check") or f"{d.get('action', '')} {d.get('target', '')}"
            msg = f"{e.event.replace('_', ' ')} #{e.seq_no}: {what} -> {e.status}"
            if d.get("detail"):
                msg += f" ({d['detail']})"
        self.line(stage, msg, datetime.fromisoformat(e.ts).timestamp())


def fingerprint_lines(r: Any) -> tuple[str, None, list[str]]:
    """What the knowledge-base lookup matched: each window fingerprint's known incident, the
    fix that worked for it and the similarity, or that nothing known matched."""
    if r is None:
        return "match_fingerprint: no result", None, []
    if not r.matches:
        return (
            f"match_fingerprint: {r.checked} fingerprint(s) of this window checked against the "
            "knowledge base: no known incident matched (a new kind of incident)",
            None,
            [],
        )
    return (
        f"match_fingerprint: {len(r.matches)} of {r.checked} fingerprint(s) match known incidents",
        None,
        [
            f"fingerprint {m.fingerprint_id}: KB entry root cause {m.root_cause}, fix that "
            f"worked {m.strategy or 'none recorded'}, similarity {m.score:.2f}"
            for m in r.matches
        ],
    )


def plan_lines(r: Any) -> tuple[str, None, list[str]]:
    """The chosen plan and why: strategy, target and actions, the rule engine's reasons, the
    diagnosis' confidence and evidence, and the gate's verdict."""
    if r is None:
        return "plan_repair: no result", None, []
    if r.plan_id is None:
        return "plan_repair: no strategy applies", None, [f"rejected: {x}" for x in r.reasons]
    d = (r.plan or {}).get("diagnosis", {})
    conf = d.get("confidence")
    confidence = "none" if conf is None else f"{conf:.2f}"
    if conf is not None and not d.get("confidence_calibrated", True):
        confidence += " (uncalibrated: the live triage's vote share)"
    gate = "passes: may act" if r.executable else "holds it back: " + "; ".join(r.held_back)
    return (
        f"plan: {r.strategy} ({'automatic' if r.auto else 'needs a person'}): {r.description}",
        None,
        [
            f"target {d.get('module') or d.get('service')}; actions: {'; '.join(r.actions)}",
            f"why: {'; '.join(r.reasons)}",
            f"evidence: confidence {confidence}, modalities "
            f"{', '.join(d.get('evidence_modalities') or []) or 'none'}, knowledge-base match "
            f"{'yes' if d.get('kb_match') else 'no'}",
            f"gate: {gate}",
            *(["alternatives: " + ", ".join(r.alternatives)] if r.alternatives else []),
        ],
    )


def _pct(v: float | None, ratio: bool) -> str:
    if v is None:
        return "-"
    return f"{v * 100:.1f}%" if ratio else f"{v:.2f}s"


def show_result(res: dict[str, Any], audit: AuditLog) -> None:
    t = Table(title="before / after (PromQL over the testbed's metrics)")
    t.add_column("metric")
    for col in ("baseline", "incident", "after repair"):
        t.add_column(col, justify="right")
    for key, ratio in (
        ("p95_latency_s", False),
        ("failure_rate", True),
        ("callback_success_rate", True),
    ):
        t.add_row(
            key, *(_pct(res.get(k, {}).get(key), ratio) for k in ("baseline", "before", "after"))
        )
    console.print(t)
    a = Table(title="audit entries of this repair", box=None)
    for col in ("seq", "event", "no", "status", "by", "detail"):
        a.add_column(col)
    ids = set(res.get("audit_ids", []))
    for e in audit.entries():
        if e.entry_id in ids:
            detail = e.details.get("detail") or e.details.get("reason") or e.details.get("check")
            a.add_row(
                str(e.seq),
                e.event,
                "" if e.seq_no is None else str(e.seq_no),
                e.status,
                e.executed_by,
                str(detail or "")[:70],
            )
    console.print(a)
    ok = res["recovered"] and res["root_cause_correct"]
    console.print(
        Panel(
            f"scenario {res['scenario']}: root cause {res['root_cause']} "
            f"({'correct' if res['root_cause_correct'] else 'WRONG'}), strategy {res['strategy']}, "
            f"{'recovered and verified' if res['recovered'] else 'NOT recovered'}, "
            f"MTTR {res['mttr_seconds']} s (seed chapter 7: 37 s)\n"
            f"investigation {res.get('investigation')}; "
            f"artifacts: {', '.join(res.get('artifacts', {}).values())}",
            border_style="green" if ok else "red",
        )
    )
