"""What ``analyze_traces`` returns: compact, pydantic, with a short text summary for an LLM.

Why compact: per-trace rows are a handful of scalars; clusters carry one fingerprint each; the
``summary()`` is a few hundred tokens (counts, the top clusters with root span, reason and any
known fix, incidents, shared dependencies, input problems) with ids to ask for more, because a
tool result must never flood the agent's context.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from tools.traces.alerts import TraceIncident
from tools.traces.correlate import SharedRootCause
from tools.traces.fingerprint import Fingerprint
from tools.traces.knowledge_base import KnownMatch
from tools.traces.reconstruct import InputCounters


class TraceResult(BaseModel):
    trace_id: str
    anomalous: bool
    anomaly_score: float
    cluster_id: str | None = None
    root_span: str | None = None
    reason: str | None = None
    fingerprint_id: str | None = None
    start_ns: int = 0
    n_spans: int = 0


class TraceCluster(BaseModel):
    cluster_id: str
    size: int
    root_span: str
    reason: str
    fingerprint_id: str
    fingerprint: Fingerprint
    known: KnownMatch | None = None
    trace_ids: list[str] = Field(default_factory=list)  # sample


class TraceAnalysis(BaseModel):
    traces: list[TraceResult] = Field(default_factory=list)
    clusters: list[TraceCluster] = Field(default_factory=list)
    incidents: list[TraceIncident] = Field(default_factory=list)
    shared_root_causes: list[SharedRootCause] = Field(default_factory=list)
    counters: InputCounters = Field(default_factory=InputCounters)
    baseline_source: str = "input"  # "baseline" | "input"
    batches: int = 0

    @property
    def anomalous(self) -> list[TraceResult]:
        return [t for t in self.traces if t.anomalous]

    def to_contract(self) -> dict[str, Any]:
        """The JSON of ``tamo traces analyze --json`` (keys fixed by the CLI contract)."""
        keys = (
            "trace_id",
            "anomalous",
            "anomaly_score",
            "cluster_id",
            "root_span",
            "reason",
            "fingerprint_id",
        )
        return {
            "traces": [{k: getattr(t, k) for k in keys} for t in self.traces],
            "clusters": [
                {
                    "cluster_id": c.cluster_id,
                    "size": c.size,
                    "root_span": c.root_span,
                    "reason": c.reason,
                    "fingerprint_id": c.fingerprint_id,
                    "fingerprint": c.fingerprint.model_dump(exclude={"structure_vector"}),
                    "known": c.known.model_dump() if c.known else None,
                }
                for c in self.clusters
            ],
            "incidents": [i.model_dump() for i in self.incidents],
            "shared_root_causes": [s.model_dump() for s in self.shared_root_causes],
            "counters": self.counters.model_dump(),
        }

    def summary(self, max_clusters: int = 5) -> str:
        n_anom = sum(1 for t in self.traces if t.anomalous)
        lines = [
            f"{len(self.traces)} traces ({self.counters.spans_used} spans) analysed, "
            f"{n_anom} anomalous, {len(self.clusters)} clusters; "
            f"normal behaviour learned from the {self.baseline_source}."
        ]
        for c in sorted(self.clusters, key=lambda c: -c.size)[:max_clusters]:
            known = ""
            if c.known:
                fix = c.known.strategy or "none recorded"
                known = f"; KNOWN {c.known.root_cause} (score {c.known.score:.2f}), fix: {fix}"
            symptoms = ",".join(k for k, v in c.fingerprint.metric_signature.items() if v)
            logs = ", ".join(c.fingerprint.log_signature[:3]) or "-"
            lines.append(
                f"- {c.cluster_id}: {c.size} traces, root {c.root_span}, {c.reason}; "
                f"symptoms {symptoms or '-'}; logs {logs}; e.g. {', '.join(c.trace_ids[:2])}{known}"
            )
        if len(self.clusters) > max_clusters:
            lines.append(f"- ... {len(self.clusters) - max_clusters} more clusters")
        for i in self.incidents[:3]:
            lines.append(
                f"INCIDENT {i.incident_id}: {i.count}x fingerprint {i.fingerprint_id} "
                f"({i.root_span}, {i.reason})"
            )
        for s in self.shared_root_causes[:3]:
            lines.append(
                f"SHARED: {s.n_traces} anomalous traces share {s.shared_node} "
                f"(coverage {s.coverage:.0%})"
            )
        problems = self.counters.problems()
        if problems:
            lines.append("input problems: " + ", ".join(f"{k}={v}" for k, v in problems.items()))
        return "\n".join(lines)
