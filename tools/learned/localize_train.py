"""Training T2's frequency attention in torch, self-supervised (no root-cause labels).

Why a module of its own: only training needs autograd; the trained projections run in numpy
(:class:`tools.learned.localize.FrequencyAttention`), so diagnosing never imports torch.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from tools.learned.channels import CHANNELS
from tools.learned.localize import FREQ_BINS, FrequencyAttention, LocalizerConfig, spectra
from tools.learned.threads import one_thread


class AttentionModule(nn.Module):
    """The trainable attention: predicts each entity's spectrum from the others'."""

    def __init__(self, config: LocalizerConfig | None = None) -> None:
        super().__init__()
        self.config = config or LocalizerConfig()
        d_in, d = len(CHANNELS) * FREQ_BINS, self.config.d_model
        self.q = nn.Linear(d_in, d)
        self.k = nn.Linear(d_in, d)
        self.v = nn.Linear(d_in, d)
        self.o = nn.Linear(d, d_in)

    def attention(self, f: torch.Tensor) -> torch.Tensor:
        """[E, E] softmax(Q_F K_F^T / sqrt(d)), an entity never attends to itself."""
        q, k = self.q(f), self.k(f)
        logits = q @ k.T / np.sqrt(self.config.d_model)
        eye = torch.eye(len(f), dtype=torch.bool)
        if len(f) > 1:
            logits = logits.masked_fill(eye, float("-inf"))
        return torch.softmax(logits, dim=-1)

    def forward(self, f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        att = self.attention(f)
        return self.o(att @ self.v(f)), att

    def net(self) -> FrequencyAttention:
        """The trained projections as the numpy inference attention."""
        state = {k: v.detach().numpy().copy() for k, v in self.state_dict().items()}
        return FrequencyAttention(self.config, state)


@one_thread()
def train_localizer(
    windows: list[np.ndarray],
    config: LocalizerConfig | None = None,
    epochs: int = 20,
    seed: int = 0,
    progress: Callable[[], None] | None = None,
) -> tuple[FrequencyAttention, list[float]]:
    """Self-supervised: reconstruct each entity's spectrum from the other entities' spectra."""
    torch.manual_seed(seed)
    model = AttentionModule(config)
    data = [torch.from_numpy(spectra(w)) for w in windows if w.shape[0] > 1]
    losses: list[float] = []
    if not data:
        return model.eval().net(), losses
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        total = 0.0
        for i in torch.randperm(len(data), generator=gen).tolist():
            f = data[i]
            pred, _ = model(f)
            loss = torch.mean((pred - f) ** 2)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach())
        losses.append(total / len(data))
        if progress is not None:
            progress()
    return model.eval().net(), losses
