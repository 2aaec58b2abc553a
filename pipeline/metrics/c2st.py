"""Classifier two-sample test (C2ST): can a small CNN tell real from synthetic radiographs?

Lopez-Paz & Oquab 2017. The two sets are balanced (the larger one subsampled), split into
stratified folds, and for each fold a small CNN is trained from scratch on the other folds and
scored on the held-out fold. Reported: the cross-validated accuracy (0.5 = the sets cannot be
told apart, 1.0 = always told apart), the AUC of the pooled out-of-fold scores, and the accuracy
band that chance alone reaches with this many images. For reference, dentists told real from
diffusion-made OPGs apart 68.5% of the time in a published reader study.

:func:`embed` gives a feature space that needs no download for :mod:`pipeline.metrics.prdc`: the same
network, left at a fixed random initialisation (seeded), its pooled activations at every depth
standardised later by the caller's reference set. Random convolutional embeddings are what
Naeem et al. 2020 recommend for images far from ImageNet; fixed weights keep every comparison of
one evaluation in one space.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from pipeline.core.device import torch_device


@dataclass(frozen=True)
class C2STConfig:
    folds: int = 5
    epochs: int = 15
    batch: int = 16
    lr: float = 1e-3
    width: int = 16          # channels of the first conv block (doubles per block)
    max_side: int = 64       # images are area-downsampled so their long side is at most this
    device: str = "cpu"      # cpu | cuda | auto


class SmallCNN(nn.Module):
    """Four conv blocks (3x3, LeakyReLU, 2x2 average pool); the mean and spread of every block's
    channels feed one linear logit, so image statistics at every scale are one step from the
    decision (a few dozen images suffice to learn "blurred" or "too bright")."""

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        chans = [1, width, width * 2, width * 4, width * 4]
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.Conv2d(chans[i], chans[i + 1], 3, padding=1), nn.LeakyReLU(0.2))
            for i in range(4))
        self.norm = nn.BatchNorm1d(2 * sum(chans[1:]))
        self.head = nn.Linear(2 * sum(chans[1:]), 1)

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Activations of every block (before pooling)."""
        out = []
        x = x * 2.0 - 1.0
        for i, block in enumerate(self.blocks):
            x = block(x)
            out.append(x)
            if i < len(self.blocks) - 1:
                x = F.avg_pool2d(x, 2)
        return out

    @staticmethod
    def pooled(feats: list[torch.Tensor]) -> torch.Tensor:
        """Mean and standard deviation of every channel of every block: grey level, contrast and
        sharpness at four scales."""
        return torch.cat([torch.cat([f.mean(dim=(2, 3)), f.std(dim=(2, 3))], dim=1) for f in feats], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.norm(self.pooled(self.features(x)))).squeeze(1)


def prepare(images: np.ndarray, max_side: int) -> torch.Tensor:
    """(n, H, W) in [0, 1] -> (n, 1, h, w) float tensor, area-downsampled to ``max_side``."""
    images = np.asarray(images, dtype=np.float32)
    if images.ndim != 3 or len(images) == 0:
        raise ValueError(f"expected a non-empty stack (n, H, W), got shape {images.shape}")
    h, w = images.shape[1:]
    f = max(h, w) / max_side
    if f > 1:
        size = (max(8, round(w / f)), max(8, round(h / f)))
        images = np.stack([cv2.resize(im, size, interpolation=cv2.INTER_AREA) for im in images])
    return torch.from_numpy(np.ascontiguousarray(images)).unsqueeze(1)


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U, ties counted half)."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels).astype(bool)
    pos, neg = scores[labels], scores[~labels]
    if len(pos) == 0 or len(neg) == 0:
        raise ValueError("AUC needs both classes")
    order = np.argsort(np.concatenate([pos, neg]), kind="mergesort")
    allv = np.concatenate([pos, neg])[order]
    ranks = np.empty(len(allv))
    # average ranks over ties
    i = 0
    while i < len(allv):
        j = i
        while j + 1 < len(allv) and allv[j + 1] == allv[i]:
            j += 1
        ranks[i:j + 1] = (i + j) / 2 + 1
        i = j + 1
    r = np.empty(len(allv))
    r[order] = ranks
    u = r[:len(pos)].sum() - len(pos) * (len(pos) + 1) / 2
    return float(u / (len(pos) * len(neg)))


