"""Training T3 (the fault-type classifier) in torch on labelled cases.

Why a module of its own: only training needs autograd; the trained weights run in numpy
(:class:`tools.learned.classifier.FaultTypeClassifier`), so classifying never imports torch.
The module below is the same network, layer for layer, with the same ``state_dict`` names.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch
from torch import nn

from tools.learned.classifier import (
    N_CASE,
    N_FEATURES,
    NOVELTY_MIN_RADIUS,
    NOVELTY_STD_FLOOR,
    ClassifierConfig,
    ClassifierExample,
    FaultTypeClassifier,
)
from tools.learned.threads import one_thread


class ClassifierModule(nn.Module):
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

    def net(self) -> FaultTypeClassifier:
        """The trained weights as the numpy inference classifier."""
        state = {k: v.detach().numpy().copy() for k, v in self.state_dict().items()}
        return FaultTypeClassifier(self.config, state)


def weighted_bce(probs: torch.Tensor, target: torch.Tensor, pos_weight: float) -> torch.Tensor:
    """-1/E sum[lambda_w y log y_hat + (1 - y) log(1 - y_hat)] (averaged over types too)."""
    p = probs.clamp(1e-6, 1 - 1e-6)
    return -(pos_weight * target * torch.log(p) + (1 - target) * torch.log(1 - p)).mean()


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
    model = ClassifierModule(cfg)
    if not examples:
        return model.eval().net()
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
    return model.eval().net()


def _fit_case_head(
    model: ClassifierModule, examples: list[ClassifierExample], labels: list[str]
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
