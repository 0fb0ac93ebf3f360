from __future__ import annotations

import numpy as np
import torch

from tests.learned.conftest import make_case
from tools.learned import align_case, fuse_modalities
from tools.learned.channels import CHANNELS
from tools.learned.diffusion import DiffusionConfig, DiffusionNet, alpha_bars, compress
from tools.learned.diffusion_train import DiffusionSchedule, DualBranchDiffusion, train_diffusion
from tools.learned.models import LearnedModels


def test_linear_schedule() -> None:
    s = DiffusionSchedule.linear(10, 1e-4, 0.2)
    assert torch.allclose(s.alphas, 1 - s.betas)
    assert torch.allclose(s.alpha_bars, torch.cumprod(s.alphas, 0))
    assert (s.betas[1:] > s.betas[:-1]).all()
    assert float(s.alpha_bars[-1]) < float(s.alpha_bars[0]) < 1.0


def test_forward_step_has_the_stated_mean_and_variance() -> None:
    s = DiffusionSchedule.linear(10, 1e-4, 0.2)
    gen = torch.Generator().manual_seed(0)
    x_prev = torch.ones(200_000)
    x_t = s.step(x_prev, 9, torch.randn(x_prev.shape, generator=gen))
    a = float(s.alphas[9])
    assert abs(float(x_t.mean()) - a**0.5) < 0.01
    assert abs(float(x_t.var()) - (1 - a)) < 0.01


def test_closed_form_matches_repeated_steps() -> None:
    s = DiffusionSchedule.linear(6, 1e-3, 0.3)
    gen = torch.Generator().manual_seed(1)
    x = torch.full((100_000,), 2.0)
    for t in range(6):
        x = s.step(x, t, torch.randn(x.shape, generator=gen))
    ab = float(s.alpha_bars[-1])
    assert abs(float(x.mean()) - 2.0 * ab**0.5) < 0.02
    assert abs(float(x.var()) - (1 - ab)) < 0.02


def test_denoiser_shape_and_loss_decreases() -> None:
    aligned = align_case(make_case())
    model = DualBranchDiffusion()
    x = torch.from_numpy(compress(aligned.X[:, :, :8]).astype(np.float32))
    c_log, c_time = model.conditions(x)
    eps = model(x, torch.zeros(len(x), dtype=torch.long), c_log, c_time)
    assert eps.shape == x.shape == (3, len(CHANNELS), 8)
    _, losses = train_diffusion([aligned.baseline_X] * 4, DiffusionConfig(), epochs=15, seed=0)
    assert losses[-1] < losses[0]


def test_training_is_deterministic_under_a_seed() -> None:
    base = [align_case(make_case()).baseline_X]
    m1, l1 = train_diffusion(base, epochs=2, seed=7)
    m2, l2 = train_diffusion(base, epochs=2, seed=7)
    assert l1 == l2
    for (k, v1), v2 in zip(m1.state_dict().items(), m2.state_dict().values(), strict=True):
        assert np.array_equal(v1, v2), k


def test_fusion_with_and_without_a_model() -> None:
    aligned = align_case(make_case())
    plain = fuse_modalities(aligned)
    assert plain.method.startswith("robust-z")
    model, _ = train_diffusion([aligned.baseline_X], epochs=2, seed=0)
    fused = fuse_modalities(aligned, LearnedModels(diffusion=model))
    again = fuse_modalities(aligned, LearnedModels(diffusion=model))
    assert fused.method == "diffusion"
    assert fused.anomaly.shape == aligned.X.shape
    assert np.array_equal(fused.anomaly, again.anomaly)
    summary = fused.summary()
    assert summary.entities == 3 and summary.top_anomalies


def _torch_reconstruct(model: DualBranchDiffusion, x0: torch.Tensor, seed: int) -> torch.Tensor:
    """The DDPM probe as torch computes it (the reference the numpy network must match)."""
    c = model.config
    gen = torch.Generator().manual_seed(seed)
    c_log, c_time = model.conditions(x0)
    t = torch.full((x0.shape[0],), c.probe_step, dtype=torch.long)
    ab = model.schedule.alpha_bars[c.probe_step]
    est = torch.zeros_like(x0)
    with torch.no_grad():
        for _ in range(c.probe_draws):
            x_t = model.schedule.sample(x0, t, torch.randn(x0.shape, generator=gen))
            est += (x_t - torch.sqrt(1.0 - ab) * model(x_t, t, c_log, c_time)) / torch.sqrt(ab)
    return est / c.probe_draws


def test_numpy_network_matches_the_torch_module_on_random_weights() -> None:
    torch.manual_seed(3)
    module = DualBranchDiffusion().eval()
    net = module.net()
    assert isinstance(net, DiffusionNet)
    x0 = torch.randn(7, len(CHANNELS), 29) * 2
    t = torch.randint(0, module.config.steps, (7,))
    c_log, c_time = module.conditions(x0)
    with torch.no_grad():
        want = module(x0, t, c_log, c_time).numpy()
    got = net.predict_noise(x0.numpy(), t.numpy(), c_log.numpy(), c_time.numpy())
    assert got.dtype == np.float32 and np.abs(got - want).max() < 1e-5
    assert np.allclose(alpha_bars(module.config), module.schedule.alpha_bars.numpy(), atol=1e-7)
    for seed in (0, 5):
        want = _torch_reconstruct(module, x0, seed).numpy()
        assert np.abs(net.reconstruct(x0.numpy(), seed) - want).max() < 1e-4
