"""T2: frequency-domain self-attention across entities -> causal graph -> root-cause ranking.

Why this shape, and why no labels: each entity's fused anomaly series is turned into its spectrum
(FFT magnitudes per channel); self-attention ``softmax(Q_F K_F^T / sqrt(d)) V_F`` over entities
says whose spectrum explains whose. The attention is trained self-supervised (predict a masked
entity's spectrum from the others), never on root-cause labels, so it carries no per-system or
per-fault-type prior. The causal graph is attention (entity j explains i => edge j -> i) blended
with the call topology (a callee's fault propagates to its callers). The ranking is a random walk
with restart that starts from anomalous entities and walks from effects to their causes,
weighting each step by how anomalous the cause is: the entity whose anomaly explains the others'
collects the most mass.

Which score orders the ranking: with a trained :class:`~tools.learned.ranker.RootCauseRanker`
(labels of other cases, system-agnostic features, see that module) its softmax over entities,
and the ranking carries its calibrated ``confidence``. Without one, the untrained fallback is the
hand-set rule ``0.7 * own + 0.3 * walk`` with fixed channel weights (``CHANNEL_WEIGHTS``) and no
confidence; docs/learned.md compares the two on the leave-one-out protocols.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np

from tools.learned.channels import CHANNEL_INDEX, CHANNELS
from tools.learned.fusion import FusedTelemetry
from tools.learned.layers import linear, softmax
from tools.learned.ranker import RootCauseRanker, entity_features
from tools.learned.results import CausalEdge, ChannelEvidence, RankedEntity, RootCauseRanking
from tools.learned.torch_rng import TorchGenerator

if TYPE_CHECKING:
    import networkx as nx

FREQ_LEN = 16
FREQ_BINS = FREQ_LEN // 2 + 1

# How much a channel's deviation says "the fault is here" (fixed, documented semantics, not fitted
# to any label): a new error message or an error count is direct failure evidence; CPU, memory
# and a span's own (self) time are where resource faults show; end-to-end latency travels up the
# call chain to every caller; traffic volume (calls, bytes, syscalls, log lines) moves with the
# workload mix as much as with faults.
EVIDENCE_WEIGHT = 1.0
FAILURE = {"log_novel": 1.5, "log_cut": 1.5, "log_errors": 1.2, "trace_errors": 1.2}
FAILURE["metric_errors"] = 1.2
PROPAGATING = {"metric_latency", "trace_p50", "trace_p95", "trace_p99", "trace_edge_latency"}
VOLUME = {"metric_network", "metric_io", "metric_load", "log_lines", "trace_calls"}
PROPAGATING_WEIGHT, VOLUME_WEIGHT = 0.6, 0.3


def _weight(channel: str) -> float:
    if channel in FAILURE:
        return FAILURE[channel]
    if channel in PROPAGATING:
        return PROPAGATING_WEIGHT
    if channel in VOLUME:
        return VOLUME_WEIGHT
    return EVIDENCE_WEIGHT


CHANNEL_WEIGHTS = np.array([_weight(c) for c in CHANNELS])


@dataclass(frozen=True)
class LocalizerConfig:
    d_model: int = 16
    attention_mix: float = 0.5  # share of attention vs call topology in the causal graph
    restart: float = 0.3  # random-walk restart probability
    walk_weight: float = 0.3  # share of the walk score vs the entity's own anomaly
    use_attention: bool = True

    def to_dict(self) -> dict[str, float | int | bool]:
        return asdict(self)


def spectra(anomaly: np.ndarray) -> np.ndarray:
    """[E, m * FREQ_BINS] log-magnitude spectra of each entity's channels (resampled to 16)."""
    E, m, length = anomaly.shape
    src = np.linspace(0.0, 1.0, max(length, 2))
    dst = np.linspace(0.0, 1.0, FREQ_LEN)
    series = anomaly if length > 1 else np.repeat(anomaly, 2, axis=2)
    flat = series.reshape(E * m, -1)
    res = np.stack([np.interp(dst, src, row) for row in flat]) if len(flat) else flat
    mag = np.abs(np.fft.rfft(res, axis=1))
    return np.log1p(mag).reshape(E, m * FREQ_BINS).astype(np.float32)


