"""The learned root-cause ranker and its calibrated confidence.

Why a conditional logit on system-agnostic features: the root cause is the one entity of a case
whose evidence explains the rest, so the model scores every entity with ``w . f(entity)`` and takes
a softmax over the case's entities (one "choice" per case), trained across systems and fault
types. The features never name a service, a metric or a fault type: per channel family the
entity's sustained deviation from its own baseline (T1's residual) in absolute and in relative
(share of the case's largest) terms; how much of it its callees do *not* explain, its callers'
anomaly and its place in the call graph (a slow callee makes its callers slow; a network delay is
time on the wire of calls *into* the culprit); a drop of its log lines or calls (a service that
stops writing its usual statements); and T2's causal-walk score and attention in-strength. Which
groups carry the ranking is measured by dropping each one on the leave-one-out protocols
(``FEATURE_GROUPS``; docs/learned.md).

Why Platt on margin features for the confidence: the softmax of a model fitted on ~80 cases is
over-confident on cases it saw. The calibrator is fitted on *out-of-fold* predictions (inner
k-fold over the training cases): the top-1 probability and its margin over the second are mapped
by a logistic regression to P(top-1 is the root cause), which is what the repair gate reads.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np

from tools.learned.channels import CHANNEL_INDEX

if TYPE_CHECKING:
    import networkx as nx

_GROUPS: dict[str, tuple[str, ...]] = {
    "resource": ("metric_cpu", "metric_memory"),
    "metric_latency": ("metric_latency",),
    "metric_errors": ("metric_errors",),
    "volume": ("metric_network", "metric_io", "metric_load"),
    "span_latency": ("trace_p50", "trace_p95", "trace_p99"),
    "self_time": ("trace_self_p95",),
    "span_errors": ("trace_errors",),
    "wire_in": ("trace_edge_latency",),
    "log_failure": ("log_errors", "log_novel"),
    "log_cut": ("log_cut",),
}
OWN = [f"own_{g}" for g in _GROUPS] + [f"rel_{g}" for g in _GROUPS]
SILENCE = ["silence_logs", "silence_calls"]
PROPAGATION = [
    "unexplained_by_callees",
    "callers_anomaly",
    "has_callees",
    "n_callers",
    "n_callees",
    "self_vs_span",
]
CAUSAL = ["walk", "attention_in"]
HAND = ["hand_set", "hand_set_top"]  # the untrained rule's score (share of the top) and is-top
FEATURES: tuple[str, ...] = tuple(HAND + OWN + SILENCE + PROPAGATION + CAUSAL)
FEATURE_GROUPS: dict[str, list[str]] = {
    "own": OWN,
    "silence": SILENCE,
    "propagation": PROPAGATION,
    "causal": CAUSAL,
}
# What ships: on the leave-one-fault-type-out, leave-one-day-out and cross-system folds no set of
# learned features beat the hand-set rule's order (docs/learned.md, "ranker" table), so the
# shipped ranker reads that rule's score only and learns its temperature and the calibrator.
DEFAULT_FEATURES: tuple[str, ...] = tuple(HAND)
CALIBRATION_FOLDS = 5


def entity_features(
    peaks: np.ndarray,
    drops: np.ndarray,
    graph: nx.DiGraph,
    entities: list[str],
    walk: np.ndarray,
    causal: np.ndarray,
    hand: np.ndarray,
) -> np.ndarray:
    """[E, len(FEATURES)] from the [E, m] sustained peaks, the [E, 2] drops (log lines, calls),
    the call graph (caller -> callee), T2's walk [E], causal matrix C[j, i] (j causes i) and the
    hand-set rule's score [E]."""
    E = len(entities)
    own = np.stack(
        [peaks[:, [CHANNEL_INDEX[c] for c in chans]].max(axis=1) for chans in _GROUPS.values()],
        axis=1,
    )
    top = own.max(axis=0, keepdims=True)
    rel = np.divide(own, top, out=np.zeros_like(own), where=top > 0)
    a = np.log1p(own.max(axis=1))
    index = {e: i for i, e in enumerate(entities)}
    prop = np.zeros((E, len(PROPAGATION)))
    for i, e in enumerate(entities):
        callees = [index[b] for b in graph.successors(e) if b in index] if e in graph else []
        callers = [index[b] for b in graph.predecessors(e) if b in index] if e in graph else []
        callee_max = max((a[j] for j in callees), default=0.0)
        caller_max = max((a[j] for j in callers), default=0.0)
        prop[i] = (
            a[i] - callee_max,
            caller_max,
            float(bool(callees)),
            np.log1p(len(callers)),
            np.log1p(len(callees)),
            np.log1p(own[i, 5]) - np.log1p(own[i, 4]),
        )
    w = walk / walk.max() if walk.size and walk.max() > 0 else np.zeros(E)
    att_in = causal.sum(axis=1) - np.diag(causal) if causal.size else np.zeros(E)
    att_in = att_in / att_in.max() if att_in.size and att_in.max() > 0 else np.zeros(E)
    h = hand / hand.max() if hand.size and hand.max() > 0 else np.zeros(E)
    h_top = (h >= h.max()).astype(float) if h.size else h
    return np.concatenate(
        [
            h[:, None],
            h_top[:, None],
            np.log1p(own),
            rel,
            np.log1p(np.maximum(drops, 0.0)),
            prop,
            w[:, None],
            att_in[:, None],
        ],
        axis=1,
    ).astype(np.float64)


