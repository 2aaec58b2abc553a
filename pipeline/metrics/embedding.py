"""The random-CNN embedding that precision, recall, density and coverage measure distances in (whole
images in ``evaluate``, full-resolution patches in :mod:`pipeline.metrics.patches`); its settings are
``evaluate.prdc``."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from pipeline.metrics.c2st import SmallCNN, prepare
from pipeline.metrics.prdc import PRDCConfig


def embed(images: np.ndarray, cfg: PRDCConfig, seed: int, max_side: int | None = None) -> np.ndarray:
    """Fixed random-CNN features (n, 3 d), one block of d columns per band of :func:`bands` (the
    image, its fine and its middle detail band), each from its own seeded random network: mean and
    std of every conv block's activations, plus the last block's activations averaged over a
    2 x 4 grid (where things are). After :func:`standardise` every band weighs the same in a
    distance, so a set with the right layout but wrong fine structure (noise over the mean image,
    checkerboards, blur) lies as far from real images as one with the wrong layout."""
    x = prepare(images, cfg.max_side if max_side is None else max_side)
    groups = []
    for b in range(3):
        torch.manual_seed(seed * 3 + b)
        net = SmallCNN(cfg.width, in_channels=1).eval()
        out = []
        with torch.inference_mode():
            for k in range(0, len(x), 64):
                feats = net.features(x[k:k + 64, b:b + 1])
                out.append(torch.cat([net.pooled(feats), F.adaptive_avg_pool2d(feats[-1], (2, 4)).flatten(1)], dim=1))
        groups.append(torch.cat(out))
    return torch.cat(groups, dim=1).numpy().astype(np.float32)


def standardise(reference: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    """Scale every feature by the reference set's mean and std (so no feature dominates distances),
    in float64 (a nearly constant feature would otherwise carry float32 rounding into distances)."""
    reference = np.asarray(reference, np.float64)
    mean = reference.mean(axis=0, keepdims=True)
    std = reference.std(axis=0, keepdims=True) + 1e-6
    return [(np.asarray(a, np.float64) - mean) / std for a in (reference, *others)]