class FrequencyAttention:
    """Self-attention over entities on their spectra; the weights are the causal evidence.

    Inference in numpy on the trained projections (named as the torch module's ``state_dict``,
    :mod:`tools.learned.localize_train`); only the query and key projections are read here."""

    def __init__(self, config: LocalizerConfig, weights: dict[str, np.ndarray]) -> None:
        self.config = config
        self.weights = weights

    def state_dict(self) -> dict[str, np.ndarray]:
        return self.weights

    def attention(self, f: np.ndarray) -> np.ndarray:
        """[E, E] softmax(Q_F K_F^T / sqrt(d)), an entity never attends to itself."""
        w = self.weights
        q = linear(f, w["q.weight"], w["q.bias"])
        k = linear(f, w["k.weight"], w["k.bias"])
        logits = q @ k.T / np.float32(np.sqrt(self.config.d_model))
        if len(f) > 1:
            np.fill_diagonal(logits, -np.inf)
        return softmax(logits, axis=-1)

    @classmethod
    def untrained(cls, config: LocalizerConfig) -> FrequencyAttention:
        """Randomly initialised projections from a fixed seed: without training the attention is
        a deterministic random-feature similarity of spectra, the same on every call — torch's
        ``nn.Linear`` initialisation after ``torch.manual_seed(0)``, drawn without torch."""
        gen = TorchGenerator(0)
        d_in, d = len(CHANNELS) * FREQ_BINS, config.d_model
        weights: dict[str, np.ndarray] = {}
        layers = (("q", d_in, d), ("k", d_in, d), ("v", d_in, d), ("o", d, d_in))
        gain = math.sqrt(2.0 / (1 + math.sqrt(5) ** 2))  # kaiming_uniform_(a=sqrt(5))
        for name, fan_in, fan_out in layers:
            bound = math.sqrt(3.0) * (gain / math.sqrt(fan_in))
            weights[f"{name}.weight"] = gen.uniform((fan_out, fan_in), -bound, bound)
            bias = 1 / math.sqrt(fan_in)
            weights[f"{name}.bias"] = gen.uniform((fan_out,), -bias, bias)
        return cls(config, weights)


def entity_scores(fused: FusedTelemetry) -> tuple[np.ndarray, np.ndarray]:
    """[E] own anomaly (max weighted channel peak) and the [E, m] weighted peaks behind it."""
    peaks = fused.channel_peaks() * CHANNEL_WEIGHTS[None, :]
    return peaks.max(axis=1), peaks


def causal_matrix(
    fused: FusedTelemetry, model: FrequencyAttention | None, config: LocalizerConfig
) -> tuple[np.ndarray, np.ndarray | None]:
    """[E, E] C[j, i] = strength of "j causes i", and the raw attention (None without it)."""
    ents = fused.entities
    E = len(ents)
    topo = np.zeros((E, E))
    index = {e: i for i, e in enumerate(ents)}
    for a, b in fused.aligned.call_graph.edges:
        if a in index and b in index:
            topo[index[b], index[a]] = 1.0  # callee b's fault reaches caller a
    att = None
    if config.use_attention and E > 1:
        attn_model = model or FrequencyAttention.untrained(config)
        att = attn_model.attention(spectra(fused.anomaly))
    if att is None:
        return topo, None
    causal = att.T  # att[i, j]: i draws on j  =>  j explains i  =>  C[j, i]
    if topo.any():
        return config.attention_mix * causal + (1 - config.attention_mix) * topo, att
    return causal, att


def _walk(causal: np.ndarray, own: np.ndarray, restart: float) -> np.ndarray:
    """Random walk with restart from anomalous entities towards their most anomalous causes."""
    E = len(own)
    pref = own / own.sum() if own.sum() > 0 else np.full(E, 1.0 / E)
    trans = causal * own[:, None]  # from effect i to cause j ~ C[j, i] * own[j]
    trans = trans.T + 1e-12
    trans = trans / trans.sum(axis=1, keepdims=True)
    p = pref.copy()
    for _ in range(100):
        nxt = restart * pref + (1 - restart) * p @ trans
        if np.abs(nxt - p).sum() < 1e-9:
            return nxt
        p = nxt
    return p


