"""Alert linkage: the same fingerprint more than N times within a sliding window -> incident.

Why a per-fingerprint deque: a recurring anomaly is a fleet problem for the agent/repair loop,
a single one is noise; counting occurrences in event time (trace start) rather than wall time
makes the result the same whether the traces arrive live or from a file. One incident is raised
per fingerprint per window, then the counter restarts so a storm does not flood the loop.
"""

from __future__ import annotations

import hashlib
from collections import deque

from pydantic import BaseModel, Field


class TraceIncident(BaseModel):
    """An incident record for the agent / repair loop."""

    incident_id: str
    fingerprint_id: str
    root_span: str
    reason: str
    count: int
    first_ns: int
    last_ns: int
    trace_ids: list[str] = Field(default_factory=list)  # capped sample
    known_root_cause: str | None = None
    known_fix: str | None = None
    match_score: float | None = None


class AlertLinker:
    def __init__(self, threshold: int = 10, window_s: float = 300.0, sample: int = 10) -> None:
        self.threshold, self.window_ns, self.sample = threshold, int(window_s * 1e9), sample
        self._seen: dict[str, deque[tuple[int, str]]] = {}

    def observe(
        self, fingerprint_id: str, ts_ns: int, trace_id: str, root_span: str, reason: str
    ) -> TraceIncident | None:
        """Count one occurrence; returns an incident when the count exceeds the threshold."""
        q = self._seen.setdefault(fingerprint_id, deque())
        q.append((ts_ns, trace_id))
        while q and q[0][0] < ts_ns - self.window_ns:
            q.popleft()
        if len(q) <= self.threshold:
            return None
        items = list(q)
        q.clear()
        first = items[0][0]
        iid = hashlib.sha1(f"{fingerprint_id}|{first}".encode()).hexdigest()[:12]
        return TraceIncident(
            incident_id=iid,
            fingerprint_id=fingerprint_id,
            root_span=root_span,
            reason=reason,
            count=len(items),
            first_ns=first,
            last_ns=items[-1][0],
            trace_ids=[t for _, t in items[: self.sample]],
        )