def _train(x: torch.Tensor, y: torch.Tensor, cfg: C2STConfig, seed: int, device: torch.device) -> SmallCNN:
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    net = SmallCNN(cfg.width).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    n = len(x)
    for _ in range(cfg.epochs):
        perm = torch.randperm(n, generator=gen)
        for k in range(0, n, cfg.batch):
            idx = perm[k:k + cfg.batch]
            xb, yb = x[idx], y[idx]
            flip = torch.rand(len(idx), generator=gen) < 0.5  # left-right mirror: an OPG stays an OPG
            xb = torch.where(flip[:, None, None, None], xb.flip(-1), xb).to(device)
            loss = F.binary_cross_entropy_with_logits(net(xb), yb.to(device))
            opt.zero_grad()
            loss.backward()
            opt.step()
    return net.eval()


def c2st(real: np.ndarray, synthetic: np.ndarray, cfg: C2STConfig, seed: int) -> dict:
    """Cross-validated accuracy and AUC of a CNN telling ``real`` (label 0) from ``synthetic`` (1)."""
    rng = np.random.default_rng(seed)
    xr, xs = prepare(real, cfg.max_side), prepare(synthetic, cfg.max_side)
    if xr.shape[1:] != xs.shape[1:]:
        raise ValueError(f"image sizes differ: {tuple(xr.shape[2:])} vs {tuple(xs.shape[2:])}")
    n = min(len(xr), len(xs))
    if n < cfg.folds:
        raise ValueError(f"C2ST with {cfg.folds} folds needs at least {cfg.folds} images per set, got {n}")
    xr = xr[np.sort(rng.choice(len(xr), n, replace=False))]
    xs = xs[np.sort(rng.choice(len(xs), n, replace=False))]
    x = torch.cat([xr, xs])
    y = torch.cat([torch.zeros(n), torch.ones(n)])
    # stratified folds: each fold holds the same number of images of each class
    fold = np.empty(2 * n, dtype=int)
    fold[:n] = rng.permutation(np.arange(n) % cfg.folds)
    fold[n:] = rng.permutation(np.arange(n) % cfg.folds)
    device = torch_device(cfg.device)
    scores = np.empty(2 * n)
    fold_acc = []
    for f in range(cfg.folds):
        test = torch.from_numpy(np.flatnonzero(fold == f))
        train = torch.from_numpy(np.flatnonzero(fold != f))
        net = _train(x[train], y[train], cfg, seed * 1000 + f, device)
        with torch.no_grad():
            s = net(x[test].to(device)).cpu().numpy()
        scores[test.numpy()] = s
        fold_acc.append(float(((s > 0) == y[test].numpy().astype(bool)).mean()))
    labels = y.numpy().astype(bool)
    accuracy = float(((scores > 0) == labels).mean())
    half_band = 1.96 * math.sqrt(0.25 / (2 * n))
    return {
        "accuracy": accuracy,
        "auc": auc(scores, labels),
        "fold_accuracy": fold_acc,
        "images_per_class": n,
        "chance_band": [0.5 - half_band, 0.5 + half_band],
    }


def embed(images: np.ndarray, cfg: C2STConfig, seed: int) -> np.ndarray:
    """Fixed random-CNN features (n, d): mean and std of every block's activations, plus the last
    block's activations averaged over a 2 x 4 grid (where things are)."""
    torch.manual_seed(seed)
    net = SmallCNN(cfg.width).eval()
    x = prepare(images, cfg.max_side)
    out = []
    with torch.no_grad():
        for k in range(0, len(x), 64):
            feats = net.features(x[k:k + 64])
            out.append(torch.cat([net.pooled(feats), F.adaptive_avg_pool2d(feats[-1], (2, 4)).flatten(1)], dim=1))
    return torch.cat(out).numpy().astype(np.float32)


def standardise(reference: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    """Scale every feature by the reference set's mean and std (so no feature dominates distances)."""
    mean = reference.mean(axis=0, keepdims=True)
    std = reference.std(axis=0, keepdims=True) + 1e-6
    return [(a - mean) / std for a in (reference, *others)]
