"""The TAMO learned tools (T1 fuse, T2 localize, T3 classify) as agent/MCP tools.

Why a thin layer: the heavy lifting lives in :mod:`tools.learned`; here the aligned and fused
tensors of an incident are computed once and shared through the context (T2 and T3 both need the
fused tensor), and results are trimmed to top-k so they stay a few hundred tokens.
"""

from __future__ import annotations

from typing import Any

from tools.learned.results import FaultTypePrediction, FusionSummary, RootCauseRanking
from tools.telemetry.model import Incident
from tools.toolbox.context import ToolContext
from tools.toolbox.spec import WindowInput, tool


def models_of(ctx: ToolContext) -> Any:
    """The context's trained bundle (loaded once; untrained when there is no models dir)."""
    from tools.learned import load_models

    return ctx.cached("models", lambda: load_models(ctx.settings.models_dir))


def fused_for(ctx: ToolContext, inp: WindowInput) -> Any:
    """The fused telemetry of the requested scope, computed once per scope."""
    from tools.learned import align, align_case, fuse_modalities

    window = ctx.window(inp.start, inp.end)
    services = ctx.services(inp.services)
    # a service graph declared by the caller (diagnose_incident's ``edges``); else the store's
    topology = ctx.recall("topology")
    declared = len(topology.edges) if topology is not None else 0
    key = f"fused:{window.start_ns}:{window.end_ns}:{declared}:{','.join(services or [])}"

    def compute() -> Any:
        incident_scope = ctx.incident is not None and window == ctx.incident.window
        if ctx.case is not None and incident_scope and not services:
            aligned = align_case(ctx.case)
        else:
            base = ctx.incident if incident_scope and ctx.incident else None
            incident = Incident(
                window=window,
                services=services or [],
                baseline=base.baseline if base else None,
                system=base.system if base else None,
            )
            # The embedded store can list its metric names; a remote Prometheus has too many to
            # read them all, so there the learned tools work from traces and logs.
            names = ctx.metrics.metric_names() if hasattr(ctx.metrics, "metric_names") else None
            aligned = align(
                ctx.traces, ctx.logs, ctx.metrics, incident, metric_names=names, topology=topology
            )
        return fuse_modalities(aligned, models=models_of(ctx))

    return ctx.cached(key, compute)


def ranking_for(ctx: ToolContext, inp: WindowInput) -> RootCauseRanking:
    from tools.learned import localize_root_cause as localize

    fused = fused_for(ctx, inp)
    return ctx.cached(
        f"ranking:{id(fused)}", lambda: localize(fused, top_k=20, models=models_of(ctx))
    )


@tool()
def fuse_modalities(inp: WindowInput, ctx: ToolContext) -> FusionSummary:
    """T1: align metrics, traces and logs of the window into one tensor and fuse them; returns
    the entities and channels that look most anomalous and which modalities were present.
    Costs up to a second the first time per window (then cached). Call before localize_root_cause
    only if you want the fused view itself; localize_root_cause runs it when needed."""
    summary: FusionSummary = fused_for(ctx, inp).summary()
    top = [r.model_copy(update={"evidence": r.evidence[:3]}) for r in summary.top_anomalies]
    return summary.model_copy(update={"top_anomalies": top[: inp.top_k]})


@tool()
def localize_root_cause(inp: WindowInput, ctx: ToolContext) -> RootCauseRanking:
    """T2: rank the services most likely to be the root cause of the window's incident, with a
    score in [0, 1], the channels that moved (evidence) and causal edges between services.
    The main localisation tool: call it once the incident window is known. Cached per window."""
    ranking = ranking_for(ctx, inp)
    top = [r.model_copy(update={"evidence": r.evidence[:3]}) for r in ranking.ranking[: inp.top_k]]
    return ranking.model_copy(update={"ranking": top, "causal_edges": ranking.causal_edges[:8]})


@tool()
def classify_fault(inp: WindowInput, ctx: ToolContext) -> FaultTypePrediction:
    """T3: the fault type of the incident (e.g. cpu_contention, network_delay) with probability
    and alternatives; says "unknown" with low_confidence rather than forcing a label. Runs
    localize_root_cause first if needed; cheap after that."""
    from tools.learned import classify_fault as classify

    fused = fused_for(ctx, inp)
    ranking = ranking_for(ctx, inp)
    pred: FaultTypePrediction = ctx.cached(
        f"fault:{id(fused)}", lambda: classify(fused, ranking, models=models_of(ctx))
    )
    alts = dict(sorted(pred.alternatives.items(), key=lambda kv: -kv[1])[:3])
    return pred.model_copy(update={"alternatives": alts})
