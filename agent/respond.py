"""Answering a live alert: the alert opens an investigation of the one graph ``tamo diagnose`` runs.

Why no loop of its own: an incident raised by the live trace watcher is investigated like any
other — scope, gather, fuse, localize, classify, match fingerprints, plan — and a real repair goes
through the graph's approval pause, then execute, verify and (on failure) rollback. The only
difference is who answers the pause: here a front that has already authenticated the approver
(the demo's own OS account, an on-call's Slack id) answers it at once. The alert's triage,
error codes and severity reach the rule engine through the graph's ``plan`` step.
"""

from __future__ import annotations

from agent.run import Investigation, Investigator
from tools.telemetry.model import Incident
from tools.traces.alerting import TraceAlert


def incident_of(alert: TraceAlert, system: str | None = None) -> Incident:
    """The incident an alert opens: its window and baseline, with every service in scope."""
    return Incident(
        window=alert.window,
        baseline=alert.baseline,
        system=system,
        question=f"live alert: {alert.anomalous}/{alert.traces} traces anomalous",
    )


def respond(
    investigator: Investigator,
    alert: TraceAlert,
    approver: str,
    *,
    system: str | None = None,
    dry_run: bool = False,
) -> Investigation:
    """Investigate ``alert``; if a plan reaches the approval pause, approve it as ``approver``
    (an authenticated principal such as ``os:<user>``) and let the graph execute and verify."""
    inv = investigator.diagnose(
        incident_of(alert, system), request_repair=True, dry_run=dry_run, alert=alert
    )
    if inv.pending_approval is None:
        return inv
    return investigator.decide(
        inv.thread_id, True, by=approver, reason="approved for the live alert"
    )
