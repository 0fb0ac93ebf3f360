"""T3: fault-type classification over the causal graph and the call topology.

Why per-family features: an entity is described only by *which family of channels* deviates and
how (peak, sign, how early: cpu, memory, network, io, latency, load, errors, logs), never by
service names or raw metric names, so a classifier trained on one system reads another. Multi-head
attention lets every entity look at the others (a root cause's callers slow down too), then a graph
convolution over causal + call edges mixes neighbours. Each entity gets one sigmoid per known fault
type, trained with the weighted binary cross-entropy
``L = -1/E sum[lambda_w y log y_hat + (1 - y) log(1 - y_hat)]`` (lambda_w up-weights the rare
positive: one root cause among E entities). The prediction is read around T2's top entities and
mixed with a case-level softmax regression (standardised, L2) on the channel peaks of the whole
window and of the top entity: with 20-odd labelled cases the network alone swings with its
initialisation, and the window-wide view still holds when T2's top entity is wrong. Below a
confidence floor the answer is "unknown", because production meets fault types no label covers.

Why a nearest-neighbour novelty test for "unknown": a softmax over the known types always picks
one of them, however foreign the case. The classifier keeps its training cases' standardised
case-level features and the distance from each to its nearest *other* training case; a case
farther from every training case than the ``novelty_q`` quantile of those distances is a fault
type it was not trained on, and T3 answers "unknown" (measured on leave-one-fault-type-out:
docs/learned.md gives the share of held-out-type cases answered unknown, and the share of
known-type cases wrongly answered unknown).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from tools.learned.channels import CHANNELS, FAMILIES, FAMILY_OF
from tools.learned.fusion import FusedTelemetry
from tools.learned.layers import gelu, linear, self_attention, sigmoid, softmax
from tools.learned.results import FaultTypePrediction, RootCauseRanking

FAMILY_IDX = {f: [i for i, c in enumerate(CHANNELS) if FAMILY_OF[c] == f] for f in FAMILIES}
N_FEATURES = 3 * len(FAMILIES) + 2 * len(CHANNELS) + 2
N_CASE = 2 * len(CHANNELS)
UNKNOWN = "unknown"
MIN_SIGMOID = 0.05
# novelty space: a feature's spread counts as at least 1 z (a difference under one robust z
# is not a different fault), and the radius is at least NOVELTY_MIN_RADIUS such units
NOVELTY_STD_FLOOR = 1.0
NOVELTY_MIN_RADIUS = 1.0


@dataclass
class ClassifierConfig:
    labels: list[str] = field(default_factory=list)
    hidden: int = 32
    heads: int = 2
    pos_weight: float = 4.0  # lambda_w
    case_l2: float = 1.0  # L2 weight of the case-level linear head (logistic regression, C = 1)
    case_share: float = 0.5  # its share in the final probabilities
    min_confidence: float = 0.0  # least share of the best type among all types
    n_train: int = 0  # training cases kept for the novelty test
    novelty_q: float = 0.9  # quantile of the training cases' nearest-neighbour distances

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def entity_features(fused: FusedTelemetry, rank_score: np.ndarray) -> np.ndarray:
    """[E, N_FEATURES]: per family peak |anomaly|, signed peak, onset; per channel sustained
    peak of the entity and of the whole window (max over entities); own rank score; is-top."""
    a = fused.anomaly * fused.aligned.present[:, :, None]
    E, _, length = a.shape
    feats = np.zeros((E, N_FEATURES), dtype=np.float32)
    for k, fam in enumerate(FAMILIES):
        sub = a[:, FAMILY_IDX[fam], :]
        absmax = np.abs(sub).max(axis=(1, 2)) if sub.size else np.zeros(E)
        flat = sub.reshape(E, -1)
        signed = flat[np.arange(E), np.abs(flat).argmax(axis=1)] if flat.shape[1] else np.zeros(E)
        hot = (np.abs(sub) > 1.5).any(axis=1)
        onset = np.where(hot.any(axis=1), hot.argmax(axis=1) / max(1, length), 1.0)
        feats[:, 3 * k] = absmax
        feats[:, 3 * k + 1] = signed
        feats[:, 3 * k + 2] = onset
    peaks = fused.channel_peaks()
    m = len(CHANNELS)
    base = 3 * len(FAMILIES)
    feats[:, base : base + m] = peaks
    feats[:, base + m : base + 2 * m] = peaks.max(axis=0, initial=0.0)[None, :]
    top = rank_score.max() if rank_score.size and rank_score.max() > 0 else 1.0
    feats[:, -2] = rank_score / top
    feats[:, -1] = (rank_score == rank_score.max()).astype(np.float32) if rank_score.size else 0
    return feats


def adjacency(fused: FusedTelemetry, ranking: RootCauseRanking) -> np.ndarray:
    """Symmetric-normalised adjacency of causal edges + call topology + self loops."""
    ents = fused.entities
    index = {e: i for i, e in enumerate(ents)}
    A = np.eye(len(ents), dtype=np.float32)
    for a, b in fused.aligned.call_graph.edges:
        if a in index and b in index:
            A[index[a], index[b]] = A[index[b], index[a]] = 1.0
    for edge in ranking.causal_edges:
        if edge.cause in index and edge.effect in index:
            i, j = index[edge.cause], index[edge.effect]
            A[i, j] = A[j, i] = max(A[i, j], edge.weight)
    d = 1.0 / np.sqrt(A.sum(axis=1))
    return (A * d[:, None] * d[None, :]).astype(np.float32)


class FaultTypeClassifier:
    """Multi-head attention over entities, then one graph convolution, then per-type sigmoids;
    and the case-level softmax regression with its novelty test.

    Inference in numpy on the trained weights (named as the torch module's ``state_dict``,
    :mod:`tools.learned.classifier_train`), so classifying never imports torch."""

    def __init__(self, config: ClassifierConfig, weights: dict[str, np.ndarray]) -> None:
        self.config = config
        self.weights = weights

    def state_dict(self) -> dict[str, np.ndarray]:
        return self.weights

    def logits(self, x: np.ndarray, adj: np.ndarray) -> np.ndarray:
        """x [E, F], adj [E, E] -> logits [E, K]."""
        w = self.weights
        h = gelu(linear(x, w["embed.weight"], w["embed.bias"]))
        att = self_attention(
            h,
            w["attn.in_proj_weight"],
            w["attn.in_proj_bias"],
            w["attn.out_proj.weight"],
            w["attn.out_proj.bias"],
            self.config.heads,
        )
        h = h + att
        g = gelu(linear(adj @ h, w["gcn.weight"], w["gcn.bias"]))
        return linear(np.concatenate([h, g], axis=-1), w["head.weight"], w["head.bias"])

    def novelty(self, case: np.ndarray) -> float:
        """Distance from the case to its nearest training case, over the novelty radius
        (> 1: farther than almost every training case is from its nearest neighbour)."""
        w = self.weights
        train = w["train_case"]
        if len(train) == 0:
            return 0.0
        z = (case - w["case_mean"]) / np.maximum(w["case_std"], np.float32(NOVELTY_STD_FLOOR))
        d = np.sqrt(((train - z[None, :]) ** 2).sum(axis=1)).min()
        return float(d / max(float(w["novelty_radius"]), 1e-6))

    def case_probabilities(self, case: np.ndarray) -> np.ndarray:
        """case [N_CASE] or [B, N_CASE] -> softmax over the known types."""
        w = self.weights
        z = (case - w["case_mean"]) / w["case_std"]
        return softmax(linear(z, w["case_head.weight"], w["case_head.bias"]), axis=-1)


@dataclass
class ClassifierExample:
    features: np.ndarray
    adjacency: np.ndarray
    root: int  # index of the root-cause entity
    label: str
    case: np.ndarray  # [N_CASE] case-level features (see case_features)


def example(
    fused: FusedTelemetry, ranking: RootCauseRanking, root: str, label: str
) -> ClassifierExample | None:
    """A training example; ``None`` when the root-cause service is absent from the telemetry."""
    if root not in fused.entities:
        return None
    score = _rank_vector(fused, ranking)
    return ClassifierExample(
        entity_features(fused, score),
        adjacency(fused, ranking),
        fused.entities.index(root),
        label,
        case_features(fused, ranking),
    )


def case_features(fused: FusedTelemetry, ranking: RootCauseRanking) -> np.ndarray:
    """[N_CASE]: per channel sustained peak over the whole window and at T2's top entity."""
    peaks = fused.channel_peaks()
    top = (
        peaks[fused.entities.index(ranking.ranking[0].entity)]
        if ranking.ranking
        else np.zeros(len(CHANNELS))
    )
    return np.concatenate([peaks.max(axis=0, initial=0.0), top]).astype(np.float32)


