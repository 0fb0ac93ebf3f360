from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from tools.learned import layers


def _state(module: nn.Module) -> dict[str, np.ndarray]:
    return {k: v.detach().numpy() for k, v in module.state_dict().items()}


@pytest.mark.parametrize("kernel", [1, 3])
def test_conv1d_matches_torch(kernel: int) -> None:
    torch.manual_seed(0)
    conv = nn.Conv1d(5, 4, kernel, padding=kernel // 2)
    x = torch.randn(6, 5, 13) * 3
    with torch.no_grad():
        want = conv(x).numpy()
    assert np.abs(layers.conv1d(x.numpy(), **_state(conv)) - want).max() < 1e-5


def test_gelu_sigmoid_softmax_linear_match_torch() -> None:
    torch.manual_seed(1)
    x = torch.randn(40, 9) * 4
    lin = nn.Linear(9, 3)
    with torch.no_grad():
        pairs = [
            (layers.gelu(x.numpy()), nn.functional.gelu(x).numpy()),
            (layers.sigmoid(x.numpy()), torch.sigmoid(x).numpy()),
            (layers.softmax(x.numpy(), axis=-1), torch.softmax(x, dim=-1).numpy()),
            (layers.linear(x.numpy(), **_state(lin)), lin(x).numpy()),
        ]
    for got, want in pairs:
        assert got.dtype == np.float32 and np.abs(got - want).max() < 1e-5


def test_softmax_of_a_masked_row_ignores_minus_infinity() -> None:
    row = np.array([[-np.inf, 1.0, 2.0]], dtype=np.float32)
    out = layers.softmax(row)
    assert out[0, 0] == 0.0 and np.isclose(out.sum(), 1.0)


def test_self_attention_matches_torch_multihead_attention() -> None:
    torch.manual_seed(2)
    mha = nn.MultiheadAttention(8, 2, batch_first=True)
    h = torch.randn(1, 7, 8)
    with torch.no_grad():
        want = mha(h, h, h)[0][0].numpy()
    s = _state(mha)
    got = layers.self_attention(
        h[0].numpy(),
        s["in_proj_weight"],
        s["in_proj_bias"],
        s["out_proj.weight"],
        s["out_proj.bias"],
        heads=2,
    )
    assert np.abs(got - want).max() < 1e-5
