"""Training T1 (the dual-branch diffusion model) in torch, on fault-free windows only.

Why a module of its own: training needs autograd, inference does not — the trained weights run
in numpy (:class:`tools.learned.diffusion.DiffusionNet`), so only ``tamo train`` and the
evaluation harness import torch. The module below is the same network, layer for layer.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from tools.learned.channels import CHANNELS
from tools.learned.diffusion import LOG_IDX, TRACE_IDX, DiffusionConfig, DiffusionNet, compress
from tools.learned.threads import one_thread


@dataclass(frozen=True)
class DiffusionSchedule:
    betas: torch.Tensor
    alphas: torch.Tensor  # a_t = 1 - beta_t
    alpha_bars: torch.Tensor  # prod_{s<=t} a_s

    @classmethod
    def linear(cls, steps: int, beta_start: float, beta_end: float) -> DiffusionSchedule:
        betas = torch.linspace(beta_start, beta_end, steps, dtype=torch.float32)
        alphas = 1.0 - betas
        return cls(betas=betas, alphas=alphas, alpha_bars=torch.cumprod(alphas, dim=0))

    def step(self, x_prev: torch.Tensor, t: int, noise: torch.Tensor) -> torch.Tensor:
        """One forward step q(x_t | x_{t-1}) = N(sqrt(a_t) x_{t-1}, (1 - a_t) I)."""
        a = self.alphas[t]
        return torch.sqrt(a) * x_prev + torch.sqrt(1.0 - a) * noise

    def sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """Closed form q(x_t | x_0) = N(sqrt(abar_t) x_0, (1 - abar_t) I), ``t`` per batch row."""
        ab = self.alpha_bars[t].view(-1, *([1] * (x0.dim() - 1)))
        return torch.sqrt(ab) * x0 + torch.sqrt(1.0 - ab) * noise


class _Branch(nn.Module):
    def __init__(self, in_ch: int, hidden: int, steps: int) -> None:
        super().__init__()
        self.inp = nn.Conv1d(in_ch, hidden, 3, padding=1)
        self.mid = nn.Conv1d(hidden, hidden, 3, padding=1)
        self.t_emb = nn.Embedding(steps, hidden)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        h = self.act(self.inp(x) + self.t_emb(t).unsqueeze(-1))
        return self.act(self.mid(h)) + h


class DualBranchDiffusion(nn.Module):
    """Predicts the noise of x_t [B, m, l] from a log branch and a time branch, gated."""

    def __init__(self, config: DiffusionConfig | None = None) -> None:
        super().__init__()
        self.config = config or DiffusionConfig()
        c = self.config
        self.log_branch = _Branch(c.channels + len(LOG_IDX), c.hidden, c.steps)
        self.time_branch = _Branch(c.channels + 2 + len(TRACE_IDX), c.hidden, c.steps)
        self.gate = nn.Conv1d(2 * c.hidden, 1, 1)
        self.out = nn.Conv1d(c.hidden, c.channels, 1)
        self.schedule = DiffusionSchedule.linear(c.steps, c.beta_start, c.beta_end)

    @staticmethod
    def conditions(x0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Log-template condition and temporal+trace condition from the clean series."""
        length = x0.shape[-1]
        pos = torch.linspace(0.0, 1.0, length, dtype=x0.dtype, device=x0.device)
        enc = torch.stack([torch.sin(math.pi * pos), torch.cos(math.pi * pos)])
        enc = enc.unsqueeze(0).expand(x0.shape[0], -1, -1)
        return x0[:, LOG_IDX, :], torch.cat([enc, x0[:, TRACE_IDX, :]], dim=1)

    def forward(
        self, x_t: torch.Tensor, t: torch.Tensor, c_log: torch.Tensor, c_time: torch.Tensor
    ) -> torch.Tensor:
        h_log = self.log_branch(torch.cat([x_t, c_log], dim=1), t)
        h_time = self.time_branch(torch.cat([x_t, c_time], dim=1), t)
        g = torch.sigmoid(self.gate(torch.cat([h_log, h_time], dim=1)))
        return self.out(g * h_log + (1.0 - g) * h_time)

    def loss(self, x0: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """The DDPM objective ||eps - eps_theta(x_t, t, conditions)||^2 (self-supervised)."""
        t = torch.randint(0, self.config.steps, (x0.shape[0],), generator=generator)
        noise = torch.randn(x0.shape, generator=generator)
        x_t = self.schedule.sample(x0, t, noise)
        c_log, c_time = self.conditions(x0)
        return torch.mean((self(x_t, t, c_log, c_time) - noise) ** 2)

    def net(self) -> DiffusionNet:
        """The trained weights as the numpy inference network."""
        state = {k: v.detach().numpy().copy() for k, v in self.state_dict().items()}
        return DiffusionNet(self.config, state)


def training_windows(baselines: list[np.ndarray], crop: int, seed: int) -> np.ndarray:
    """Fixed-length crops [N, m, crop] of compressed fault-free series of every entity."""
    rng = np.random.default_rng(seed)
    out: list[np.ndarray] = []
    for bx in baselines:
        if bx.ndim != 3 or bx.shape[-1] == 0:
            continue
        series = compress(bx.astype(np.float32))
        length = series.shape[-1]
        if length < crop:
            series = np.pad(series, ((0, 0), (0, 0), (0, crop - length)), mode="edge")
            length = crop
        starts = rng.integers(0, length - crop + 1, size=max(1, length // crop))
        out.extend(series[:, :, s : s + crop] for s in starts)
    if not out:
        return np.zeros((0, len(CHANNELS), crop), dtype=np.float32)
    return np.concatenate(out, axis=0).astype(np.float32)


@one_thread()
def train_diffusion(
    baselines: list[np.ndarray],
    config: DiffusionConfig | None = None,
    epochs: int = 30,
    seed: int = 0,
    progress: Callable[[], None] | None = None,
) -> tuple[DiffusionNet, list[float]]:
    """Train T1 on fault-free windows; returns the inference network and the loss per epoch."""
    cfg = config or DiffusionConfig()
    torch.manual_seed(seed)
    model = DualBranchDiffusion(cfg)
    data = torch.from_numpy(training_windows(baselines, cfg.crop, seed))
    losses: list[float] = []
    if len(data) == 0:
        return model.eval().net(), losses
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    gen = torch.Generator().manual_seed(seed)
    batch = 256
    for _ in range(epochs):
        perm = torch.randperm(len(data), generator=gen)
        total = 0.0
        for i in range(0, len(data), batch):
            x0 = data[perm[i : i + batch]]
            loss = model.loss(x0, gen)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(x0)
        losses.append(total / len(data))
        if progress is not None:
            progress()
    return model.eval().net(), losses
