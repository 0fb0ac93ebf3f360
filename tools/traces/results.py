"""What ``analyze_traces`` returns: compact, pydantic, with a short text summary for an LLM.

Why compact: per-trace rows are a handful of scalars; clusters carry one fingerprint each; the
``summary()`` is a few hundred tokens (counts, the top clusters with root span, reason and any
known fix, incidents, shared dependencies, input problems) with ids to ask for more, because a
tool result must never flood the agent's context.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

import numpy as np
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field

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


TRACE_COLUMNS = pa.schema(
    [
        ("trace_id", pa.string()),
        ("anomalous", pa.bool_()),
        ("anomaly_score", pa.float64()),
        ("cluster_id", pa.string()),
        ("root_span", pa.string()),
        ("reason", pa.string()),
        ("fingerprint_id", pa.string()),
        ("start_ns", pa.int64()),
        ("n_spans", pa.int64()),
    ]
)


class TraceRows:
    """Per-trace results accumulated batch by batch as columns (a pydantic object per trace
    would cost more than the whole analysis of its spans)."""

    def __init__(self) -> None:
        self._ids: list[str] = []
        self._cols: dict[str, list[np.ndarray]] = {
            "anomalous": [],
            "score": [],
            "start": [],
            "n": [],
        }
        self._labels: dict[int, tuple[str, str, str, str]] = {}

    def __len__(self) -> int:
        return len(self._ids)

    def extend(
        self,
        ids: list[str],
        anomalous: np.ndarray,
        score: np.ndarray,
        start: np.ndarray,
        n: np.ndarray,
    ) -> int:
        base = len(self._ids)
        self._ids.extend(ids)
        for key, arr in zip(
            ("anomalous", "score", "start", "n"), (anomalous, score, start, n), strict=True
        ):
            self._cols[key].append(arr)
        return base

    def label(
        self, row: int, cluster_id: str, root_span: str, reason: str, fingerprint_id: str
    ) -> None:
        self._labels[row] = (cluster_id, root_span, reason, fingerprint_id)

    def table(self) -> pa.Table:
        n = len(self._ids)

        def cat(key: str, dtype: type) -> np.ndarray:
            return (
                np.concatenate(self._cols[key]).astype(dtype)
                if self._cols[key]
                else np.zeros(0, dtype)
            )

        labelled: list[list[str | None]] = [[None] * n for _ in range(4)]
        for row, values in self._labels.items():
            for col, value in zip(labelled, values, strict=True):
                col[row] = value
        return pa.Table.from_arrays(
            [
                pa.array(self._ids, pa.string()),
                pa.array(cat("anomalous", bool)),
                pa.array(np.round(cat("score", float), 4)),
                *(pa.array(col, pa.string()) for col in labelled),
                pa.array(cat("start", np.int64)),
                pa.array(cat("n", np.int64)),
            ],
            schema=TRACE_COLUMNS,
        )


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
    model_config = ConfigDict(arbitrary_types_allowed=True)

    trace_table: pa.Table = Field(default_factory=TRACE_COLUMNS.empty_table, exclude=True)
    clusters: list[TraceCluster] = Field(default_factory=list)
    incidents: list[TraceIncident] = Field(default_factory=list)
    shared_root_causes: list[SharedRootCause] = Field(default_factory=list)
    counters: InputCounters = Field(default_factory=InputCounters)
    baseline_source: str = "input"  # "baseline" | "input"
    batches: int = 0

    @cached_property
    def traces(self) -> list[TraceResult]:
        """Per-trace rows as pydantic objects (built on first access from ``trace_table``)."""
        return [TraceResult.model_construct(**r) for r in self.trace_table.to_pylist()]

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
            "traces": self.trace_table.select(list(keys)).to_pylist(),
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
        n_anom = (
            int(np.asarray(self.trace_table["anomalous"]).sum()) if self.trace_table.num_rows else 0
        )
        lines = [
            f"{self.trace_table.num_rows} traces ({self.counters.spans_used} spans) analysed, "
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
