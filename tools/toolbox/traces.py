"""Call-chain tools: anomalous trace clusters with fingerprints, and known-incident matching.

Why cached per window: ``analyze_traces`` learns normal behaviour and clusters anomalies once;
``match_fingerprint`` then looks the clusters' fingerprints up in the knowledge base without
redoing the analysis. The knowledge base is opened per call (SQLite connections must not cross
the MCP server's worker threads).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from tools.telemetry.sources import LogQuery, TraceQuery
from tools.telemetry.untrusted import clip
from tools.toolbox.context import ToolContext
from tools.toolbox.spec import WindowInput, tool
from tools.traces import KnowledgeBase, TraceAnalysis
from tools.traces import analyze_traces as run_analysis
from tools.traces.knowledge_base import default_kb_path

SPAN_LIMIT = 200_000


class ClusterView(BaseModel):
    cluster_id: str
    size: int
    root_span: str
    reason: str
    fingerprint_id: str
    known_root_cause: str | None = Field(None, description="a confirmed incident it matches")
    known_fix: str | None = None
    sample_traces: list[str] = Field(default_factory=list)


class RecurringIncident(BaseModel):
    fingerprint_id: str
    count: int
    root_span: str


class SharedDependency(BaseModel):
    node: str
    traces: int
    coverage: float


class AnalyzeTracesResult(BaseModel):
    traces: int
    anomalous: int
    baseline: str
    clusters: list[ClusterView]
    incidents: list[RecurringIncident] = Field(default_factory=list)
    shared_dependencies: list[SharedDependency] = Field(default_factory=list)


def _kb(ctx: ToolContext) -> KnowledgeBase:
    return KnowledgeBase(ctx.settings.kb_path or default_kb_path(ctx.settings))


def analysis_for(ctx: ToolContext, inp: WindowInput) -> TraceAnalysis:
    window = ctx.window(inp.start, inp.end)
    services = ctx.services(inp.services)
    key = f"traces:{window.start_ns}:{window.end_ns}:{','.join(services or [])}"

    def compute() -> TraceAnalysis:
        spans = ctx.traces.spans(TraceQuery(window, services=services, limit=SPAN_LIMIT))
        base = ctx.incident.baseline if ctx.incident is not None else None
        baseline = (
            ctx.traces.spans(TraceQuery(base, services=services, limit=SPAN_LIMIT))
            if base
            else None
        )
        logs = ctx.logs.logs(LogQuery(window, services=services, limit=50_000))
        with _kb(ctx) as kb:
            return run_analysis(spans, baseline=baseline, kb=kb, logs=logs)

    return ctx.cached(key, compute)


@tool()
def analyze_traces(inp: WindowInput, ctx: ToolContext) -> AnalyzeTracesResult:
    """Find anomalous call chains in the window (against a fault-free baseline when known):
    clusters with their root span, reason, fingerprint id and any KNOWN incident they match,
    recurring incidents and dependencies shared by failing traces. Costs ~1 s per 50k spans
    (then cached). Use when query_traces shows errors or slow traces and you need the why."""
    a = analysis_for(ctx, inp)
    clusters = sorted(a.clusters, key=lambda c: -c.size)[: inp.top_k]
    return AnalyzeTracesResult(
        traces=len(a.traces),
        anomalous=len(a.anomalous),
        baseline=a.baseline_source,
        clusters=[
            ClusterView(
                cluster_id=c.cluster_id,
                size=c.size,
                root_span=clip(c.root_span, 80),
                reason=clip(c.reason, 120),
                fingerprint_id=c.fingerprint_id,
                known_root_cause=clip(c.known.root_cause, 80) if c.known else None,
                known_fix=c.known.strategy if c.known else None,
                sample_traces=[ctx.links.trace(t) for t in c.trace_ids[:2]],
            )
            for c in clusters
        ],
        incidents=[
            RecurringIncident(
                fingerprint_id=i.fingerprint_id, count=i.count, root_span=clip(i.root_span, 60)
            )
            for i in a.incidents[:3]
        ],
        shared_dependencies=[
            SharedDependency(
                node=clip(s.shared_node, 60), traces=s.n_traces, coverage=round(s.coverage, 3)
            )
            for s in a.shared_root_causes[:3]
        ],
    )


class MatchFingerprintInput(WindowInput):
    fingerprint_id: str | None = Field(None, description="one cluster's; default: all clusters")


class FingerprintMatch(BaseModel):
    fingerprint_id: str
    root_cause: str
    strategy: str | None
    score: float


class MatchFingerprintResult(BaseModel):
    checked: int
    matches: list[FingerprintMatch]


@tool()
def match_fingerprint(inp: MatchFingerprintInput, ctx: ToolContext) -> MatchFingerprintResult:
    """Look the window's anomaly fingerprints up in the knowledge base of confirmed incidents:
    a match names the known root cause and the fix that worked. Runs analyze_traces first if
    needed. An empty list means nothing known matched (a new kind of incident)."""
    a = analysis_for(ctx, inp)
    fps = [c.fingerprint for c in a.clusters if inp.fingerprint_id in (None, c.fingerprint_id)]
    out: list[FingerprintMatch] = []
    with _kb(ctx) as kb:
        for fp in fps:
            m: Any = kb.match(fp)
            if m is not None:
                out.append(
                    FingerprintMatch(
                        fingerprint_id=m.fingerprint_id,
                        root_cause=clip(m.root_cause, 80),
                        strategy=m.strategy,
                        score=round(m.score, 3),
                    )
                )
    out.sort(key=lambda m: -m.score)
    return MatchFingerprintResult(checked=len(fps), matches=out[: inp.top_k])
