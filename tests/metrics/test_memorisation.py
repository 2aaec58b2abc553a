"""Memorisation check: planted exact and lightly augmented copies of training images are all
flagged; fresh real images (other 'patients') are not."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from pipeline.metrics.memorisation import MemorisationConfig, descriptors, nearest, threshold
from pipeline.demo.phantoms import render_opg

H, W = 64, 128


def _real(rng, n):
    return np.stack([render_opg(rng, H, W)[0] for _ in range(n)])


def _warp(img, dx=0.0, dy=0.0, angle=0.0, scale=1.0):
    m = cv2.getRotationMatrix2D((W / 2, H / 2), angle, scale)
    m[:, 2] += (dx, dy)
    return cv2.warpAffine(img, m, (W, H), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


AUGMENTS = {
    "exact": lambda im, r: im,
    "shift 3 px": lambda im, r: _warp(im, 3, -2),
    "rotate 2 deg": lambda im, r: _warp(im, angle=2.0),
    "zoom 3%": lambda im, r: _warp(im, scale=1.03),
    "mirror": lambda im, r: im[:, ::-1].copy(),
    "brighter, more contrast": lambda im, r: np.clip((im - 0.5) * 1.1 + 0.55, 0, 1),
    "noise 2%": lambda im, r: np.clip(im + r.normal(0, 0.02, im.shape), 0, 1).astype(np.float32),
    "blur": lambda im, r: cv2.GaussianBlur(im, (0, 0), 0.8),
    "jpeg-like mix": lambda im, r: np.clip(_warp(im, -2, 1, 1.0) * 0.95 + r.normal(0, 0.01, im.shape), 0, 1)
    .astype(np.float32),
}


@pytest.fixture(scope="module")
def sets():
    rng = np.random.default_rng(7)
    return _real(rng, 40), _real(rng, 16), _real(rng, 16), rng


def test_planted_copies_flagged_fresh_real_not(sets):
    train, heldout, fresh, rng = sets
    cfg = MemorisationConfig()
    dt = descriptors(train, cfg)
    _, held_d = nearest(descriptors(heldout, cfg), dt, cfg)
    thr = threshold(held_d, cfg)
    planted, sources = [], []
    for k, (name, aug) in enumerate(AUGMENTS.items()):
        for j in (k, k + 20):
            planted.append(aug(train[j], rng).astype(np.float32))
            sources.append(j)
    idx, dist = nearest(descriptors(planted, cfg), dt, cfg)
    report = {name: [round(float(x), 3) for x in dist[2 * k:2 * k + 2]] for k, name in enumerate(AUGMENTS)}
    print(f"\nthreshold {thr:.3f}; held-out nearest distances min {held_d.min():.3f} median "
          f"{np.median(held_d):.3f}; planted copies: {report}")
    assert (dist < thr).all(), f"copies not flagged (threshold {thr:.3f}): {report}"
    assert list(idx) == sources, "a copy was matched to the wrong training image"
    assert dist[0] == pytest.approx(0.0, abs=1e-6)
    _, fresh_d = nearest(descriptors(fresh, cfg), dt, cfg)
    print(f"fresh real nearest distances min {fresh_d.min():.3f}")
    assert (fresh_d >= thr).all(), "a real image of another patient was flagged as a copy"


def test_threshold_is_a_fraction_of_the_heldout_quantile():
    cfg = MemorisationConfig(quantile=0.5, factor=0.5)
    assert threshold(np.array([1.0, 2.0, 3.0]), cfg) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="held-out"):
        threshold(np.array([]), cfg)


def test_nearest_rejects_mismatched_shapes():
    cfg = MemorisationConfig()
    with pytest.raises(ValueError, match="shapes differ"):
        nearest(np.zeros((1, 32, 64), np.float32), np.zeros((1, 64, 64), np.float32), cfg)
    with pytest.raises(ValueError, match="no training images"):
        nearest(np.zeros((1, 32, 64), np.float32), np.zeros((0, 32, 64), np.float32), cfg)
