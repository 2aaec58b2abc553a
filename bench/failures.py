"""The failure modes real GANs produce, made from real images: what every headline metric must rank
below unseen real radiographs (tests/metrics/test_evaluate.py, bench/metric_validation.py).

Each mode is built from a set of real images that the metric's reference set does not contain
(the "unseen" set) or from the mean of the training set, the way a generator trained on that set
fails:
  * ``noise``: pure Gaussian noise with the real pixels' mean and spread;
  * ``blurred``: unseen real images, Gaussian-blurred (1.5 px at 128 px width);
  * ``mean + noise s``: the training set's mean image plus white noise of strength ``s`` (grey
    levels in [0, 1]), the faint global layout under high-frequency noise of an undertrained GAN;
  * ``blotchy texture``: the mean image plus low-frequency (blurred) noise, blobs of about 1/32 of
    the width, the texture of a GAN that learned the coarse layout but no anatomy;
  * ``wrong scale``: unseen real images zoomed in by 1.25 about the centre (right layout, anatomy
    too big);
  * ``one mode``: one unseen image repeated, each copy jittered by a sub-pixel shift, a small
    brightness change and faint noise (mode collapse as a GAN shows it: not exact copies);
  * ``checkerboard``: unseen real images plus a fixed zero-mean 2 x 2 tile, the artefact of
    strided transposed convolutions (+0.06 on one pixel of four, -0.02 on the others);
  * ``brighter``: unseen real images, every grey level up by 0.08 (a global exposure error).
"""
from __future__ import annotations

import cv2
import numpy as np

NOISE_STRENGTHS = (0.02, 0.05, 0.1, 0.2)
FAILURE_MODES = ("noise", "blurred", *(f"mean + noise {s:g}" for s in NOISE_STRENGTHS), "blotchy texture",
                 "wrong scale", "one mode", "checkerboard", "brighter")


def _noise(rng: np.random.Generator, shape, mean, std) -> np.ndarray:
    return rng.normal(mean, std, shape).astype(np.float32)


def _zoom(img: np.ndarray, factor: float) -> np.ndarray:
    h, w = img.shape
    m = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), 0.0, factor)
    return cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def _shift(img: np.ndarray, dx: float, dy: float) -> np.ndarray:
    h, w = img.shape
    m = np.float32([[1, 0, dx], [0, 1, dy]])
    return cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def failure_sets(train: np.ndarray, unseen: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    """{mode: (n, H, W) float32 in [0, 1]} for every mode of :data:`FAILURE_MODES`; ``n`` is the
    number of ``unseen`` images; ``train`` gives the mean image and the grey-level statistics."""
    train = np.asarray(train, np.float32)
    unseen = np.asarray(unseen, np.float32)
    if train.ndim != 3 or unseen.ndim != 3 or train.shape[1:] != unseen.shape[1:] or len(unseen) < 2:
        raise ValueError(f"expected two stacks (n, H, W) of one image size, got {train.shape}, {unseen.shape}")
    rng = np.random.default_rng(seed)
    n, h, w = unseen.shape
    px = w / 128.0                      # sizes are stated at 128 px width
    mean_img = train.mean(axis=0)
    out: dict[str, np.ndarray] = {}
    out["noise"] = _noise(rng, unseen.shape, float(train.mean()), float(train.std()))
    sigma = max(0.8, 1.5 * px)
    out["blurred"] = np.stack([cv2.GaussianBlur(x, (0, 0), sigma) for x in unseen])
    for s in NOISE_STRENGTHS:
        out[f"mean + noise {s:g}"] = mean_img[None] + _noise(rng, unseen.shape, 0.0, s)
    blobs = np.stack([cv2.GaussianBlur(z, (0, 0), max(1.0, w / 32)) for z in _noise(rng, unseen.shape, 0.0, 1.0)])
    blobs /= blobs.std(axis=(1, 2), keepdims=True) + 1e-8
    out["blotchy texture"] = mean_img[None] + 0.1 * blobs
    out["wrong scale"] = np.stack([_zoom(x, 1.25) for x in unseen])
    base = unseen[0]
    out["one mode"] = np.stack([
        _shift(base, *rng.uniform(-0.5, 0.5, 2)) * rng.uniform(0.98, 1.02) + _noise(rng, base.shape, 0.0, 0.005)
        for _ in range(n)])
    tile = np.array([[1.0, -1 / 3], [-1 / 3, -1 / 3]], np.float32) * 0.06
    checker = np.tile(tile, (h // 2 + 1, w // 2 + 1))[:h, :w]
    out["checkerboard"] = unseen + checker[None]
    out["brighter"] = unseen + 0.08
    assert tuple(out) == FAILURE_MODES
    return {k: np.clip(v, 0.0, 1.0).astype(np.float32) for k, v in out.items()}


FULL_SIZE_MODES = ("blurred", "upscaled without detail", "ringing", "tiling seams", "repeated texture")


def full_size_failures(unseen: np.ndarray, scale: int, seed: int) -> dict[str, np.ndarray]:
    """{mode: (n, H, W) float32 in [0, 1]}: the failures of a super-resolution stage, made from
    unseen real full-size images (H and W multiples of ``scale``):
      * ``blurred``: Gaussian blur of ``scale / 2`` px;
      * ``upscaled without detail``: area-downscaled by ``scale`` and bicubic-upscaled back;
      * ``ringing``: the same through Lanczos, then sharpened until edges overshoot;
      * ``tiling seams``: tiles of ``16 x scale`` px each shifted by a small random grey offset
        (+-0.02) and moved by one pixel: the edges of tiles run without enough overlap;
      * ``repeated texture``: the upscaled image plus one tile of the image's own fine detail
        repeated over the whole image (a generator that learned one texture)."""
    unseen = np.asarray(unseen, np.float32)
    rng = np.random.default_rng(seed)
    n, h, w = unseen.shape
    small = [cv2.resize(im, (w // scale, h // scale), interpolation=cv2.INTER_AREA) for im in unseen]
    up = np.stack([cv2.resize(s, (w, h), interpolation=cv2.INTER_CUBIC) for s in small])
    lanczos = np.stack([cv2.resize(s, (w, h), interpolation=cv2.INTER_LANCZOS4) for s in small])
    blur = lambda im, s: cv2.GaussianBlur(im, (0, 0), s)
    out = {"blurred": np.stack([blur(im, scale / 2) for im in unseen]),
           "upscaled without detail": up,
           "ringing": np.stack([im + 1.5 * (im - blur(im, scale / 2)) for im in lanczos])}
    t = 16 * scale
    seams = unseen.copy()
    for k in range(n):
        for y in range(0, h, t):
            for x in range(0, w, t):
                tile = np.roll(unseen[k, y:y + t, x:x + t], 1, axis=int(rng.integers(0, 2)))
                seams[k, y:y + t, x:x + t] = tile + rng.uniform(-0.02, 0.02)
    out["tiling seams"] = seams
    detail = unseen - up
    rep = up.copy()
    p = 8 * scale
    for k in range(n):
        y, x = int(rng.integers(h // 4, max(h // 4 + 1, 3 * h // 4 - p))), int(rng.integers(w // 4, max(w // 4 + 1, 3 * w // 4 - p)))
        tile = detail[k, y:y + p, x:x + p]
        rep[k] += np.tile(tile, (h // p + 1, w // p + 1))[:h, :w]
    out["repeated texture"] = rep
    return {k: np.clip(v, 0, 1).astype(np.float32) for k, v in out.items()}