def _rank_vector(fused: FusedTelemetry, ranking: RootCauseRanking) -> np.ndarray:
    pos = {r.entity: r.score for r in ranking.ranking}
    return np.array([pos.get(e, 0.0) for e in fused.entities], dtype=np.float32)


def type_probabilities(
    fused: FusedTelemetry, ranking: RootCauseRanking, model: FaultTypeClassifier
) -> np.ndarray:
    """[K] per-type sigmoid probabilities, averaged over T2's top entities weighted by their
    score, so one wrong top-1 does not hand the classifier the wrong entity's features."""
    x = entity_features(fused, _rank_vector(fused, ranking))
    probs = sigmoid(model.logits(x, adjacency(fused, ranking)))
    case = model.case_probabilities(case_features(fused, ranking))
    idx = [fused.entities.index(r.entity) for r in ranking.ranking[:3]]
    w = np.exp(4.0 * np.array([r.score for r in ranking.ranking[:3]]))
    net = (probs[idx] * (w / w.sum())[:, None]).sum(axis=0)
    share = model.config.case_share
    return (1 - share) * net + share * case


def classify(
    fused: FusedTelemetry, ranking: RootCauseRanking, model: FaultTypeClassifier | None
) -> FaultTypePrediction:
    """Fault type around T2's top entities; "unknown" when untrained or not confident."""
    if model is None or not model.config.labels or not ranking.ranking:
        return FaultTypePrediction(fault_type=UNKNOWN, probability=0.0, low_confidence=True)
    probs = type_probabilities(fused, ranking, model)
    novel = model.novelty(case_features(fused, ranking)) > 1.0
    share = probs / probs.sum() if probs.sum() > 0 else probs
    labels = model.config.labels
    best = int(np.argmax(probs))
    alternatives = {labels[k]: round(float(share[k]), 4) for k in np.argsort(-share)[:3]}
    # unknown when no type fits (every sigmoid low) or when the best barely beats the rest
    confident = (
        float(probs[best]) >= MIN_SIGMOID
        and float(share[best]) >= model.config.min_confidence
        and not novel
    )
    return FaultTypePrediction(
        fault_type=labels[best] if confident else UNKNOWN,
        probability=round(float(share[best]), 4),
        alternatives=alternatives,
        low_confidence=not confident,
        note="unlike every fault type it was trained on" if novel else "",
    )
