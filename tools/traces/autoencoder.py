"""A small autoencoder over trace embeddings, in numpy; anomaly = reconstruction error.

Why an autoencoder on top of the explicit detectors: hangs, errors and broken structure are
caught by rules, but a trace can be wrong in ways nobody wrote a rule for (an unusual mix of
modules, a shifted latency profile); a compressor trained only on normal traces reconstructs
those badly. It is deliberately tiny (two layers each way, a bounded number of Adam steps) and
seeded so results are reproducible.

Why numpy and not torch: the model has ~10k weights; importing torch costs ~1.6 CPU-s, longer
than training and scoring a whole file here (the matrices are 256 x 160 at most), and ``tamo
traces analyze`` pays that on every launch. Same architecture and initialisation as
``torch.nn.Linear`` (uniform within 1/sqrt(fan_in)), mean squared error and plain Adam (Kingma
& Ba), float32.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from threadpoolctl import threadpool_limits

from tools.traces.config import TraceConfig

# Why one BLAS thread: for matrices this small, a second thread only spins and waits (measured
# 6x slower with 2 threads on a 2-core machine with one core busy).
_ONE_THREAD = {"limits": 1, "user_api": "blas"}


@dataclass
class _Layer:
    w: np.ndarray  # (out, in) float32
    b: np.ndarray  # (out,) float32

    @classmethod
    def init(cls, n_in: int, n_out: int, rng: np.random.Generator) -> _Layer:
        bound = 1.0 / np.sqrt(n_in)
        return cls(
            rng.uniform(-bound, bound, (n_out, n_in)).astype(np.float32),
            rng.uniform(-bound, bound, n_out).astype(np.float32),
        )

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return x @ self.w.T + self.b


class TraceAutoencoder:
    """``x -> Linear -> ReLU -> Linear (code) -> ReLU -> Linear -> ReLU -> Linear -> x'``."""

    def __init__(self, n_features: int, hidden: int, code: int, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.layers = [
            _Layer.init(n_features, hidden, rng),
            _Layer.init(hidden, code, rng),
            _Layer.init(code, hidden, rng),
            _Layer.init(hidden, n_features, rng),
        ]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self._forward(x)[-1]

    def _forward(self, x: np.ndarray) -> list[np.ndarray]:
        """Inputs of every layer, then the output: what backpropagation needs."""
        acts = [x]
        for i, layer in enumerate(self.layers):
            z = layer(acts[-1])
            acts.append(z if i == len(self.layers) - 1 else np.maximum(z, 0.0))
        return acts

    def gradients(self, x: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """(dW, db) per layer of the mean squared reconstruction error on ``x``."""
        acts = self._forward(x)
        grad = (2.0 / x.size) * (acts[-1] - x)
        out: list[tuple[np.ndarray, np.ndarray]] = []
        for i in range(len(self.layers) - 1, -1, -1):
            if i < len(self.layers) - 1:
                grad = grad * (acts[i + 1] > 0)  # through the ReLU after layer i
            out.append((grad.T @ acts[i], grad.sum(axis=0)))
            grad = grad @ self.layers[i].w
        return out[::-1]


class Standardiser:
    """Centre and scale with a floor, so a feature constant in normal traffic still counts."""

    def __init__(self, x: np.ndarray) -> None:
        self.mean = x.mean(axis=0) if len(x) else np.zeros(x.shape[1])
        self.std = np.maximum(x.std(axis=0) if len(x) else np.ones(x.shape[1]), 0.1)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return np.clip((x - self.mean) / self.std, -50.0, 50.0).astype(np.float32)


class _Adam:
    """Plain Adam (Kingma & Ba) over a model's layers."""

    def __init__(self, model: TraceAutoencoder, lr: float, betas: tuple[float, float]) -> None:
        self.model, self.lr, self.betas, self.t = model, lr, betas, 0
        params = [p for layer in model.layers for p in (layer.w, layer.b)]
        self.m = [np.zeros_like(p) for p in params]
        self.v = [np.zeros_like(p) for p in params]

    def step(self, grads: list[tuple[np.ndarray, np.ndarray]]) -> None:
        self.t += 1
        b1, b2 = self.betas
        c1, c2 = 1 - b1**self.t, 1 - b2**self.t
        params = [p for layer in self.model.layers for p in (layer.w, layer.b)]
        flat = [g for pair in grads for g in pair]
        for p, g, m, v in zip(params, flat, self.m, self.v, strict=True):
            m *= b1
            m += (1 - b1) * g
            v *= b2
            v += (1 - b2) * g * g
            p -= (self.lr * (m / c1) / (np.sqrt(v / c2) + 1e-8)).astype(np.float32)


def train_autoencoder(x: np.ndarray, config: TraceConfig) -> TraceAutoencoder:
    """Fit on standardised normal traces; a bounded number of optimiser steps."""
    with threadpool_limits(**_ONE_THREAD):
        return _train(x, config)


def _train(x: np.ndarray, config: TraceConfig) -> TraceAutoencoder:
    rng = np.random.default_rng(config.seed)
    model = TraceAutoencoder(x.shape[1], config.ae_hidden, config.ae_code, seed=config.seed)
    n = len(x)
    if n == 0:
        return model
    opt = _Adam(model, lr=config.ae_lr, betas=(0.9, 0.999))
    steps_per_epoch = max(
        1,
        min((n + config.ae_batch - 1) // config.ae_batch, config.ae_max_steps // config.ae_epochs),
    )
    for _ in range(config.ae_epochs):
        perm = rng.permutation(n)
        for i in range(steps_per_epoch):
            batch = x[perm[i * config.ae_batch : (i + 1) * config.ae_batch]]
            if len(batch) == 0:
                break
            opt.step(model.gradients(batch))
    return model


def reconstruction_error(model: TraceAutoencoder, x: np.ndarray) -> np.ndarray:
    if len(x) == 0:
        return np.zeros(0)
    with threadpool_limits(**_ONE_THREAD):
        return ((model(x) - x) ** 2).mean(axis=1).astype(np.float64)