def drops(fused: FusedTelemetry) -> np.ndarray:
    """[E, 2] sustained *drop* of log lines and of calls after the onset (mean of the lowest
    third of the signed residual, negated): a service that stops writing its usual statements."""
    idx = [CHANNEL_INDEX["log_lines"], CHANNEL_INDEX["trace_calls"]]
    a = fused.anomaly[:, idx, fused.aligned.onset_bin :]
    if a.shape[2] == 0:
        return np.zeros((a.shape[0], 2))
    low = np.sort(a, axis=2)[:, :, : max(1, a.shape[2] // 3)]
    return -low.mean(axis=2) * fused.aligned.present[:, idx]


def ranker_features(
    fused: FusedTelemetry, model: FrequencyAttention | None, config: LocalizerConfig | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(ranker features [E, F], hand-set score [E], weighted peaks [E, m], causal matrix)."""
    cfg = config or (model.config if model is not None else LocalizerConfig())
    own, peaks = entity_scores(fused)
    causal, _ = causal_matrix(fused, model, cfg)
    walk = _walk(causal, own, cfg.restart) if own.sum() > 0 else np.zeros_like(own)
    own_n = own / own.max() if own.max() > 0 else own
    walk_n = walk / walk.max() if walk.max() > 0 else walk
    hand = (1 - cfg.walk_weight) * own_n + cfg.walk_weight * walk_n
    feats = entity_features(
        fused.channel_peaks(),
        drops(fused),
        fused.aligned.call_graph,
        fused.entities,
        walk,
        causal,
        hand,
    )
    return feats, hand, peaks, causal


def localize(
    fused: FusedTelemetry,
    model: FrequencyAttention | None = None,
    config: LocalizerConfig | None = None,
    top_k: int = 5,
    ranker: RootCauseRanker | None = None,
) -> RootCauseRanking:
    cfg = config or (model.config if model is not None else LocalizerConfig())
    feats, hand, peaks, causal = ranker_features(fused, model, cfg)
    confidence = None
    if ranker is not None:
        score = ranker.probabilities(feats)
        confidence = round(ranker.confidence(score), 4)
    else:
        score = hand
    change = fused.aligned.change_point
    no_change = change is not None and not change.found
    order = np.argsort(-score, kind="stable")
    ents = fused.entities
    top = 1.0
    if ranker is None and len(order) and score[order[0]] > 0:
        top = float(score[order[0]])
    ranking = []
    for e in order[:top_k]:
        chans = np.argsort(-peaks[e])[:3]
        ranking.append(
            RankedEntity(
                entity=ents[e],
                score=round(float(score[e]) / top, 4),
                evidence=[
                    ChannelEvidence(
                        channel=CHANNELS[c],
                        score=round(float(peaks[e, c]), 3),
                        detail=_detail(fused, e, c),
                    )
                    for c in chans
                    if peaks[e, c] > 0
                ],
            )
        )
    edges = []
    for j, i in zip(*np.nonzero(causal > 0), strict=True):
        if j != i and causal[j, i] >= 0.2:
            edges.append(
                CausalEdge(cause=ents[j], effect=ents[i], weight=round(float(causal[j, i]), 3))
            )
    edges.sort(key=lambda e: -e.weight)
    keep = {r.entity for r in ranking}
    edges = [e for e in edges if e.cause in keep or e.effect in keep][:10]
    method = "tamo" if cfg.use_attention else "tamo (call topology, no attention)"
    if ranker is None:
        method += ", hand-set untrained score"
    return RootCauseRanking(
        ranking=[] if no_change else ranking,
        candidates=ranking if no_change else [],
        causal_edges=edges,
        modalities=fused.aligned.modalities,
        method=method,
        confidence=0.0 if no_change and confidence is not None else confidence,
        onset_detected=fused.aligned.onset_detected,
        onset_s=round(fused.aligned.onset_bin * fused.aligned.step_s, 1),
        note="no change point in the window: no root cause named" if no_change else "",
    )


def _detail(fused: FusedTelemetry, e: int, c: int) -> str:
    z = fused.aligned.X[e, c]
    t = int(np.argmax(np.abs(z)))
    return f"z={z[t]:+.1f} at +{t * fused.aligned.step_s:.0f}s"


def causal_graph(fused: FusedTelemetry, ranking: RootCauseRanking) -> nx.DiGraph:
    """The causal edges of a ranking as a graph (for T3 and for reports)."""
    import networkx as nx

    g = nx.DiGraph()
    g.add_nodes_from(fused.entities)
    for edge in ranking.causal_edges:
        g.add_edge(edge.cause, edge.effect, weight=edge.weight)
    return g


__all__ = ["CHANNEL_INDEX", "FrequencyAttention", "LocalizerConfig", "localize"]
