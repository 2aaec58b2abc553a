"""Classifier two-sample test (C2ST): can a small CNN tell real from synthetic radiographs?

Lopez-Paz & Oquab 2017. The two sets are balanced (the larger one subsampled), split into
stratified folds, and for each fold a small CNN is trained from scratch on the other folds and
scored on the held-out fold. Reported: the cross-validated accuracy (0.5 = the sets cannot be
told apart, 1.0 = always told apart), the AUC of the pooled out-of-fold scores, and the accuracy
band that chance alone reaches with this many images. For reference, dentists told real from
diffusion-made OPGs apart 68.5% of the time in a published reader study.

The network sees the image together with two detail bands (a difference-of-Gaussians pyramid made
at full size, :func:`bands`), so noise, blur and upsampling artefacts are one convolution from the
decision; without them it told a checkerboard over real OPGs from unseen real ones barely better
than two real sets apart (0.64 against 0.60 on one split of the 51 real OPGs at 36x64).

:func:`embed` gives a feature space that needs no download for :mod:`pipeline.metrics.prdc`: the same
network, left at a fixed random initialisation (seeded), one per band, its pooled activations at
every depth standardised later by the caller's reference set. Random convolutional embeddings are what
Naeem et al. 2020 recommend for images far from ImageNet; fixed weights keep every comparison of
one evaluation in one space.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from pipeline.core.config import param
from pipeline.core.device import torch_device


@dataclass(frozen=True)
class C2STConfig:
    folds: int = param(5, ge=2)
    repeats: int = param(1, ge=1)        # cross-validations with other fold draws; each image's logits averaged
    epochs: int = param(60, ge=1)        # at most this many epochs per fold ...
    patience: int = param(10, ge=1)      # ... ending when the loss on an inner hold-out has not improved for this many
    holdout: float = param(0.2, ge=0, lt=1)   # share of each fold's training images held out for that rule
    batch: int = param(16, ge=1)
    lr: float = param(1e-3, gt=0)
    width: int = param(16, ge=1)         # channels of the first conv block (doubles per block)
    max_side: int = param(64, ge=8)      # images are area-downsampled so their long side is at most this
    device: Literal["cpu", "cuda", "auto"] = "cpu"


BAND_GAIN = 4.0  # the detail bands are faint next to the image: scaled up to a comparable spread


def _binomial(x: torch.Tensor, times: int = 1) -> torch.Tensor:
    """``times`` passes of the separable 5-tap binomial blur (sigma 1 px each), reflected edges."""
    g = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0], dtype=x.dtype) / 16.0
    c = x.shape[1]
    for _ in range(times):
        x = F.conv2d(F.pad(x, (2, 2, 0, 0), mode="reflect"), g.view(1, 1, 1, 5).repeat(c, 1, 1, 1), groups=c)
        x = F.conv2d(F.pad(x, (0, 0, 2, 2), mode="reflect"), g.view(1, 1, 5, 1).repeat(c, 1, 1, 1), groups=c)
    return x


def bands(x: torch.Tensor) -> torch.Tensor:
    """(n, 1, h, w) in [0, 1] -> (n, 3, h, w): the image (centred, 2x - 1), its fine detail band
    (image minus a 1 px blur: edges, grain, noise, checkerboards) and its middle band (1 px blur
    minus a 2 px blur: small structures such as tooth outlines and trabeculae), both x BAND_GAIN.
    A difference-of-Gaussians pyramid at full resolution: noise, blur and artefacts change the
    bands much more than the image, so a network that sees them sees fine structure directly."""
    g1 = _binomial(x)
    g2 = _binomial(g1, 3)
    return torch.cat([x * 2.0 - 1.0, BAND_GAIN * (x - g1), BAND_GAIN * (g1 - g2)], dim=1)


class SmallCNN(nn.Module):
    """Four conv blocks (3x3, LeakyReLU, 2x2 average pool) on the image and its two detail bands
    (:func:`bands`); the mean and spread of every block's channels feed one linear logit, so image
    statistics at every scale are one step from the decision (a few dozen images suffice to learn
    "blurred", "noisy" or "too bright"). Input: :func:`prepare`'s three bands, or one of them."""

    def __init__(self, width: int = 16, in_channels: int = 3) -> None:
        super().__init__()
        self.in_channels = in_channels
        chans = [in_channels, width, width * 2, width * 4, width * 4]
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.Conv2d(chans[i], chans[i + 1], 3, padding=1), nn.LeakyReLU(0.2))
            for i in range(4))
        self.norm = nn.BatchNorm1d(2 * sum(chans[1:]))
        self.head = nn.Linear(2 * sum(chans[1:]), 1)

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Activations of every block (before pooling) of prepared bands (n, in_channels, h, w)."""
        out = []
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
    """(n, H, W) in [0, 1] -> (n, 3, h, w) float tensor of the :func:`bands`, made at full size and
    then area-downsampled so the long side is at most ``max_side``. Downsampled, a detail band
    becomes its local RMS (the square root of the area-averaged square): averaging the signed band
    would cancel exactly the fine structure it is there to show (a 2 x 2 checkerboard averages to
    nothing), its energy does not."""
    images = np.asarray(images, dtype=np.float32)
    if images.ndim != 3 or len(images) == 0:
        raise ValueError(f"expected a non-empty stack (n, H, W), got shape {images.shape}")
    h, w = images.shape[1:]
    f = max(h, w) / max_side
    size = (max(8, round(h / f)), max(8, round(w / f))) if f > 1 else None
    out = []
    for k in range(0, len(images), 256):
        b = bands(torch.from_numpy(np.ascontiguousarray(images[k:k + 256])).unsqueeze(1))
        if size is not None:
            b = torch.cat([F.interpolate(b[:, :1], size=size, mode="area"),
                           F.interpolate(b[:, 1:] ** 2, size=size, mode="area").sqrt()], dim=1)
        out.append(b)
    return torch.cat(out)


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


def _batches(n: int, batch: int, gen: torch.Generator):
    perm = torch.randperm(n, generator=gen)
    return [perm[k:k + batch] for k in range(0, n, batch)]


def _train(x: torch.Tensor, y: torch.Tensor, cfg: C2STConfig, seed: int, device: torch.device) -> tuple[SmallCNN, int]:
    """A CNN trained on ``x`` until its loss on a stratified inner hold-out (``cfg.holdout`` of
    ``x``) has not improved for ``cfg.patience`` epochs (at most ``cfg.epochs``); the weights of its
    best epoch, and the number of epochs run. A fixed epoch count under-trains on a few dozen images
    and over-trains on thousands."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    labels = y.numpy().astype(bool)
    inner = np.zeros(len(y), dtype=bool)
    for cls in (False, True):
        idx = np.flatnonzero(labels == cls)
        k = int(round(cfg.holdout * len(idx)))
        if 0 < k < len(idx):
            inner[np.random.default_rng(seed).choice(idx, k, replace=False)] = True
    fit = torch.from_numpy(np.flatnonzero(~inner))
    val = torch.from_numpy(np.flatnonzero(inner))
    xv, yv = x[val].to(device), y[val].to(device)
    net = SmallCNN(cfg.width).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    best, best_state, since, epoch = math.inf, None, 0, 0
    for epoch in range(1, cfg.epochs + 1):
        net.train()
        for idx in _batches(len(fit), cfg.batch, gen):
            if len(idx) < 2:   # BatchNorm needs two images
                continue
            xb, yb = x[fit[idx]], y[fit[idx]]
            flip = torch.rand(len(idx), generator=gen) < 0.5  # left-right mirror: an OPG stays an OPG
            xb = torch.where(flip[:, None, None, None], xb.flip(-1), xb).to(device)
            loss = F.binary_cross_entropy_with_logits(net(xb), yb.to(device))
            opt.zero_grad()
            loss.backward()
            opt.step()
        if len(val) == 0:
            continue
        net.eval()
        with torch.no_grad():
            vloss = float(F.binary_cross_entropy_with_logits(net(xv), yv))
        if vloss < best - 1e-4:
            best, since = vloss, 0
            best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
        else:
            since += 1
            if since >= cfg.patience:
                break
    if best_state is not None:
        net.load_state_dict(best_state)
    return net.eval(), epoch


