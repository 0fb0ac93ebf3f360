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
    # the trained ranker's softmax probability over the window's entities (sums to 1 over all
    # entities); without a trained ranker the hand-set score normalised to the top = 1.0
    score: float
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
    # Calibrated probability that ranking[0] is the root cause (Platt on out-of-fold margins of
    # the trained ranker); None without a trained ranker: then there is no probability to gate on.
    confidence: float | None = Field(None, ge=0.0, le=1.0)
    onset_detected: bool = False  # the onset came from the change-point detector (no alert)
    onset_s: float = 0.0  # seconds from the window start to the (alert or detected) onset
    # when the window has no change point the ranking is empty; what would have ranked is here
    candidates: list[RankedEntity] = Field(default_factory=list)
    note: str = ""

    @property
    def services(self) -> list[str]:
        return [r.entity for r in self.ranking]


class FaultTypePrediction(BaseModel):
    """T3 result: a fault type with probability, alternatives, and an honest 'unknown'."""

    fault_type: str  # a known label, or "unknown" when confidence is low
    probability: float  # share of the best type among the known types it was trained on
    alternatives: dict[str, float] = Field(default_factory=dict)
    low_confidence: bool = False
    note: str = ""  # why "unknown": e.g. unlike every fault type it was trained on
