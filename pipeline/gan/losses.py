"""WGAN-GP losses (Gulrajani et al., 2017).

The critic minimises ``E[D(fake)] - E[D(real)] + lambda * GP``; the generator minimises
``-E[D(fake)]``. The gradient penalty draws one interpolation coefficient per sample, takes the
gradient norm per sample over all its pixels, and is computed in fp32 with autocast switched off,
so bf16 mixed precision elsewhere cannot underflow or NaN it.
"""
from __future__ import annotations

import torch
from torch import nn


def critic_loss(d_real: torch.Tensor, d_fake: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss without the penalty, Wasserstein estimate E[D(real)] - E[D(fake)]), both fp32."""
    w = d_real.float().mean() - d_fake.float().mean()
    return -w, w.detach()


def generator_loss(d_fake: torch.Tensor) -> torch.Tensor:
    return -d_fake.float().mean()


def gradient_penalty(critic: nn.Module, real: torch.Tensor, fake: torch.Tensor,
                     generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean over samples of (||grad_x D(x_hat)||_2 - 1)^2, per-sample gradient norms).

    ``x_hat = a * real + (1 - a) * fake`` with one ``a ~ U(0, 1)`` per sample. The returned penalty
    keeps its graph (create_graph) so that it trains the critic.
    """
    if real.shape != fake.shape:
        raise ValueError(f"real {tuple(real.shape)} and fake {tuple(fake.shape)} differ in shape")
    n = real.shape[0]
    alpha = torch.rand((n,) + (1,) * (real.dim() - 1), device=real.device, dtype=torch.float32,
                       generator=generator)
    real32, fake32 = real.detach().float(), fake.detach().float()
    x_hat = (alpha * real32 + (1.0 - alpha) * fake32).requires_grad_(True)
    with torch.autocast(device_type=real.device.type, enabled=False):
        score = critic(x_hat).float()
        (grad,) = torch.autograd.grad(score.sum(), x_hat, create_graph=True)
        norms = grad.reshape(n, -1).norm(2, dim=1)
        penalty = ((norms - 1.0) ** 2).mean()
    return penalty, norms.detach()
