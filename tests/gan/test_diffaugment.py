"""DiffAugment: each op does what it says, keeps gradients, is seeded, and fills with black."""
from __future__ import annotations

import pytest
import torch

from pipeline.gan.diffaugment import brightness, contrast, cutout, diff_augment, parse_policy, translation


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_brightness_adds_one_offset_per_sample():
    x = torch.rand(8, 1, 5, 6) * 2 - 1
    d = brightness(x, gen()) - x
    per_sample = d.flatten(1)
    assert torch.allclose(per_sample, per_sample[:, :1].expand_as(per_sample), atol=1e-6)
    assert per_sample.abs().max() <= 0.5 + 1e-6 and per_sample[:, 0].std() > 0


def test_contrast_keeps_each_mean_and_scales_spread():
    x = torch.rand(8, 1, 5, 6) * 2 - 1
    y = contrast(x, gen())
    assert torch.allclose(y.mean(dim=(1, 2, 3)), x.mean(dim=(1, 2, 3)), atol=1e-6)
    ratio = y.std(dim=(1, 2, 3)) / x.std(dim=(1, 2, 3))
    assert ((ratio >= 0.5 - 1e-5) & (ratio <= 1.5 + 1e-5)).all() and ratio.std() > 0


def test_translation_shifts_content_and_fills_black():
    x = torch.zeros(32, 1, 16, 16)
    x[:, :, 8, 8] = 1.0                          # one bright dot
    y = translation(x, gen(), ratio=0.125, fill=-1.0)
    assert y.shape == x.shape
    assert set(y.unique().tolist()) <= {-1.0, 0.0, 1.0}
    pos = [torch.nonzero(y[i, 0] == 1.0) for i in range(32)]
    assert all(len(p) == 1 for p in pos)          # shifts of at most 2 px keep the dot inside
    shifts = torch.stack([p[0] - 8 for p in pos])
    assert shifts.abs().max() <= 2 and len({tuple(s.tolist()) for s in shifts}) > 3
    # pixels shifted in are black: their count matches the shift
    for i in range(32):
        dy, dx = shifts[i].abs().tolist()
        assert (y[i, 0] == -1).sum().item() == 16 * 16 - (16 - dy) * (16 - dx)


def test_cutout_blacks_out_one_rectangle_per_sample():
    x = torch.ones(16, 1, 8, 12)
    y = cutout(x, gen(), ratio=0.5, fill=-1.0)
    black = (y == -1).flatten(1).sum(1)
    assert (black > 0).all() and (black <= 4 * 6).all()
    for i in range(16):
        rows = torch.nonzero((y[i, 0] == -1).any(1)).flatten()
        cols = torch.nonzero((y[i, 0] == -1).any(0)).flatten()
        assert black[i] == len(rows) * len(cols)      # a filled rectangle


def test_policy_is_differentiable_seeded_and_validated():
    x = (torch.rand(4, 1, 8, 16) * 2 - 1).requires_grad_(True)
    ops = parse_policy("translation, cutout,brightness,contrast")
    y = diff_augment(x, ops, gen(1))
    y.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert torch.equal(diff_augment(x.detach(), ops, gen(1)), y.detach())
    assert not torch.equal(diff_augment(x.detach(), ops, gen(2)), y.detach())
    assert torch.equal(diff_augment(x.detach(), ""), x.detach())
    with pytest.raises(ValueError):
        parse_policy("translation,saturation")
