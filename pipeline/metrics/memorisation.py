"""Memorisation check: is a synthetic image a near-copy of a training image?

Every image is reduced to a small descriptor that forgives what a copy may have picked up on the
way (noise, slight blur, a brightness or contrast change, a few pixels of shift, a degree or two
of rotation, a slight zoom, a left-right mirror, which training applies to its images):
  1. area-downsampled so its long side is ``side`` pixels and smoothed (noise and fine texture
     average out);
  2. standardised to zero mean and unit spread (brightness and contrast drop out).
Search: a coarse pass (half the resolution, half-pixel steps of shift up to ``shift`` descriptor
pixels, and the mirror; one matrix product per shift) keeps the ``candidates`` closest training
images of each synthetic image; each is then aligned onto it (affine ECC registration, both orientations) and the distance
is the root-mean-square difference of the aligned descriptors (inside a margin). Each synthetic
image gets its nearest training image and that distance.

The threshold comes from real data: held-out real images (other patients, never trained on) are by
definition not copies, so their distances to the nearest training image show how close two
*different* radiographs get. ``threshold = factor * quantile(held-out distances, quantile)``;
synthetic images below it are flagged as near-copies and never released.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from pipeline.core.config import param


@dataclass(frozen=True)
class MemorisationConfig:
    side: int = param(64, ge=16)          # long side of the descriptor (pixels)
    smooth: float = param(1.0, ge=0)      # Gaussian sigma on the descriptor (pixels)
    shift: int = param(4, ge=0)           # coarse search: tolerated misalignment, descriptor pixels each way
    mirror: bool = True                   # also match the left-right mirror image
    candidates: int = param(8, ge=1)      # training images per synthetic image aligned precisely
    quantile: float = param(0.05, ge=0, le=1)  # of the held-out-to-train nearest distances ...
    factor: float = param(0.75, gt=0)     # ... times this = the near-copy threshold
    chunk: int = param(256, ge=1)         # query images per distance block (memory only)


def descriptor_shape(height: int, width: int, side: int) -> tuple[int, int]:
    f = max(height, width) / side
    return max(8, round(height / f)), max(8, round(width / f))


def _standardise(x: np.ndarray) -> np.ndarray:
    return ((x - x.mean()) / (x.std() + 1e-3)).astype(np.float32)


def descriptor(img: np.ndarray, cfg: MemorisationConfig) -> np.ndarray:
    """(h, w) float32: area-downsampled, smoothed, standardised."""
    img = np.asarray(img, dtype=np.float32)
    h, w = descriptor_shape(*img.shape, cfg.side)
    small = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)
    if cfg.smooth > 0:
        small = cv2.GaussianBlur(small, (0, 0), cfg.smooth)
    return _standardise(small)


def descriptors(images, cfg: MemorisationConfig) -> np.ndarray:
    """Descriptors of an iterable of images (n, H, W) -> (n, h, w)."""
    return np.stack([descriptor(im, cfg) for im in images])


def _pool2(x: np.ndarray) -> np.ndarray:
    """2x2 average pooling of a stack (n, h, w) (odd edges dropped)."""
    n, h, w = x.shape
    x = x[:, :h - h % 2, :w - w % 2]
    return x.reshape(n, h // 2, 2, w // 2, 2).mean(axis=(2, 4))


def _windows(desc: np.ndarray, s: int, mirror: bool) -> np.ndarray:
    """Inner windows of ``desc`` shifted by -s..s descriptor pixels (and mirrored), each pooled 2x2
    (a half-resolution comparison at half-pixel steps): (variants, n, d)."""
    n, h, w = desc.shape
    sources = [desc, desc[:, :, ::-1]] if mirror else [desc]
    out = []
    for src in sources:
        for dy in range(-s, s + 1):
            for dx in range(-s, s + 1):
                out.append(_pool2(src[:, s + dy:h - s + dy, s + dx:w - s + dx]).reshape(n, -1))
    return np.stack(out)


def _shortlist(query: np.ndarray, train: np.ndarray, cfg: MemorisationConfig) -> np.ndarray:
    """(m, k) indices of the training images closest to each query under shifts and mirror."""
    s = cfg.shift
    if min(query.shape[1:]) <= 2 * s + 2:
        raise ValueError(f"descriptor {query.shape[1:]} too small for a shift of {s}")
    h, w = query.shape[1:]
    q = _pool2(query[:, s:h - s, s:w - s]).reshape(len(query), -1).astype(np.float64)  # the unshifted window
    t = _windows(train, s, cfg.mirror).astype(np.float64)   # (v, n, d)
    tt = (t * t).sum(axis=2)                                # (v, n)
    k = min(cfg.candidates, len(train))
    out = np.empty((len(q), k), dtype=np.int64)
    for a in range(0, len(q), cfg.chunk):
        qc = q[a:a + cfg.chunk]
        best = np.full((len(qc), len(train)), np.inf)
        for tv, ttv in zip(t, tt):                          # min over shifts and mirror: (m, n)
            np.minimum(best, ttv[None, :] - 2.0 * (qc @ tv.T), out=best)
        part = np.argpartition(best, k - 1, axis=1)[:, :k]
        out[a:a + len(qc)] = np.take_along_axis(part, np.argsort(np.take_along_axis(best, part, 1), 1), 1)
    return out


_ECC_CRITERIA = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 50, 1e-5)


def aligned_distance(query: np.ndarray, train: np.ndarray, mirror: bool = True) -> float:
    """RMS difference of two descriptors after affine alignment of ``train`` onto ``query``
    (and of its mirror image), inside a margin of 1/16 of the long side."""
    h, w = query.shape
    m = max(1, max(h, w) // 16)
    best = np.inf
    for t in ([train, np.ascontiguousarray(train[:, ::-1])] if mirror else [train]):
        warp = np.eye(2, 3, dtype=np.float32)
        try:
            _, warp = cv2.findTransformECC(query, t, warp, cv2.MOTION_AFFINE, _ECC_CRITERIA, None, 1)
            t = cv2.warpAffine(t, warp, (w, h), flags=cv2.INTER_LINEAR + cv2.WARP_INVERSE_MAP,
                               borderMode=cv2.BORDER_REPLICATE)
        except cv2.error:  # no convergence: compare unaligned
            pass
        best = min(best, float(np.sqrt(np.mean((query[m:-m, m:-m] - t[m:-m, m:-m]) ** 2))))
    return best


def nearest(query: np.ndarray, train: np.ndarray, cfg: MemorisationConfig) -> tuple[np.ndarray, np.ndarray]:
    """For each query descriptor its nearest train descriptor: (index (m,), distance (m,))."""
    if len(train) == 0:
        raise ValueError("memorisation check: no training images to compare with")
    if query.shape[1:] != train.shape[1:]:
        raise ValueError(f"descriptor shapes differ: {query.shape[1:]} vs {train.shape[1:]}")
    short = _shortlist(query, train, cfg)
    idx = np.empty(len(query), dtype=np.int64)
    dist = np.empty(len(query))
    for i, (q, cands) in enumerate(zip(query, short)):
        d = [aligned_distance(q, train[j], cfg.mirror) for j in cands]
        best = int(np.argmin(d))
        idx[i], dist[i] = cands[best], d[best]
    return idx, dist


def threshold(heldout_distances: np.ndarray, cfg: MemorisationConfig) -> float:
    """Near-copy threshold from the held-out-to-train nearest distances."""
    heldout_distances = np.asarray(heldout_distances, dtype=np.float64)
    if heldout_distances.size == 0:
        raise ValueError("memorisation check: no held-out images to set the threshold with")
    return float(cfg.factor * np.quantile(heldout_distances, cfg.quantile))
