"""Call-chain analytics (seed ch. 2-3, 10): trace trees, span vectors, anomaly detection and
clustering, fingerprints, a knowledge base of known anomalies, multi-trace
correlation and alert linkage. Entry point: :func:`analyze_traces`.
"""

from __future__ import annotations

from tools.traces.analyze import analyze_traces
from tools.traces.config import MatchRule, MatchWeights, TraceConfig
from tools.traces.fingerprint import Fingerprint
from tools.traces.knowledge_base import KnowledgeBase, KnownMatch
from tools.traces.results import TraceAnalysis, TraceCluster, TraceResult

__all__ = [
    "Fingerprint",
    "KnowledgeBase",
    "KnownMatch",
    "MatchRule",
    "MatchWeights",
    "TraceAnalysis",
    "TraceCluster",
    "TraceConfig",
    "TraceResult",
    "analyze_traces",
]
