"""The investigation state LangGraph checkpoints after every node.

Why typed and small: the SQLite checkpointer stores this after each step so a killed process
resumes where it stopped; only compact, validated results live here (summaries, rankings, the
plan and its execution), never raw telemetry. Every class stored here is listed in
``STATE_TYPES`` so the checkpointer deserialises exactly these types and nothing else.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypedDict

from pydantic import BaseModel, Field

from agent.report import EvidenceItem, Report, Usage
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


class Approval(BaseModel):
    approved: bool
    by: str | None = None
    reason: str | None = None
    at: datetime | None = None


class ImpactFigures(BaseModel):
    """Measured from traces of the incident window, compared with the baseline window."""

    requests: int = 0
    error_rate: float = 0.0
    baseline_error_rate: float | None = None
    p95_ms: float | None = None
    baseline_p95_ms: float | None = None
    affected_services: list[str] = Field(default_factory=list)
    error_codes: list[str] = Field(default_factory=list)
    trace_ids: list[str] = Field(default_factory=list)


class InvestigationState(TypedDict, total=False):
    incident: Incident
    request_repair: bool  # pause for approval and execute when a plan matches
    dry_run: bool
    evidence: list[EvidenceItem]
    usage: Usage
    impact: ImpactFigures
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
    ImpactFigures,
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
]
