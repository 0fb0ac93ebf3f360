"""The public learned tools, as the agent and the MCP server call them.

Why thin wrappers: the agent passes whatever it has (maybe no trained models) and gets the typed,
compact results of :mod:`tools.learned.results`; model loading, fallbacks and the "untrained"
note live here once instead of in every caller.
"""

from __future__ import annotations

from tools.learned.aligned import AlignedTelemetry
from tools.learned.classifier import classify
from tools.learned.fusion import FusedTelemetry, fuse
from tools.learned.localize import localize
from tools.learned.models import LearnedModels
from tools.learned.results import FaultTypePrediction, RootCauseRanking


def fuse_modalities(
    aligned: AlignedTelemetry, models: LearnedModels | None = None
) -> FusedTelemetry:
    """T1: fuse logs and traces into the series; ``.summary()`` gives the compact view."""
    return fuse(aligned, models.diffusion if models is not None else None)


def localize_root_cause(
    fused: FusedTelemetry, top_k: int = 5, models: LearnedModels | None = None
) -> RootCauseRanking:
    """T2: top-K root-cause entities with scores, causal edges, channel evidence and the
    calibrated ``confidence`` that the first is the root cause (with a trained ranker)."""
    if models is None:
        return localize(fused, None, top_k=top_k)
    return localize(fused, models.localizer, top_k=top_k, ranker=models.ranker)


def classify_fault(
    fused: FusedTelemetry, ranking: RootCauseRanking, models: LearnedModels | None = None
) -> FaultTypePrediction:
    """T3: fault type at the top-ranked entity, or "unknown" with low confidence."""
    return classify(fused, ranking, models.classifier if models is not None else None)
