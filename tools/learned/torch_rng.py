"""torch's CPU random numbers, drawn with numpy: the same noise and initial weights without torch.

Why: the learned models were trained in torch, and their inference draws from torch's generator
(T1 noises a window with ``torch.randn`` from a fixed seed; T2's untrained attention is
``nn.Linear``'s seeded initialisation). Reproducing those draws keeps the numpy forward pass on
the same numbers as the torch one, so importing torch (1.8 CPU-s) is not needed to diagnose.

What torch does on the CPU (ATen ``CPUGeneratorImpl``, ``normal_fill``, ``uniform_real``): a
32-bit Mersenne Twister seeded by ``init_genrand(seed)`` — numpy's ``MT19937`` legacy seeding is
the same — a float uniform is the low 24 bits of one draw over 2**24, and ``randn`` of at least
16 values fills uniforms, then Box–Muller on each block of 16 (the first 8 as ``1 - u1``, the
last 8 as ``u2``), recomputing the last 16 from fresh uniforms when the size is not a multiple
of 16. torch evaluates log/sin/cos in float32 SIMD, so values agree to about one float32 ulp.
"""

from __future__ import annotations

import numpy as np

_FLOAT_BITS = 24
BLOCK = 16


class TorchGenerator:
    """``torch.Generator().manual_seed(seed)`` (or ``torch.manual_seed``) for float32 draws."""

    def __init__(self, seed: int) -> None:
        self._bits = np.random.MT19937(0)
        self._bits._legacy_seeding(seed)

    def _uniform01(self, n: int) -> np.ndarray:
        raw = self._bits.random_raw(n) & ((1 << _FLOAT_BITS) - 1)
        return raw.astype(np.float64) / float(1 << _FLOAT_BITS)

    def uniform(self, shape: tuple[int, ...], low: float, high: float) -> np.ndarray:
        """``torch.empty(shape).uniform_(low, high)`` — as ``nn.Linear`` initialises weights."""
        lo, hi = np.float32(low), np.float32(high)
        u = self._uniform01(int(np.prod(shape)))
        return (u * (float(hi) - float(lo)) + float(lo)).astype(np.float32).reshape(shape)

    def randn(self, shape: tuple[int, ...]) -> np.ndarray:
        """``torch.randn(shape, generator=...)`` for tensors of at least 16 values."""
        n = int(np.prod(shape))
        if n < BLOCK:
            raise ValueError(f"randn of {n} values: torch draws fewer than {BLOCK} differently")
        out = np.empty(n, dtype=np.float64)
        full = n - n % BLOCK
        out[:full] = _box_muller(self._uniform01(n)[:full])
        if full < n:
            out[n - BLOCK :] = _box_muller(self._uniform01(BLOCK))
        return out.astype(np.float32).reshape(shape)


def _box_muller(u: np.ndarray) -> np.ndarray:
    """Blocks of 16 uniforms -> 16 normals, torch's layout (cos in the first half, sin after)."""
    blocks = u.reshape(-1, BLOCK).astype(np.float32).astype(np.float64)
    half = BLOCK // 2
    radius = np.sqrt(-2.0 * np.log(1.0 - blocks[:, :half]))
    theta = 2.0 * np.pi * blocks[:, half:]
    return np.concatenate([radius * np.cos(theta), radius * np.sin(theta)], axis=1).reshape(-1)
