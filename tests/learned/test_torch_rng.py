from __future__ import annotations

import numpy as np
import pytest
import torch

from tools.learned.torch_rng import TorchGenerator


@pytest.mark.parametrize("seed", [0, 1, 12345])
@pytest.mark.parametrize("size", [16, 17, 31, 18 * 3 * 40, 18 * 41 * 61])
def test_randn_is_torchs_randn_within_float32_rounding(seed: int, size: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    ours = TorchGenerator(seed)
    for _ in range(3):  # successive draws keep the two generators in step
        want = torch.randn((size,), generator=gen).numpy()
        got = ours.randn((size,))
        assert got.dtype == np.float32
        assert np.abs(got - want).max() <= 4e-6 * max(1.0, float(np.abs(want).max()))


def test_uniform_is_torchs_seeded_initialisation_bit_for_bit() -> None:
    torch.manual_seed(7)
    want = [torch.empty(16, 162).uniform_(-0.08, 0.08), torch.empty(16).uniform_(-0.3, 0.3)]
    ours = TorchGenerator(7)
    got = [ours.uniform((16, 162), -0.08, 0.08), ours.uniform((16,), -0.3, 0.3)]
    for w, g in zip(want, got, strict=True):
        assert np.array_equal(w.numpy(), g)


def test_fewer_than_sixteen_normals_are_refused() -> None:
    with pytest.raises(ValueError, match="fewer than 16"):
        TorchGenerator(0).randn((3, 5))
