"""The few network layers the trained models use, as numpy functions over torch's weight layout.

Why numpy: inference on a window is a handful of small matrix products (batches of a few hundred
short series, hidden width 32), which numpy does in milliseconds; importing torch to do them
costs ~1.8 CPU-s per command. Training stays in torch; its ``state_dict`` arrays are read here
as they are (``weight`` [out, in] for linear layers, [out, in, kernel] for convolutions), so one
set of weights serves both. Each function matches its torch module within float32 rounding.
"""

from __future__ import annotations

import numpy as np

# Abramowitz & Stegun 7.1.26: |error| < 1.5e-7, about float32 rounding at GELU's scale
_P = 0.3275911
_A = (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429)


def erf(x: np.ndarray) -> np.ndarray:
    z = np.abs(x.astype(np.float64))
    t = 1.0 / (1.0 + _P * z)
    poly = t * (_A[0] + t * (_A[1] + t * (_A[2] + t * (_A[3] + t * _A[4]))))
    return np.sign(x) * (1.0 - poly * np.exp(-z * z))


def gelu(x: np.ndarray) -> np.ndarray:
    """``nn.GELU()`` (the exact, erf form)."""
    return (0.5 * x * (1.0 + erf(x / np.sqrt(2.0)))).astype(np.float32)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return (1.0 / (1.0 + np.exp(-x.astype(np.float64)))).astype(x.dtype)


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    top = np.max(x, axis=axis, keepdims=True)
    e = np.exp(x - np.where(np.isfinite(top), top, 0.0))
    return e / e.sum(axis=axis, keepdims=True)


def linear(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
    """``nn.Linear``: x [..., in] -> [..., out]."""
    y = x @ weight.T
    return y + bias if bias is not None else y


def conv1d(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """``nn.Conv1d(k, padding=k // 2)`` for odd k: x [B, C, L] -> [B, O, L]."""
    k = weight.shape[-1]
    pad = k // 2
    length = x.shape[-1]
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad))) if pad else x
    out = sum(weight[:, :, j] @ xp[:, :, j : j + length] for j in range(k))
    return out + bias[None, :, None]


def self_attention(
    h: np.ndarray,
    in_weight: np.ndarray,
    in_bias: np.ndarray,
    out_weight: np.ndarray,
    out_bias: np.ndarray,
    heads: int,
) -> np.ndarray:
    """``nn.MultiheadAttention(h, h, h)`` on one sequence: h [L, D] -> [L, D]."""
    length, d = h.shape
    q, k, v = np.split(linear(h, in_weight, in_bias), 3, axis=-1)
    hd = d // heads
    q = q.reshape(length, heads, hd).transpose(1, 0, 2)
    k = k.reshape(length, heads, hd).transpose(1, 0, 2)
    v = v.reshape(length, heads, hd).transpose(1, 0, 2)
    att = softmax(q @ k.transpose(0, 2, 1) / np.sqrt(hd), axis=-1)
    ctx = (att @ v).transpose(1, 0, 2).reshape(length, d)
    return linear(ctx, out_weight, out_bias)
