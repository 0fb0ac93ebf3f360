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

from dataclasses import asdict, dataclass, field, replace

import numpy as np
import torch
from torch import nn

from tools.learned.channels import CHANNELS, FAMILIES, FAMILY_OF
from tools.learned.fusion import FusedTelemetry
from tools.learned.results import FaultTypePrediction, RootCauseRanking
from tools.learned.threads import one_thread

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


class FaultTypeClassifier(nn.Module):
    """Multi-head attention over entities, then one graph convolution, then per-type sigmoids."""

    def __init__(self, config: ClassifierConfig) -> None:
        super().__init__()
        self.config = config
        h = config.hidden
        self.embed = nn.Linear(N_FEATURES, h)
        self.attn = nn.MultiheadAttention(h, config.heads, batch_first=True)
        self.gcn = nn.Linear(h, h)
        self.head = nn.Linear(2 * h, max(1, len(config.labels)))
        self.act = nn.GELU()
        # case level: a standardised, L2-regularised softmax regression on the window's and the
        # top entity's channel peaks; deterministic where the network swings with its seed
        self.case_head = nn.Linear(N_CASE, max(1, len(config.labels)))
        self.register_buffer("case_mean", torch.zeros(N_CASE))
        self.register_buffer("case_std", torch.ones(N_CASE))
        self.register_buffer("train_case", torch.zeros(config.n_train, N_CASE))
        self.register_buffer("novelty_radius", torch.tensor(float("inf")))

    def forward(self, x: torch.Tensor, adj: torch.Tensor) -> torch.Tensor:
        """x [E, F], adj [E, E] -> logits [E, K]."""
        h = self.act(self.embed(x)).unsqueeze(0)
        att, _ = self.attn(h, h, h)
        h = (h + att).squeeze(0)
        g = self.act(self.gcn(adj @ h))
        return self.head(torch.cat([h, g], dim=-1))

    def novelty(self, case: torch.Tensor) -> float:
        """Distance from the case to its nearest training case, over the novelty radius
        (> 1: farther than almost every training case is from its nearest neighbour)."""
        if len(self.train_case) == 0:
            return 0.0
        z = (case - self.case_mean) / self.case_std.clamp_min(NOVELTY_STD_FLOOR)
        d = torch.cdist(z[None, :], self.train_case).min()
        return float(d / self.novelty_radius.clamp_min(1e-6))

    def case_probabilities(self, case: torch.Tensor) -> torch.Tensor:
        """case [N_CASE] or [B, N_CASE] -> softmax over the known types."""
        return torch.softmax(self.case_head((case - self.case_mean) / self.case_std), dim=-1)


def weighted_bce(probs: torch.Tensor, target: torch.Tensor, pos_weight: float) -> torch.Tensor:
    """-1/E sum[lambda_w y log y_hat + (1 - y) log(1 - y_hat)] (averaged over types too)."""
    p = probs.clamp(1e-6, 1 - 1e-6)
    return -(pos_weight * target * torch.log(p) + (1 - target) * torch.log(1 - p)).mean()


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


@one_thread()
def train_classifier(
    examples: list[ClassifierExample],
    config: ClassifierConfig | None = None,
    epochs: int = 40,
    seed: int = 0,
) -> FaultTypeClassifier:
    labels = sorted({ex.label for ex in examples})
    base = config or ClassifierConfig()
    cfg = replace(base, labels=labels, n_train=len(examples))
    torch.manual_seed(seed)
    model = FaultTypeClassifier(cfg)
    if not examples:
        return model.eval()
    opt = torch.optim.Adam(model.parameters(), lr=5e-3, weight_decay=1e-4)
    gen = torch.Generator().manual_seed(seed)
    tensors = []
    for ex in examples:
        y = torch.zeros(len(ex.features), len(labels))
        y[ex.root, labels.index(ex.label)] = 1.0
        tensors.append((torch.from_numpy(ex.features), torch.from_numpy(ex.adjacency), y))
    model.train()
    for _ in range(epochs):
        for i in torch.randperm(len(tensors), generator=gen).tolist():
            x, adj, y = tensors[i]
            loss = weighted_bce(torch.sigmoid(model(x, adj)), y, cfg.pos_weight)
            opt.zero_grad()
            loss.backward()
            opt.step()
    _fit_case_head(model, examples, labels)
    return model.eval()


def _fit_case_head(
    model: FaultTypeClassifier, examples: list[ClassifierExample], labels: list[str]
) -> None:
    """Full-batch L-BFGS on cross-entropy + case_l2/(2n) ||W||^2 (scikit-learn's C = 1/l2)."""
    X = torch.from_numpy(np.stack([ex.case for ex in examples]))
    y = torch.tensor([labels.index(ex.label) for ex in examples])
    model.case_mean.copy_(X.mean(dim=0))
    model.case_std.copy_(X.std(dim=0).nan_to_num(1.0).clamp_min(0.05))
    opt = torch.optim.LBFGS(model.case_head.parameters(), max_iter=200)
    n = len(examples)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        logits = model.case_head((X - model.case_mean) / model.case_std)
        loss = nn.functional.cross_entropy(logits, y, reduction="sum")
        loss = (loss + 0.5 * model.config.case_l2 * model.case_head.weight.pow(2).sum()) / n
        loss.backward()
        return loss

    opt.step(closure)
    z = (X - model.case_mean) / model.case_std.clamp_min(NOVELTY_STD_FLOOR)
    model.train_case.copy_(z)
    if n >= 3:
        d = torch.cdist(z, z) + torch.diag(torch.full((n,), float("inf")))
        q = torch.quantile(d.min(dim=1).values, model.config.novelty_q)
        model.novelty_radius.copy_(q.clamp_min(NOVELTY_MIN_RADIUS))


def type_probabilities(
    fused: FusedTelemetry, ranking: RootCauseRanking, model: FaultTypeClassifier
) -> np.ndarray:
    """[K] per-type sigmoid probabilities, averaged over T2's top entities weighted by their
    score, so one wrong top-1 does not hand the classifier the wrong entity's features."""
    x = torch.from_numpy(entity_features(fused, _rank_vector(fused, ranking)))
    adj = torch.from_numpy(adjacency(fused, ranking))
    with torch.no_grad():
        probs = torch.sigmoid(model(x, adj)).numpy()
        case = model.case_probabilities(torch.from_numpy(case_features(fused, ranking))).numpy()
    idx = [fused.entities.index(r.entity) for r in ranking.ranking[:3]]
    w = np.exp(4.0 * np.array([r.score for r in ranking.ranking[:3]]))
    net = (probs[idx] * (w / w.sum())[:, None]).sum(axis=0)
    share = model.config.case_share
    return (1 - share) * net + share * case


@one_thread()
def classify(
    fused: FusedTelemetry, ranking: RootCauseRanking, model: FaultTypeClassifier | None
) -> FaultTypePrediction:
    """Fault type around T2's top entities; "unknown" when untrained or not confident."""
    if model is None or not model.config.labels or not ranking.ranking:
        return FaultTypePrediction(fault_type=UNKNOWN, probability=0.0, low_confidence=True)
    probs = type_probabilities(fused, ranking, model)
    novel = model.novelty(torch.from_numpy(case_features(fused, ranking))) > 1.0
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
