"""T1: the dual-branch collaborative diffusion model that fuses logs and traces into the series.

Why diffusion, and why trained on fault-free data only: the model learns what *normal* multi-modal
behaviour of an entity looks like (a metric channel given its log and trace context). Noising an
incident window part-way and denoising it projects it back onto that normal manifold; what the
model cannot reconstruct, ``x - x_hat``, is the fused anomaly signal T2 and T3 read. No labels are
involved, so it transfers to services and faults it has never seen.

Forward process: q(x_t | x_{t-1}) = N(sqrt(a_t) x_{t-1}, (1 - a_t) I), linear beta schedule.
Two branches predict the noise together: the *log branch* is conditioned on the entity's
log-template channels, the *time branch* on temporal position and trace channels; a learned gate
mixes them per time step.

This module is inference: :class:`DiffusionNet` runs the trained weights in numpy (with torch's
own noise, :mod:`tools.learned.torch_rng`), so diagnosing never imports torch; training is
:mod:`tools.learned.diffusion_train`, whose module has the same weights and layout.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from tools.learned.channels import CHANNEL_INDEX, CHANNELS, LOG_CHANNELS, TRACE_CHANNELS
from tools.learned.layers import conv1d, gelu, sigmoid
from tools.learned.torch_rng import TorchGenerator

LOG_IDX = [CHANNEL_INDEX[c] for c in LOG_CHANNELS]
TRACE_IDX = [CHANNEL_INDEX[c] for c in TRACE_CHANNELS]


def compress(x: np.ndarray) -> np.ndarray:
    """sign(z) * log1p(|z|): keeps order, tames z-scores of 100 to ~4.6 for the networks."""
    return np.sign(x) * np.log1p(np.abs(x))


@dataclass(frozen=True)
class DiffusionConfig:
    channels: int = len(CHANNELS)
    hidden: int = 32
    steps: int = 50
    beta_start: float = 1e-4
    beta_end: float = 0.2
    crop: int = 8
    probe_step: int = 12  # noise level used to score an incident window
    probe_draws: int = 4

    def to_dict(self) -> dict[str, int | float]:
        return asdict(self)


def alpha_bars(config: DiffusionConfig) -> np.ndarray:
    """prod_{s<=t} (1 - beta_s) of the linear schedule, float32 (torch's within rounding)."""
    betas = np.linspace(config.beta_start, config.beta_end, config.steps).astype(np.float32)
    return np.cumprod(np.float32(1.0) - betas, dtype=np.float32)


def position_encoding(batch: int, length: int) -> np.ndarray:
    """[B, 2, l] sin and cos of pi * position, the time branch's temporal condition."""
    pos = np.linspace(0.0, 1.0, length).astype(np.float32)
    enc = np.stack([np.sin(np.float32(math.pi) * pos), np.cos(np.float32(math.pi) * pos)])
    return np.broadcast_to(enc.astype(np.float32), (batch, 2, length))


@dataclass
class DiffusionNet:
    """The trained T1 noise predictor: weights named as the torch module's ``state_dict``."""

    config: DiffusionConfig
    weights: dict[str, np.ndarray] = field(repr=False)

    def state_dict(self) -> dict[str, np.ndarray]:
        return self.weights

    def _branch(self, name: str, x: np.ndarray, t: np.ndarray) -> np.ndarray:
        w = self.weights
        emb = w[f"{name}.t_emb.weight"][t][:, :, None]
        h = gelu(conv1d(x, w[f"{name}.inp.weight"], w[f"{name}.inp.bias"]) + emb)
        return gelu(conv1d(h, w[f"{name}.mid.weight"], w[f"{name}.mid.bias"])) + h

    def predict_noise(
        self, x_t: np.ndarray, t: np.ndarray, c_log: np.ndarray, c_time: np.ndarray
    ) -> np.ndarray:
        """eps_theta(x_t, t, conditions) for x_t [B, m, l] and steps t [B]."""
        w = self.weights
        h_log = self._branch("log_branch", np.concatenate([x_t, c_log], axis=1), t)
        h_time = self._branch("time_branch", np.concatenate([x_t, c_time], axis=1), t)
        both = np.concatenate([h_log, h_time], axis=1)
        g = sigmoid(conv1d(both, w["gate.weight"], w["gate.bias"]))
        return conv1d(g * h_log + (np.float32(1.0) - g) * h_time, w["out.weight"], w["out.bias"])

    def reconstruct(self, x0: np.ndarray, seed: int = 0) -> np.ndarray:
        """x_hat_0 averaged over a few noisings at ``probe_step`` (deterministic given ``seed``;
        the noise is torch's ``randn`` from ``torch.Generator().manual_seed(seed)``)."""
        c = self.config
        gen = TorchGenerator(seed)
        c_log = x0[:, LOG_IDX, :]
        c_time = np.concatenate([position_encoding(len(x0), x0.shape[-1]), x0[:, TRACE_IDX, :]], 1)
        t = np.full(len(x0), c.probe_step, dtype=np.int64)
        ab = alpha_bars(c)[c.probe_step]
        keep, noise_share = np.sqrt(ab), np.sqrt(np.float32(1.0) - ab)
        est = np.zeros_like(x0)
        for _ in range(c.probe_draws):
            x_t = keep * x0 + noise_share * gen.randn(x0.shape)
            eps = self.predict_noise(x_t, t, c_log, c_time)
            est += (x_t - noise_share * eps) / keep
        return est / np.float32(c.probe_draws)
