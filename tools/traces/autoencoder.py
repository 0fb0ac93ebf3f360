"""A small torch autoencoder over trace embeddings; anomaly = reconstruction error.

Why an autoencoder on top of the explicit detectors: hangs, errors and broken structure are
caught by rules, but a trace can be wrong in ways nobody wrote a rule for (an unusual mix of
modules, a shifted latency profile); a compressor trained only on normal traces reconstructs
those badly. It is deliberately tiny (two layers each way) so training on 20k traces takes
seconds on two CPU cores, and seeded so results are reproducible.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from tools.traces.config import TraceConfig


class TraceAutoencoder(nn.Module):
    def __init__(self, n_features: int, hidden: int, code: int) -> None:
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Linear(n_features, hidden), nn.ReLU(), nn.Linear(hidden, code)
        )
        self.decoder = nn.Sequential(
            nn.ReLU(), nn.Linear(code, hidden), nn.ReLU(), nn.Linear(hidden, n_features)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


class Standardiser:
    """Centre and scale with a floor, so a feature constant in normal traffic still counts."""

    def __init__(self, x: np.ndarray) -> None:
        self.mean = x.mean(axis=0) if len(x) else np.zeros(x.shape[1])
        self.std = np.maximum(x.std(axis=0) if len(x) else np.ones(x.shape[1]), 0.1)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return np.clip((x - self.mean) / self.std, -50.0, 50.0).astype(np.float32)


class _OneThread:
    """Run torch on one thread: for a model this small, intra-op threads only spin and wait
    (measured 20x slower with 2 threads on a busy 2-core machine)."""

    def __enter__(self) -> None:
        self.before = torch.get_num_threads()
        torch.set_num_threads(1)

    def __exit__(self, *exc: object) -> None:
        torch.set_num_threads(self.before)


class _Adam:
    """Plain Adam (Kingma & Ba). Why not ``torch.optim.Adam``: its first ``step()`` imports
    ``torch._dynamo`` (about 6 s of CPU), longer than the whole training of this model."""

    def __init__(
        self, params: list[torch.Tensor], lr: float, betas: tuple[float, float] = (0.9, 0.999)
    ) -> None:
        self.params, self.lr, self.betas, self.t = params, lr, betas, 0
        self.m = [torch.zeros_like(p) for p in params]
        self.v = [torch.zeros_like(p) for p in params]

    @torch.no_grad()
    def step(self) -> None:
        self.t += 1
        b1, b2 = self.betas
        c1, c2 = 1 - b1**self.t, 1 - b2**self.t
        for p, m, v in zip(self.params, self.m, self.v, strict=True):
            if p.grad is None:
                continue
            m.mul_(b1).add_(p.grad, alpha=1 - b1)
            v.mul_(b2).addcmul_(p.grad, p.grad, value=1 - b2)
            p.addcdiv_(m / c1, (v / c2).sqrt_().add_(1e-8), value=-self.lr)


def train_autoencoder(x: np.ndarray, config: TraceConfig) -> TraceAutoencoder:
    """Fit on standardised normal traces; a bounded number of optimiser steps."""
    with _OneThread():
        return _train(x, config)


def _train(x: np.ndarray, config: TraceConfig) -> TraceAutoencoder:
    gen = torch.Generator().manual_seed(config.seed)
    torch.manual_seed(config.seed)
    model = TraceAutoencoder(x.shape[1], config.ae_hidden, config.ae_code)
    opt = _Adam(list(model.parameters()), lr=config.ae_lr)
    data = torch.from_numpy(x)
    n = len(data)
    if n == 0:
        return model.eval()
    steps_per_epoch = max(
        1,
        min((n + config.ae_batch - 1) // config.ae_batch, config.ae_max_steps // config.ae_epochs),
    )
    for _ in range(config.ae_epochs):
        perm = torch.randperm(n, generator=gen)
        for i in range(steps_per_epoch):
            batch = data[perm[i * config.ae_batch : (i + 1) * config.ae_batch]]
            if len(batch) == 0:
                break
            loss = ((model(batch) - batch) ** 2).mean()
            model.zero_grad(set_to_none=False)
            loss.backward()
            opt.step()
    return model.eval()


def reconstruction_error(model: TraceAutoencoder, x: np.ndarray) -> np.ndarray:
    if len(x) == 0:
        return np.zeros(0)
    with torch.no_grad(), _OneThread():
        t = torch.from_numpy(x)
        return ((model(t) - t) ** 2).mean(dim=1).numpy().astype(np.float64)
