"""Normal behaviour learned once, then applied batch by batch: the anomaly detector.

Why two kinds of evidence: explicit signals (a hung span, an error in a module that normally
succeeds, a missing expected child, siblings repeated beyond normal, extra roots) are precise and
explainable; the autoencoder's reconstruction error catches the rest. The trace score is the
larger of the two, mapped to [0, 1] with 0.5 at the decision threshold, so one number ranks
every trace. Traces with explicit evidence are excluded from the autoencoder's training set,
which keeps it clean even when normal behaviour is learned from the input itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tools.traces.autoencoder import (
    Standardiser,
    TraceAutoencoder,
    reconstruction_error,
    train_autoencoder,
)
from tools.traces.baseline import ModuleBaseline
from tools.traces.config import TraceConfig
from tools.traces.reconstruct import TraceForest
from tools.traces.vectors import SpanSignals, span_signals, trace_embedding


@dataclass
class ScoredBatch:
    forest: TraceForest
    base: ModuleBaseline  # normal behaviour the batch was judged against
    signals: SpanSignals
    features: np.ndarray
    wl: np.ndarray
    wl_labels: list[np.ndarray]
    ae_error: np.ndarray
    rule_score: np.ndarray
    score: np.ndarray  # [0, 1], 0.5 = threshold
    anomalous: np.ndarray  # bool


def rule_evidence(forest: TraceForest, s: SpanSignals, base: ModuleBaseline) -> np.ndarray:
    """Per-trace strength in [0, 1] of the explicit anomaly signals."""
    known = s.gmod >= 0
    base_err = np.where(known, base.error_rate[np.where(known, s.gmod, 0)] if base.n else 0.0, 0.0)
    span_ev = np.maximum.reduce(
        [
            s.hung.astype(float),
            np.where(s.error & ~s.recovered, 1.0 - base_err, 0.0),
            s.fork_at.astype(float),
            s.slow.astype(float),
            (s.missing > 0).astype(float),
            (s.repeat_excess > 0).astype(float),
        ]
    )
    out = np.zeros(forest.n_traces)
    if forest.n_spans:
        out = np.maximum.reduceat(span_ev, forest.offsets[:-1])
    roots = (forest.parent < 0) & ~forest.orphan
    n_roots = np.bincount(forest.trace_of[roots], minlength=forest.n_traces)
    return np.where(n_roots > 1, 1.0, out)


@dataclass
class NormalModel:
    base: ModuleBaseline
    scaler: Standardiser
    ae: TraceAutoencoder
    threshold: float
    config: TraceConfig
    wl_mean: np.ndarray  # normal WL histogram, for deviation vectors in fingerprints
    wl_weight: np.ndarray  # 1 / (std + 0.5): buckets that vary in normal traffic count less

    @classmethod
    def fit(cls, forest: TraceForest, config: TraceConfig) -> NormalModel:
        base = ModuleBaseline.fit(forest, config)
        s = span_signals(forest, base, config)
        feats, wl, _ = trace_embedding(forest, base, s, config)
        clean = rule_evidence(forest, s, base) < 0.5
        wl_clean = wl[clean] if clean.any() else wl
        train = feats[clean] if clean.any() else feats
        scaler = Standardiser(train)
        ae = train_autoencoder(scaler(train), config)
        err = reconstruction_error(ae, scaler(train))
        # heavy-tailed errors (rare but normal shapes): a high quantile, not median + k*MAD
        q = float(np.quantile(err, config.ae_threshold_quantile)) if len(err) else 1.0
        threshold = max(config.ae_threshold_factor * q, 1e-6)
        return cls(
            base=base,
            scaler=scaler,
            ae=ae,
            threshold=threshold,
            config=config,
            wl_mean=wl_clean.mean(axis=0) if len(wl_clean) else np.zeros(config.wl_dims),
            wl_weight=1.0 / (wl_clean.std(axis=0) + 0.5)
            if len(wl_clean)
            else np.ones(config.wl_dims),
        )

    def wl_deviation(self, wl: np.ndarray) -> np.ndarray:
        return (wl - self.wl_mean) * self.wl_weight

    def score(self, forest: TraceForest) -> ScoredBatch:
        s = span_signals(forest, self.base, self.config)
        feats, wl, labels = trace_embedding(forest, self.base, s, self.config)
        err = reconstruction_error(self.ae, self.scaler(feats))
        ratio = err / self.threshold
        ae_score = ratio / (1.0 + ratio)
        rules = rule_evidence(forest, s, self.base)
        rule_score = np.where(rules >= 0.5, 0.5 + 0.5 * rules, 0.5 * rules)
        score = np.maximum(ae_score, rule_score)
        return ScoredBatch(
            forest=forest,
            base=self.base,
            signals=s,
            features=feats,
            wl=wl,
            wl_labels=labels,
            ae_error=err,
            rule_score=rule_score,
            score=score,
            anomalous=score >= 0.5,
        )
