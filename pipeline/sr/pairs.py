"""Training pairs: random full-resolution patches of real images and their area-downscaled copies.

Patch corners lie on the ``scale`` grid, so a patch's downscaled copy is exactly the matching window
of the whole image downscaled; a few hundred radiographs give millions of distinct patches."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def sample(images: torch.Tensor, patch: int, batch: int, scale: int, gen: torch.Generator,
           hflip: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """(hr, lr): ``batch`` patches (batch, 1, patch, patch) of ``images`` (n, 1, H, W) in [-1, 1]
    and their downscaled copies (batch, 1, patch/scale, patch/scale)."""
    n, _, H, W = images.shape
    if patch % scale or patch > H or patch > W:
        raise ValueError(f"patch {patch} must be a multiple of the scale {scale} and fit {H}x{W}")
    idx = torch.randint(0, n, (batch,), generator=gen)
    ys = torch.randint(0, (H - patch) // scale + 1, (batch,), generator=gen) * scale
    xs = torch.randint(0, (W - patch) // scale + 1, (batch,), generator=gen) * scale
    flip = torch.rand(batch, generator=gen) < 0.5 if hflip else torch.zeros(batch, dtype=torch.bool)
    hr = torch.stack([images[i, :, y:y + patch, x:x + patch] for i, y, x in zip(idx.tolist(), ys.tolist(), xs.tolist())])
    hr = torch.where(flip[:, None, None, None], hr.flip(-1), hr)
    return hr, F.avg_pool2d(hr, scale)
