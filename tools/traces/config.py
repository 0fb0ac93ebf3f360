"""Tunable knobs of call-chain analytics, validated once (pydantic).

Why one object: the seed's matching rule (structure similarity threshold, >= 2 metric hits,
>= 2 log hits, a known root node, score > 0.85) and the detectors' thresholds are operational
policy, not code; an SRE changes them in ``tamo.toml`` / code without touching the algorithms.
Defaults were tuned on synthetic seeds 0-4 only (see ``evals/traces_eval.py``).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field, model_validator


class MatchWeights(BaseModel):
    """Weights of the fingerprint match score; they must sum to 1 so the score lies in [0, 1]."""

    structure: float = 0.4
    metrics: float = 0.2
    logs: float = 0.2
    root: float = 0.2

    @model_validator(mode="after")
    def _sum_to_one(self) -> MatchWeights:
        total = self.structure + self.metrics + self.logs + self.root
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"match weights must sum to 1, got {total:.3f}")
        return self


class MatchRule(BaseModel):
    """The seed's fingerprint matching rule (chapter 3)."""

    structure_threshold: float = Field(0.8, ge=0.0, le=1.0)
    min_metric_hits: int = Field(2, ge=0)
    min_log_hits: int = Field(2, ge=0)
    require_known_root: bool = True
    min_score: float = Field(0.85, ge=0.0, le=1.0)
    weights: MatchWeights = Field(default_factory=MatchWeights)


class TraceConfig(BaseModel):
    """Everything ``analyze_traces`` can be told; every default works offline."""

    # reconstruction / bad input
    max_attribute_bytes: int = Field(16_384, gt=0)  # larger attribute JSON is dropped and counted
    skew_tolerance_ms: float = Field(1.0, ge=0.0)  # child starting this much before parent = skew
    # batching: memory is bounded by one window / batch, not the file
    window_s: float = Field(300.0, gt=0)
    max_spans_per_batch: int = Field(250_000, gt=0)
    max_fit_traces: int = Field(10_000, gt=0)  # traces used to learn normal behaviour
    # span-level detectors (robust z-scores against each module's normal behaviour)
    hang_z: float = Field(8.0, gt=0)  # self-time z-score that marks a hung span
    hang_min_ratio: float = Field(3.0, gt=1)  # ... and at least this x the module's p99
    # slow span: self-time z beyond factor x the module's own tail (~99.9%), the factor
    # stretched for long traces so that a trace of normal spans is called slow with
    # probability at most slow_trace_alpha (a 25-span agent trace has 2.5x the chances of a
    # 10-span one), and >= slow_min_z
    slow_quantile_factor: float = Field(1.2, gt=1)
    slow_trace_alpha: float = Field(0.001, gt=0, lt=0.5)
    slow_min_z: float = Field(4.0, gt=0)
    expected_child_share: float = Field(0.97, gt=0, le=1)  # child present this often = expected
    normal_concurrency_share: float = Field(0.05, gt=0, le=1)  # siblings overlap this often = ok
    repeat_quantile: float = Field(0.99, gt=0, le=1)  # sibling repeats beyond this are retries
    retry_min_failures: int = Field(2, ge=1)  # ... when this many attempts failed in a row
    # trace embedding
    wl_iterations: int = Field(2, ge=1, le=4)
    wl_dims: int = Field(128, ge=16)
    module_dims: int = Field(32, ge=8)
    # autoencoder
    ae_hidden: int = Field(32, ge=4)
    ae_code: int = Field(8, ge=2)
    ae_epochs: int = Field(40, ge=1)
    ae_max_steps: int = Field(400, ge=1)  # optimiser steps in all: training cost is bounded
    ae_batch: int = Field(256, ge=8)
    ae_lr: float = Field(3e-3, gt=0)
    # decision threshold: factor x the quantile of the normal traces' reconstruction errors
    ae_threshold_quantile: float = Field(0.999, gt=0.5, lt=1.0)
    ae_threshold_factor: float = Field(2.0, gt=0)
    seed: int = 0
    # clustering
    dbscan_eps: float = Field(0.5, gt=0)
    dbscan_min_samples: int = Field(2, ge=1)
    kmeans_max_k: int = Field(8, ge=2)
    # fingerprints / knowledge base
    match: MatchRule = Field(default_factory=MatchRule)
    latency_spike_ratio: float = Field(1.5, gt=1)
    error_spike_delta: float = Field(0.05, gt=0)
    top_log_keywords: int = Field(6, ge=1)
    template_state: Path | None = None  # Drain state file shared across runs (None: in memory)
    # stricter than Drain's usual 0.4: error lines of one module that differ in their message
    # must stay apart, or a long-lived state merges them and log signatures drift
    template_similarity: float = Field(0.6, gt=0, le=1)
    record_in_kb: bool = True
    # alert linkage: same fingerprint more than N times within the sliding window -> incident
    alert_count: int = Field(10, ge=1)
    alert_window_s: float = Field(300.0, gt=0)
    # multi-trace correlation
    shared_key_attributes: list[str] = Field(
        default_factory=lambda: [
            "model.version",
            "gen_ai.request.model",
            "llm.model",
            "agent.id",
            "kv.key",
            "redis.key",
            "db.statement.key",
            "task.id",
        ]
    )
    min_community_traces: int = Field(3, ge=2)
    max_traces_in_summary: int = Field(5, ge=1)
