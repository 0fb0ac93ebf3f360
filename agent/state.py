"""The investigation state LangGraph checkpoints after every node.

Why typed and small: the SQLite checkpointer stores this after each step so a killed process
resumes where it stopped; only compact, validated results live here (summaries, rankings, the
plan and its execution), never raw telemetry. Every class stored here is listed in
``STATE_TYPES`` so the checkpointer deserialises exactly these types and nothing else.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypedDict

from pydantic import BaseModel

from agent.report_model import EvidenceItem, Impact, Report, ServiceImpact, Usage
from tools.learned.results import (
    CausalEdge,
    ChannelEvidence,
    FaultTypePrediction,
    FusionSummary,
    RankedEntity,
    RootCauseRanking,
)
from tools.telemetry.model import Incident, Modality, TimeWindow
from tools.telemetry.untrusted import FlaggedText
from tools.traces.alerting import TraceAlert


class Approval(BaseModel):
    approved: bool
    by: str | None = None
    reason: str | None = None
    at: datetime | None = None


class InvestigationState(TypedDict, total=False):
    incident: Incident
    alert: TraceAlert | None  # the live alert that opened this investigation, if one did
    baseline_note: str | None  # where normal was measured, when the caller gave no baseline
    request_repair: bool  # pause for approval and execute when a plan matches
    dry_run: bool
    evidence: list[EvidenceItem]
    usage: Usage
    impact: Impact
    fusion: FusionSummary | None
    ranking: RootCauseRanking | None
    fault: FaultTypePrediction | None
    fingerprints: list[str]
    plan: dict[str, Any] | None  # plan_repair's result (compact plan view)
    approval: Approval | None
    execution: dict[str, Any] | None  # execute_repair's result
    verification: dict[str, Any] | None
    rolled_back: bool
    not_checked: list[str]
    narrative: str | None
    conversation: list[dict[str, str]]  # chat follow-ups: {"question", "answer"}, newest last
    report: Report | None
    started_at: float


STATE_TYPES: list[type] = [
    Incident,
    TimeWindow,
    Modality,
    Approval,
    Impact,
    ServiceImpact,
    EvidenceItem,
    FlaggedText,
    Usage,
    Report,
    FusionSummary,
    RootCauseRanking,
    RankedEntity,
    ChannelEvidence,
    CausalEdge,
    FaultTypePrediction,
    TraceAlert,
]
