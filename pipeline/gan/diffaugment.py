"""DiffAugment (Zhao et al., 2020) for grey radiographs in [-1, 1].

Differentiable augmentations applied to real AND fake images before every critic call (critic and
generator steps alike), so a critic trained on a few hundred images cannot memorise them, while the
generator still gets gradients through the augmentation. Grey-aware: no colour/saturation ops;
brightness and contrast act on the single grey channel; pixels shifted in by translation and the
cut-out squares are filled with ``fill`` (default -1, the black of the letterbox bars and the
film background) rather than mid-grey.

Policy: comma-separated subset of ``translation, cutout, brightness, contrast`` (empty: off).
Each op draws its own random numbers per sample from ``generator`` (or torch's default RNG).
"""
from __future__ import annotations

import torch

OPS = ("brightness", "contrast", "translation", "cutout")


def parse_policy(policy: str) -> tuple[str, ...]:
    ops = tuple(p.strip() for p in policy.split(",") if p.strip())
    unknown = [p for p in ops if p not in OPS]
    if unknown:
        raise ValueError(f"unknown DiffAugment op(s) {unknown}; known: {list(OPS)}")
    return ops


def _rand(n: int, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    return torch.rand(n, 1, 1, 1, device=x.device, dtype=x.dtype, generator=generator)


def brightness(x: torch.Tensor, generator=None, strength: float = 0.25) -> torch.Tensor:
    """Add a per-sample offset in [-strength, strength] x 2 (the image spans 2 units)."""
    return x + (_rand(x.shape[0], x, generator) - 0.5) * (4.0 * strength)


def contrast(x: torch.Tensor, generator=None) -> torch.Tensor:
    """Scale each sample about its own mean by a factor in [0.5, 1.5]."""
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (_rand(x.shape[0], x, generator) + 0.5) + mean


def translation(x: torch.Tensor, generator=None, ratio: float = 0.125, fill: float = -1.0) -> torch.Tensor:
    """Shift each sample by up to ``ratio`` of its height/width (integer pixels), filling with ``fill``."""
    n, c, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    if sh == 0 and sw == 0:
        return x
    dev = x.device
    ty = torch.randint(-sh, sh + 1, (n, 1, 1), device=dev, generator=generator)
    tx = torch.randint(-sw, sw + 1, (n, 1, 1), device=dev, generator=generator)
    gy = torch.arange(h, device=dev).view(1, h, 1) + ty + sh       # rows in the padded image
    gx = torch.arange(w, device=dev).view(1, 1, w) + tx + sw
    padded = torch.nn.functional.pad(x, (sw, sw, sh, sh), value=fill)
    b = torch.arange(n, device=dev).view(n, 1, 1)
    out = padded.permute(0, 2, 3, 1)[b, gy, gx]                     # (n, h, w, c)
    return out.permute(0, 3, 1, 2)


def cutout(x: torch.Tensor, generator=None, ratio: float = 0.5, fill: float = -1.0) -> torch.Tensor:
    """Fill one rectangle of ``ratio`` x the image size per sample (centre anywhere) with ``fill``."""
    n, c, h, w = x.shape
    ch, cw = max(1, int(h * ratio + 0.5)), max(1, int(w * ratio + 0.5))
    dev = x.device
    oy = torch.randint(0, h + (1 - ch % 2), (n, 1, 1), device=dev, generator=generator)
    ox = torch.randint(0, w + (1 - cw % 2), (n, 1, 1), device=dev, generator=generator)
    ys = torch.arange(h, device=dev).view(1, h, 1)
    xs = torch.arange(w, device=dev).view(1, 1, w)
    inside = ((ys - oy).abs() * 2 < ch) & ((xs - ox).abs() * 2 < cw)  # (n, h, w)
    return torch.where(inside.unsqueeze(1), torch.full_like(x, fill), x)


def diff_augment(x: torch.Tensor, ops: tuple[str, ...] | str, generator: torch.Generator | None = None,
                 fill: float = -1.0) -> torch.Tensor:
    """Apply the ops in policy order (brightness, contrast, translation, cutout as listed)."""
    if isinstance(ops, str):
        ops = parse_policy(ops)
    for op in ops:
        if op == "brightness":
            x = brightness(x, generator)
        elif op == "contrast":
            x = contrast(x, generator)
        elif op == "translation":
            x = translation(x, generator, fill=fill)
        elif op == "cutout":
            x = cutout(x, generator, fill=fill)
    return x
