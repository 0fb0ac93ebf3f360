"""What the repair engine is told: one localized, classified incident.

Why a separate model: the rule engine must not care whether a diagnosis came from the LangGraph
agent, the trace analytics, the learned tools or a JSON file an SRE wrote by hand. Whatever finds
the root cause fills this one validated object; the engine matches strategies against it and the
audit log records it.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from enum import StrEnum

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field


class AlarmLevel(StrEnum):
    """How loud an incident is: the seed's three alarm levels, ordered (``info`` < ``warn`` <
    ``critical``), as a diagnosis and a strategy's ``severity`` condition write them.

    Why not :class:`tools.core.severity.Severity`: that is the level of one *log record* (the
    OpenTelemetry scale a source writes); this is the level of an *incident*, which an SRE pages
    on. Two scales, two names.
    """

    INFO = "info"
    WARN = "warn"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return _ALARM_RANK[self]


_ALARM_RANK = {AlarmLevel.INFO: 0, AlarmLevel.WARN: 1, AlarmLevel.CRITICAL: 2}


class Diagnosis(BaseModel):
    """A root cause with the evidence a strategy condition can test.

    ``fault_type`` is a short snake_case label (``inference_hang``, ``callback_failure``,
    ``pod_crash`` ...); ``module`` is the component inside ``service`` where the fault sits (for a
    single-module service they are the same); ``metrics`` carries measured values by name (for
    example ``p95_latency_s`` or ``failure_rate``) that metric thresholds compare against.
    """

    model_config = ConfigDict(extra="forbid")

    service: str = Field(min_length=1)
    module: str | None = None
    operation: str | None = None
    fault_type: str = Field(min_length=1)
    root_cause: str = ""  # a human sentence, e.g. "downstream inference hangs"
    error_codes: list[str] = Field(default_factory=list)
    metrics: dict[str, float] = Field(default_factory=dict)
    severity: AlarmLevel = AlarmLevel.WARN
    # A calibrated probability that ``service`` is the root cause (out-of-fold calibrated top-1
    # accuracy at this score); None when whoever diagnosed has no calibration. A repair acts only
    # above the policy's threshold (:meth:`tools.repair.safety.SafetyPolicy.evidence_problems`).
    confidence: float | None = Field(default=None, ge=0.0, le=1.0)
    # False when ``confidence`` is a stand-in (the live triage's vote share), not a calibrated
    # probability: the repair gate refuses it unless the policy says otherwise.
    confidence_calibrated: bool = True
    # Modalities (metrics, traces, logs) whose own channels moved at ``service``, and whether a
    # confirmed incident in the knowledge base names it: the evidence a repair target needs.
    evidence_modalities: list[str] = Field(default_factory=list)
    kb_match: bool = False
    trace_ids: list[str] = Field(default_factory=list)
    task_ids: list[str] = Field(default_factory=list)
    detected_at: AwareDatetime = Field(default_factory=lambda: datetime.now(UTC))
    incident_id: str | None = None
    # a task that completed just before the incident: its snapshots are the last good state
    last_good_task_id: str | None = None
    evidence: list[str] = Field(default_factory=list)

    @property
    def component(self) -> str:
        """The module when known, else the service: what a strategy's ``{module}`` refers to."""
        return self.module or self.service

    @property
    def label(self) -> str:
        """``Module.fault_type``: the seed's audit ``root_cause`` field (``LLMAdapter.Timeout``)."""
        return f"{self.component}.{self.fault_type}"

    def repair_task_id(self) -> str:
        """Stable id of the repair task for this incident: the idempotency key's first half.

        Why stable: a restarted process that is handed the same diagnosis must find the actions
        it already ran in the audit log, so the id depends only on what identifies the incident.
        """
        if self.incident_id:
            return f"repair-{self.incident_id}"
        key = "|".join(
            [self.service, self.component, self.fault_type, self.detected_at.isoformat()]
        )
        return "repair-" + hashlib.sha256(key.encode()).hexdigest()[:12]
