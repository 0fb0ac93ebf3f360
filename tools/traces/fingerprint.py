"""Anomaly fingerprints and the seed's matching rule (ch. 3).

A fingerprint has three parts: the structure (a hash of the path from the trace root to the
root-cause span and of that span's children, with the depth and the error position, plus a WL
deviation vector for graded similarity), a metric signature (which of a fixed set of symptoms
the window showed) and a log signature (top error keywords and log templates). Why a path hash
and a vector: the hash names the anomaly exactly (an id a human can file a fix against), the
vector lets a recurring anomaly with slightly different surroundings (one LLM turn more, an
optional step skipped) still match.
"""

from __future__ import annotations

import hashlib

import numpy as np
from pydantic import BaseModel, Field

from tools.traces.config import MatchRule

METRIC_FLAGS = (
    "latency_spike",
    "error_spike",
    "retry_peak",
    "callback_drop",
    "hung_spans",
    "missing_spans",
    "span_volume_spike",
    "span_volume_drop",
    "throughput_drop",
    "duplicate_dispatch",
)


class Fingerprint(BaseModel):
    structure_fingerprint: str  # "span_hash_tree:<hash>::depth<d>::error@<root span>"
    structure_vector: list[float] = Field(default_factory=list)
    metric_signature: dict[str, bool] = Field(default_factory=dict)
    log_signature: list[str] = Field(default_factory=list)
    root_span: str
    reason: str

    @property
    def fingerprint_id(self) -> str:
        key = f"{self.structure_fingerprint}|{self.reason}"
        return hashlib.sha1(key.encode()).hexdigest()[:12]

    def metric_hits(self, other: Fingerprint) -> int:
        return sum(
            1 for k, v in self.metric_signature.items() if v and other.metric_signature.get(k)
        )

    def log_hits(self, other: Fingerprint) -> int:
        return len(set(self.log_signature) & set(other.log_signature))


def structure_string(path: list[str], children: list[str], depth: int, root_span: str) -> str:
    """The structure fingerprint text: hash of path and children, depth, error position."""
    digest = hashlib.sha1("/".join([*path, "|", *sorted(children)]).encode()).hexdigest()[:10]
    return f"span_hash_tree:{digest}::depth{depth}::error@{root_span}"


def cosine(a: list[float] | np.ndarray, b: list[float] | np.ndarray) -> float:
    va, vb = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if va.shape != vb.shape or not va.size:
        return 0.0
    na, nb = np.linalg.norm(va), np.linalg.norm(vb)
    if na == 0 or nb == 0:
        return 1.0 if na == nb else 0.0
    return float(max(0.0, np.dot(va, vb) / (na * nb)))


class MatchScore(BaseModel):
    """How a candidate fingerprint compares with a stored one, and whether the rule accepts it."""

    structure_similarity: float
    metric_hits: int
    log_hits: int
    root_known: bool
    score: float
    matched: bool


def _jaccard_hits(hits: int, a: int, b: int) -> float:
    union = a + b - hits
    return hits / union if union else 1.0


def match_score(
    candidate: Fingerprint, known: Fingerprint, known_roots: set[str], rule: MatchRule
) -> MatchScore:
    """The seed's rule: similarity > threshold, >= 2 metric and >= 2 log hits, a known root-cause
    node in the trace, weighted score > min_score."""
    sim = cosine(candidate.structure_vector, known.structure_vector)
    m_hits = candidate.metric_hits(known)
    l_hits = candidate.log_hits(known)
    root_known = candidate.root_span in known_roots
    m_a = sum(candidate.metric_signature.values())
    m_b = sum(known.metric_signature.values())
    w = rule.weights
    score = (
        w.structure * sim
        + w.metrics * _jaccard_hits(m_hits, m_a, m_b)
        + w.logs
        * _jaccard_hits(l_hits, len(set(candidate.log_signature)), len(set(known.log_signature)))
        + w.root * float(root_known)
    )
    matched = (
        sim > rule.structure_threshold
        and m_hits >= rule.min_metric_hits
        and l_hits >= rule.min_log_hits
        and (root_known or not rule.require_known_root)
        and score > rule.min_score
    )
    return MatchScore(
        structure_similarity=round(sim, 4),
        metric_hits=m_hits,
        log_hits=l_hits,
        root_known=root_known,
        score=round(score, 4),
        matched=matched,
    )
