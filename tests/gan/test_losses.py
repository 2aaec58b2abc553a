"""WGAN-GP: the penalty against closed forms, per-sample alpha and norms, fp32 under bf16 autocast."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from pipeline.gan.losses import critic_loss, generator_loss, gradient_penalty


class Linear(nn.Module):
    """D(x) = <w, x> + b per sample: its input gradient is w everywhere."""

    def __init__(self, w: torch.Tensor) -> None:
        super().__init__()
        self.w = nn.Parameter(w.clone())
        self.b = nn.Parameter(torch.tensor(0.3))

    def forward(self, x):
        return (x * self.w).flatten(1).sum(1) + self.b


class Quadratic(nn.Module):
    """D(x) = 0.5 ||x||^2 per sample: its input gradient is x itself."""

    def forward(self, x):
        return 0.5 * (x.float() ** 2).flatten(1).sum(1)


def test_penalty_matches_closed_form_on_a_linear_critic():
    torch.manual_seed(0)
    w = torch.randn(1, 3, 4) * 0.2
    real, fake = torch.randn(5, 1, 3, 4), torch.randn(5, 1, 3, 4)
    gp, norms = gradient_penalty(Linear(w), real, fake)
    expected = (w.norm() - 1) ** 2            # per sample ||w||; a batch-wide norm would be sqrt(5)||w||
    assert torch.allclose(norms, w.norm().expand(5), rtol=1e-6)
    assert torch.allclose(gp, expected, rtol=1e-6)


def test_one_alpha_per_sample_and_per_sample_norms():
    real, fake = torch.randn(6, 1, 4, 4), torch.randn(6, 1, 4, 4)
    gp, norms = gradient_penalty(Quadratic(), real, fake, generator=torch.Generator().manual_seed(3))
    alpha = torch.rand(6, 1, 1, 1, generator=torch.Generator().manual_seed(3))
    x_hat = alpha * real + (1 - alpha) * fake
    expected_norms = x_hat.flatten(1).norm(dim=1)
    assert torch.allclose(norms, expected_norms, rtol=1e-5)
    assert torch.allclose(gp, ((expected_norms - 1) ** 2).mean(), rtol=1e-5)


def test_penalty_trains_the_critic():
    critic = Linear(torch.full((1, 2, 2), 2.0))
    gp, _ = gradient_penalty(critic, torch.randn(3, 1, 2, 2), torch.randn(3, 1, 2, 2))
    gp.backward()
    # d/dw (||w|| - 1)^2 = 2 (||w|| - 1) w / ||w||: ||w|| = 4, w = 2 -> 3 per entry
    assert torch.allclose(critic.w.grad, torch.full((1, 2, 2), 3.0), rtol=1e-5)


def test_penalty_is_fp32_under_bf16_autocast():
    torch.manual_seed(1)
    critic = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.LeakyReLU(0.2), nn.Flatten(), nn.Linear(4 * 8 * 8, 1))
    real, fake = torch.randn(4, 1, 8, 8), torch.randn(4, 1, 8, 8)
    ref, _ = gradient_penalty(critic, real, fake, generator=torch.Generator().manual_seed(5))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        fake_bf16 = fake.to(torch.bfloat16)
        gp, norms = gradient_penalty(critic, real, fake_bf16, generator=torch.Generator().manual_seed(5))
    assert gp.dtype == torch.float32 and norms.dtype == torch.float32
    assert torch.isfinite(gp)
    # only the bf16 rounding of `fake` differs from the fp32 reference
    assert torch.allclose(gp, ref, rtol=2e-2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        gp_same, _ = gradient_penalty(critic, real, fake, generator=torch.Generator().manual_seed(5))
    assert torch.equal(gp_same, ref)


def test_losses_signs():
    d_real, d_fake = torch.tensor([2.0, 4.0]), torch.tensor([1.0, -1.0])
    loss, w = critic_loss(d_real, d_fake)
    assert w.item() == pytest.approx(3.0) and loss.item() == pytest.approx(-3.0)
    assert generator_loss(d_fake).item() == pytest.approx(0.0)
    with pytest.raises(ValueError):
        gradient_penalty(Quadratic(), torch.zeros(2, 1, 2, 2), torch.zeros(3, 1, 2, 2))
