"""C2ST: about 0.5 for two real samples, near 1.0 for real vs blurred; AUC; the embedding."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from pipeline.metrics.c2st import C2STConfig, auc, c2st, prepare, BAND_GAIN
from pipeline.metrics.embedding import embed, standardise
from pipeline.metrics.prdc import PRDCConfig
from pipeline.demo.phantoms import render_opg


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def sets():
    rng = np.random.default_rng(11)
    a = np.stack([render_opg(rng, 64, 128)[0] for _ in range(24)])
    b = np.stack([render_opg(rng, 64, 128)[0] for _ in range(24)])
    return a, b


def test_real_vs_real_is_near_chance_and_blurred_near_one(sets):
    a, b = sets
    cfg = C2STConfig(epochs=15)
    real = c2st(a, b, cfg, 3)
    blurred = c2st(a, np.stack([cv2.GaussianBlur(x, (0, 0), 1.5) for x in b]), cfg, 3)
    print(f"\nC2ST real vs real: accuracy {real['accuracy']:.3f} AUC {real['auc']:.3f} "
          f"(chance band {real['chance_band'][0]:.2f}-{real['chance_band'][1]:.2f}); "
          f"real vs blurred: accuracy {blurred['accuracy']:.3f} AUC {blurred['auc']:.3f}")
    # chance alone, 24 images a class: 48 decisions, accuracy sd sqrt(0.25 / 48) = 0.07217; the 95 %
    # band is 0.5 -+ 1.96 x 0.07217 = 0.5 -+ 0.14145 (worked by hand, not read from the code)
    assert real["chance_band"] == pytest.approx([0.35855, 0.64145], abs=1e-5)
    assert 0.35855 <= real["accuracy"] <= 0.64145
    assert blurred["accuracy"] >= 0.95 and blurred["auc"] >= 0.95
    assert len(real["fold_accuracy"]) == 5 and real["images_per_class"] == 24


def test_auc_ranks_with_ties():
    assert auc(np.array([3.0, 2.0, 1.0, 0.0]), np.array([1, 1, 0, 0])) == 1.0
    assert auc(np.array([0.0, 1.0, 2.0, 3.0]), np.array([1, 1, 0, 0])) == 0.0
    assert auc(np.array([1.0, 1.0, 1.0, 1.0]), np.array([1, 0, 1, 0])) == 0.5


def test_too_few_images_is_a_clear_error(sets):
    a, _ = sets
    with pytest.raises(ValueError, match="at least 5"):
        c2st(a[:3], a[3:6], C2STConfig(), 0)


def test_embedding_is_seeded_and_standardised(sets):
    a, b = sets
    e1, e2 = embed(a, PRDCConfig(), 5), embed(a, PRDCConfig(), 5)
    assert np.array_equal(e1, e2) and e1.shape[0] == len(a)
    assert not np.allclose(embed(a, PRDCConfig(), 6), e1)  # another seed: another random network
    eb = embed(b, PRDCConfig(), 5)
    assert embed(a, PRDCConfig(), 5, max_side=32).shape == e1.shape   # pooled features: any size
    ra, rb = standardise(e1, eb)
    assert np.allclose(ra.mean(0), 0, atol=1e-4)
    assert not np.allclose(rb.mean(0), 0, atol=1e-2)
    # worked by hand: reference columns (0, 2) and (2, 6) have means 1 and 4, standard deviations 1
    # and 2; the other set is scaled by the reference's statistics, not its own
    ref, other = np.array([[0.0, 2.0], [2.0, 6.0]], np.float32), np.array([[3.0, 0.0], [1.0, 4.0]], np.float32)
    sr, so = standardise(ref, other)
    assert sr.dtype == so.dtype == np.float64
    np.testing.assert_allclose(sr, [[-1.0, -1.0], [1.0, 1.0]], rtol=1e-5)
    np.testing.assert_allclose(so, [[2.0, -2.0], [0.0, 0.0]], rtol=1e-5, atol=1e-9)


def test_prepare_makes_bands_and_keeps_fine_detail_when_downsampling(sets):
    a, _ = sets                                   # 64 x 128 phantoms
    checker = np.where((np.indices(a.shape[1:]).sum(0) % 2) == 0, 0.03, -0.03).astype(np.float32)
    clean, art = prepare(a, 64), prepare(a + checker, 64)
    assert clean.shape == (len(a), 3, 32, 64)
    # the image band barely changes (the checkerboard averages out); the fine band is its local RMS, so
    # the checkerboard's energy (0.03 x gain 4) adds in quadrature to the phantoms' own grain
    assert torch.allclose(clean[:, 0], art[:, 0], atol=1e-3)
    expected = torch.sqrt(clean[:, 1] ** 2 + (0.03 * BAND_GAIN) ** 2).mean()
    assert art[:, 1].mean() > 1.25 * clean[:, 1].mean() and abs(art[:, 1].mean() - expected) < 0.2 * expected
    full = prepare(a, 128)                        # no downsampling: the signed bands as they are
    assert full.shape == (len(a), 3, 64, 128) and full[:, 1].min() < 0


def test_training_stops_when_the_inner_hold_out_stops_improving(sets):
    """Two samples of one kind: nothing to learn, so every fold stops after ``patience`` epochs
    without improvement, long before the cap; the per-image outcomes give the accuracy."""
    a, b = sets
    r = c2st(a, b, C2STConfig(epochs=200, patience=4, repeats=2, max_side=64), 3)
    assert len(r["epochs"]) == 10 and max(r["epochs"]) < 60
    assert r["correct"].shape == (48,) and r["correct"].mean() == r["accuracy"]
    assert r["scores"].shape == (48,)