def _folds(n: int, groups: np.ndarray | None, folds: int, rng: np.random.Generator) -> np.ndarray:
    """A fold per item: ``n`` items spread evenly, or whole groups (e.g. the patches of one image)."""
    if groups is None:
        return rng.permutation(np.arange(n) % folds)
    uniq, inv = np.unique(groups, return_inverse=True)
    return rng.permutation(np.arange(len(uniq)) % folds)[inv]


def c2st(real: np.ndarray, synthetic: np.ndarray, cfg: C2STConfig, seed: int,
         groups: np.ndarray | None = None) -> dict:
    """Cross-validated accuracy and AUC of a CNN telling ``real`` (label 0) from ``synthetic`` (1).

    The sets are balanced (the larger one subsampled); ``cfg.repeats`` stratified ``cfg.folds``-fold
    cross-validations with other fold draws each give every image one out-of-fold logit, and an
    image's logits are averaged over the repeats before it is scored. ``groups`` (one label per
    item, both sets of equal size then): items of a group share a fold, so patches of one image never
    sit on both sides of a split."""
    rng = np.random.default_rng(seed)
    xr, xs = prepare(real, cfg.max_side), prepare(synthetic, cfg.max_side)
    if xr.shape[1:] != xs.shape[1:]:
        raise ValueError(f"image sizes differ: {tuple(xr.shape[2:])} vs {tuple(xs.shape[2:])}")
    n = min(len(xr), len(xs))
    if groups is not None and not len(xr) == len(xs) == len(groups):
        raise ValueError(f"groups need sets of equal size: {len(xr)} real, {len(xs)} synthetic, {len(groups)} groups")
    if n < cfg.folds:
        raise ValueError(f"C2ST with {cfg.folds} folds needs at least {cfg.folds} images per set, got {n}")
    if groups is None:
        xr = xr[np.sort(rng.choice(len(xr), n, replace=False))]
        xs = xs[np.sort(rng.choice(len(xs), n, replace=False))]
    x = torch.cat([xr, xs])
    y = torch.cat([torch.zeros(n), torch.ones(n)])
    device = torch_device(cfg.device)
    scores = np.zeros(2 * n)
    fold_acc, epochs = [], []
    for r in range(cfg.repeats):
        # stratified folds: each fold holds the same number of images of each class
        fold = np.empty(2 * n, dtype=int)
        fold[:n] = _folds(n, groups, cfg.folds, rng)
        fold[n:] = _folds(n, groups, cfg.folds, rng)
        for f in range(cfg.folds):
            test = torch.from_numpy(np.flatnonzero(fold == f))
            train = torch.from_numpy(np.flatnonzero(fold != f))
            net, ran = _train(x[train], y[train], cfg, seed * 1000 + r * 100 + f, device)
            epochs.append(ran)
            with torch.no_grad():
                s = net(x[test].to(device)).cpu().numpy()
            scores[test.numpy()] += s / cfg.repeats
            fold_acc.append(float(((s > 0) == y[test].numpy().astype(bool)).mean()))
    labels = y.numpy().astype(bool)
    correct = (scores > 0) == labels
    accuracy = float(correct.mean())
    half_band = 1.96 * math.sqrt(0.25 / (2 * n))
    return {
        "accuracy": accuracy,
        "auc": auc(scores, labels),
        "fold_accuracy": fold_acc,
        "epochs": epochs,
        "images_per_class": n,
        "chance_band": [0.5 - half_band, 0.5 + half_band],
        "correct": correct,
        "scores": scores,
    }
