"""T1 as a tool: aligned tensor in, fused series and the anomaly signal out.

Why the anomaly signal is ``x - x_hat``: the diffusion model reconstructs what the window would
look like if it were normal, given its log and trace context; the residual is the part normal
behaviour cannot explain. Without a trained model the fusion falls back to the compressed robust
z-scores themselves (an honest, label-free signal) and says so in ``method``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tools.learned.aligned import AlignedTelemetry
from tools.learned.channels import CHANNELS
from tools.learned.diffusion import DiffusionNet, compress
from tools.learned.results import ChannelEvidence, FusionSummary, RankedEntity

# Channels where only an increase means trouble (a CPU, latency or error drop is not a fault).
_UP_ONLY = {"metric_cpu", "metric_memory", "metric_latency", "metric_errors", "trace_p50"}
_UP_ONLY |= {"trace_p95", "trace_p99", "trace_self_p95", "trace_errors", "trace_edge_latency"}
_UP_ONLY |= {"log_errors", "log_novel", "log_cut"}
ONE_SIDED = np.array([c in _UP_ONLY for c in CHANNELS])


@dataclass
class FusedTelemetry:
    """The fused, denoised series and the per-(entity, channel, step) anomaly signal."""

    aligned: AlignedTelemetry
    denoised: np.ndarray  # [E, m, l] compressed scale: what normal would look like
    anomaly: np.ndarray  # [E, m, l] signed residual (positive = worse than normal)
    method: str

    @property
    def entities(self) -> list[str]:
        return self.aligned.entities

    def scored(self) -> np.ndarray:
        """[E, m, l'] the anomaly from the fault onset on, one-sided where only "up" is bad."""
        a = self.anomaly[:, :, self.aligned.onset_bin :]
        return np.where(ONE_SIDED[None, :, None], np.maximum(a, 0.0), np.abs(a))

    def channel_peaks(self) -> np.ndarray:
        """[E, m] sustained peak: mean of the top third of scored steps (one noisy step is not
        a fault), 0 for channels an entity does not have."""
        a = np.sort(self.scored(), axis=2)[:, :, ::-1]
        k = max(1, a.shape[2] // 3)
        return a[:, :, :k].mean(axis=2) * self.aligned.present

    def onsets(self, threshold: float = 1.5) -> np.ndarray:
        """[E] first step (fraction of the window) where any channel exceeds ``threshold``."""
        hot = (np.abs(self.anomaly) * self.aligned.present[:, :, None]) > threshold
        length = self.anomaly.shape[2]
        first = np.where(hot.any(axis=1), hot.any(axis=1).argmax(axis=1), length)
        return first / max(1, length)

    def summary(self, top: int = 5) -> FusionSummary:
        peaks = self.channel_peaks()
        order = np.argsort(-peaks.max(axis=1))[:top]
        top_max = float(peaks.max()) or 1.0
        items = []
        for e in order:
            chans = np.argsort(-peaks[e])[:3]
            items.append(
                RankedEntity(
                    entity=self.entities[e],
                    score=round(float(peaks[e].max()) / top_max, 4),
                    evidence=[
                        ChannelEvidence(channel=CHANNELS[c], score=round(float(peaks[e, c]), 3))
                        for c in chans
                        if peaks[e, c] > 0
                    ],
                )
            )
        E, _, steps = self.anomaly.shape
        return FusionSummary(
            entities=E,
            channels=[
                c for c, p in zip(CHANNELS, self.aligned.present.any(axis=0), strict=True) if p
            ],
            steps=steps,
            modalities=self.aligned.modalities,
            top_anomalies=items,
            method=self.method,
        )


def fuse(
    aligned: AlignedTelemetry, model: DiffusionNet | None = None, seed: int = 0
) -> FusedTelemetry:
    """Run T1 on one aligned window (or the robust-z fallback when ``model`` is ``None``)."""
    x = compress(aligned.X.astype(np.float32))
    if model is None:
        return FusedTelemetry(aligned, np.zeros_like(x), x, "robust-z (no diffusion model)")
    x_hat = model.reconstruct(np.ascontiguousarray(x), seed=seed)
    anomaly = (x - x_hat) * aligned.present[:, :, None]
    return FusedTelemetry(aligned, x_hat, anomaly.astype(np.float32), "diffusion")
