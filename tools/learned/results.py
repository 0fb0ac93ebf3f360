"""Outputs of the learned tools (T1 fuse, T2 localize, T3 classify), shared by agent, MCP and evals.

Why here and pydantic: these are the compact, typed results that cross into the agent and the MCP
server (a few hundred tokens at most), so they are validated models with ids to ask for more,
never raw tensors.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from tools.telemetry.model import Modality


class ChannelEvidence(BaseModel):
    """Why an entity scored: which channel moved, and how far from its normal."""

    channel: str
    score: float
    detail: str = ""


class RankedEntity(BaseModel):
    entity: str  # service name (or pod/operation name when finer)
    score: float  # normalised to [0, 1] over the ranking
    evidence: list[ChannelEvidence] = Field(default_factory=list)


class CausalEdge(BaseModel):
    cause: str
    effect: str
    weight: float


class FusionSummary(BaseModel):
    """T1 result as a model sees it: which entities/channels the fused signal marks anomalous."""

    entities: int
    channels: list[str]
    steps: int
    modalities: list[Modality]
    top_anomalies: list[RankedEntity] = Field(default_factory=list)
    method: str = "diffusion"


class RootCauseRanking(BaseModel):
    """T2 result: top-K root-cause entities with scores, the causal edges and their evidence."""

    ranking: list[RankedEntity]
    causal_edges: list[CausalEdge] = Field(default_factory=list)
    modalities: list[Modality] = Field(default_factory=list)
    method: str = "tamo"
    # The calibrated probability that ranking[0] is the root cause (calibrated out of fold);
    # None without a calibration. ``score`` is relative (top = 1.0) and is never a confidence:
    # the repair gate reads this field only.
    confidence: float | None = Field(None, ge=0.0, le=1.0)

    @property
    def services(self) -> list[str]:
        return [r.entity for r in self.ranking]


class FaultTypePrediction(BaseModel):
    """T3 result: a fault type with probability, alternatives, and an honest 'unknown'."""

    fault_type: str  # a known label, or "unknown" when confidence is low
    probability: float
    alternatives: dict[str, float] = Field(default_factory=dict)
    low_confidence: bool = False
