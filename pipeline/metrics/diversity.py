"""Diversity: mean pairwise MS-SSIM within a set, compared with the same for real images.

MS-SSIM (Wang et al. 2003) rates how alike two images look in structure and contrast at several
scales (1 = identical). Averaged over random pairs *within* one set it measures how alike the
images of that set are to each other: a generator that collapses onto a few outputs gives a
higher mean than real radiographs; one that makes structureless noise a lower one (Odena et al.
2017 used it this way). The headline is the gap to real images, |synthetic - real|; lower is
better.

Windows are 7x7 Gaussians (sigma 1.5) and the number of scales is as many as the image size
allows (at most the standard five, with their weights renormalised), so small training
geometries such as 64x64 work.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from pipeline.core.config import param

MS_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


@dataclass(frozen=True)
class DiversityConfig:
    pairs: int = param(400, ge=1)     # random pairs per set (all pairs when the set has fewer)
    window: int = param(7, ge=1)
    sigma: float = param(1.5, gt=0)
    batch: int = param(64, ge=1)


def _window(size: int, sigma: float) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    g = torch.exp(-(x ** 2) / (2 * sigma ** 2))
    g = g / g.sum()
    return g


def _blur(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    k = g.numel()
    x = F.conv2d(x, g.view(1, 1, 1, k))
    return F.conv2d(x, g.view(1, 1, k, 1))


def scales_for(height: int, width: int, window: int) -> int:
    n = 1
    while n < len(MS_WEIGHTS) and min(height, width) // (2 ** n) >= window:
        n += 1
    return n


def ms_ssim(x: torch.Tensor, y: torch.Tensor, window: int = 7, sigma: float = 1.5) -> torch.Tensor:
    """MS-SSIM of image pairs (n, 1, H, W) in [0, 1] -> (n,)."""
    if x.shape != y.shape or x.ndim != 4:
        raise ValueError(f"expected two equal (n, 1, H, W) batches, got {tuple(x.shape)}, {tuple(y.shape)}")
    levels = scales_for(x.shape[-2], x.shape[-1], window)
    if min(x.shape[-2:]) < window:
        raise ValueError(f"images of {tuple(x.shape[-2:])} are smaller than the {window}px window")
    weights = torch.tensor(MS_WEIGHTS[:levels])
    weights = weights / weights.sum()
    g = _window(window, sigma)
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    values = []
    for level in range(levels):
        mx, my = _blur(x, g), _blur(y, g)
        sxx = _blur(x * x, g) - mx * mx
        syy = _blur(y * y, g) - my * my
        sxy = _blur(x * y, g) - mx * my
        cs = (2 * sxy + c2) / (sxx + syy + c2)
        if level == levels - 1:
            lum = (2 * mx * my + c1) / (mx * mx + my * my + c1)
            values.append((lum * cs).mean(dim=(1, 2, 3)))
        else:
            values.append(cs.mean(dim=(1, 2, 3)))
            x, y = F.avg_pool2d(x, 2), F.avg_pool2d(y, 2)
    stacked = torch.stack(values, dim=1).clamp_min(0.0)
    return torch.prod(stacked ** weights, dim=1)


def _pairs(n: int, count: int, rng: np.random.Generator) -> np.ndarray:
    i, j = np.triu_indices(n, k=1)
    all_pairs = np.stack([i, j], axis=1)
    if len(all_pairs) <= count:
        return all_pairs
    return all_pairs[rng.choice(len(all_pairs), count, replace=False)]


def mean_pairwise_ms_ssim(images: np.ndarray, cfg: DiversityConfig, seed: int) -> float:
    """Mean MS-SSIM over random pairs of distinct images of one stack (n, H, W) in [0, 1]."""
    images = np.asarray(images, dtype=np.float32)
    if images.ndim != 3 or len(images) < 2:
        raise ValueError(f"need a stack of at least two images (n, H, W), got shape {images.shape}")
    pairs = _pairs(len(images), cfg.pairs, np.random.default_rng(seed))
    t = torch.from_numpy(images).unsqueeze(1)
    values = []
    with torch.no_grad():
        for k in range(0, len(pairs), cfg.batch):
            p = pairs[k:k + cfg.batch]
            values.append(ms_ssim(t[p[:, 0]], t[p[:, 1]], cfg.window, cfg.sigma))
    return float(torch.cat(values).mean())


def diversity(reference: np.ndarray, candidate: np.ndarray, cfg: DiversityConfig, seed: int,
              reference_value: float | None = None) -> dict:
    """Mean pairwise MS-SSIM of both sets and the gap (candidate - reference).

    ``reference_value`` skips recomputing the reference set's own value."""
    ref = mean_pairwise_ms_ssim(reference, cfg, seed) if reference_value is None else reference_value
    cand = mean_pairwise_ms_ssim(candidate, cfg, seed + 1)
    return {"ms_ssim": cand, "ms_ssim_real": ref, "gap": cand - ref, "abs_gap": abs(cand - ref)}