@dataclass
class RankerConfig:
    features: list[str] = field(default_factory=lambda: list(DEFAULT_FEATURES))
    l2: float = 10.0  # ridge on the standardised weights

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


class RootCauseRanker:
    """Weights of the conditional logit, the feature standardisation and the Platt calibrator;
    ``state_dict`` names them so the checkpoint machinery stores and verifies them like every
    other model."""

    def __init__(
        self, config: RankerConfig | None = None, weights: dict[str, np.ndarray] | None = None
    ) -> None:
        self.config = config or RankerConfig()
        n = len(self.config.features)
        self.weight = np.zeros(n)
        self.mean = np.zeros(n)
        self.std = np.ones(n)
        # P(top-1 right) = sigmoid(platt[0] + platt[1] * logit(p1) + platt[2] * margin)
        self.platt = np.array([0.0, 1.0, 0.0])
        for name, value in (weights or {}).items():
            setattr(self, name, np.asarray(value, dtype=np.float64))

    def state_dict(self) -> dict[str, np.ndarray]:
        return {"weight": self.weight, "mean": self.mean, "std": self.std, "platt": self.platt}

    @property
    def columns(self) -> list[int]:
        return [FEATURES.index(f) for f in self.config.features]

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        """[E] softmax over a case's entities of the linear score."""
        x = (features[:, self.columns] - self.mean) / self.std
        return _softmax(x @ self.weight)

    def confidence(self, probs: np.ndarray) -> float:
        """Calibrated probability that the top-ranked entity is the root cause."""
        b, a1, a2 = self.platt
        f = margin_features(probs)
        return float(1.0 / (1.0 + np.exp(-(b + a1 * f[0] + a2 * f[1]))))


def _softmax(s: np.ndarray) -> np.ndarray:
    e = np.exp(s - s.max()) if s.size else s
    return e / e.sum() if s.size else e


def margin_features(probs: np.ndarray) -> np.ndarray:
    """[logit of the top-1 probability, log(p1 / p2)]: how sure and how far ahead."""
    p = np.sort(np.clip(probs, 1e-6, 1 - 1e-6))[::-1]
    p1 = p[0] if len(p) else 1e-6
    p2 = p[1] if len(p) > 1 else 1e-6
    return np.array([np.log(p1 / (1 - p1)), np.log(p1 / p2)])


@dataclass
class RankerCase:
    features: np.ndarray  # [E, len(FEATURES)]
    root: int  # index of the true root cause among the case's entities


def _fit_weights(
    cases: list[RankerCase], cols: list[int], l2: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rows = np.concatenate([c.features[:, cols] for c in cases])
    mean = rows.mean(axis=0)
    std = rows.std(axis=0)
    std = np.where(std > 1e-9, std, 1.0)
    x = (rows - mean) / std
    sizes = np.array([len(c.features) for c in cases])
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    case_of = np.repeat(np.arange(len(cases)), sizes)
    roots = starts + np.array([c.root for c in cases])

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        s = x @ w
        top = np.maximum.reduceat(s, starts)
        e = np.exp(s - top[case_of])
        z = np.add.reduceat(e, starts)
        p = e / z[case_of]
        nll = float((top + np.log(z)).sum() - s[roots].sum())
        grad = x.T @ p - x[roots].sum(axis=0)
        return nll + 0.5 * l2 * float(w @ w), grad + l2 * w

    from scipy.optimize import minimize  # training only: scipy stays out of inference

    res = minimize(loss, np.zeros(len(cols)), jac=True, method="L-BFGS-B")
    return res.x, mean, std


def fit_ranker(
    cases: list[RankerCase], config: RankerConfig | None = None, seed: int = 0
) -> RootCauseRanker:
    """Conditional logit on ``cases``, then Platt on inner out-of-fold top-1 correctness."""
    cfg = replace(config) if config is not None else RankerConfig()
    model = RootCauseRanker(cfg)
    cases = [c for c in cases if len(c.features) > 0]
    if not cases:
        return model
    cols = model.columns
    model.weight, model.mean, model.std = _fit_weights(cases, cols, cfg.l2)
    feats, right = [], []
    order = np.random.default_rng(seed).permutation(len(cases))
    k = min(CALIBRATION_FOLDS, len(cases))
    for fold in range(k) if k >= 2 else []:
        held = set(order[fold::k].tolist())
        train = [c for i, c in enumerate(cases) if i not in held]
        fw, fm, fs = _fit_weights(train, cols, cfg.l2)
        for i in held:
            c = cases[i]
            p = _softmax(((c.features[:, cols] - fm) / fs) @ fw)
            feats.append(margin_features(p))
            right.append(int(np.argmax(p) == c.root))
    model.platt = _platt(np.array(feats), np.array(right))
    return model


def _platt(feats: np.ndarray, right: np.ndarray) -> np.ndarray:
    """[b, a1, a2]; a constant (the hit rate) when the folds were all right or all wrong."""
    if len(right) == 0:
        return np.array([0.0, 0.0, 0.0])
    if right.min() == right.max():
        rate = np.clip((right.sum() + 0.5) / (len(right) + 1.0), 1e-3, 1 - 1e-3)
        return np.array([float(np.log(rate / (1 - rate))), 0.0, 0.0])
    from sklearn.linear_model import LogisticRegression  # training only

    lr = LogisticRegression(C=1.0).fit(feats, right)
    return np.array([lr.intercept_[0], lr.coef_[0][0], lr.coef_[0][1]])
