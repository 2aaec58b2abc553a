"""Sliced Wasserstein distance on Laplacian-pyramid patches: ~0 for one set against itself, growing
with a shift of grey levels and with added noise (finest level first), and the pyramid is exact."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from pipeline.demo.phantoms import render_opg
from pipeline.metrics.swd import SWDConfig, laplacian_pyramid, sliced_wasserstein, swd

CFG = SWDConfig(patches_per_level=2048, directions=64, repeats=2)


@pytest.fixture(scope="module")
def sets():
    rng = np.random.default_rng(4)
    draw = lambda n: np.stack([cv2.resize(render_opg(rng, 128, 256)[0], (128, 64), interpolation=cv2.INTER_AREA)
                               for _ in range(n)]).astype(np.float32)
    return draw(24), draw(24)


def test_pyramid_levels_add_up_to_the_image():
    img = np.random.default_rng(0).random((64, 128)).astype(np.float32)
    levels = laplacian_pyramid(img, 16)
    assert [lv.shape for lv in levels] == [(64, 128), (32, 64), (16, 32)]
    rec = levels[-1]
    for lv in reversed(levels[:-1]):
        rec = cv2.pyrUp(rec, dstsize=(lv.shape[1], lv.shape[0])) + lv
    assert np.allclose(rec, img, atol=1e-5)


def test_identical_sets_are_near_zero_and_shifted_sets_grow(sets):
    a, b = sets
    same = swd(a, a, CFG, 1)["mean"]
    real = swd(a, b, CFG, 1)["mean"]          # two real samples: the reference a generator aims at
    shifted = [swd(a, np.clip(a + d, 0, 1), CFG, 1)["mean"] for d in (0.05, 0.1, 0.2)]
    print(f"\nSWD same {same:.1f}, real vs real {real:.1f}, shifted {[round(s, 1) for s in shifted]}")
    assert same < 0.5 * real
    assert real < shifted[0] < shifted[1] < shifted[2]


def test_noise_shows_on_the_finest_level_first(sets):
    a, b = sets
    rng = np.random.default_rng(5)
    real = swd(a, b, CFG, 2)["levels"]
    noisy = swd(a, np.clip(b + rng.normal(0, 0.05, b.shape), 0, 1).astype(np.float32), CFG, 2)["levels"]
    gain = [n / r for n, r in zip(noisy, real)]
    assert gain[0] > 3 and gain[0] == max(gain)


def test_point_set_distance_and_errors():
    rng = np.random.default_rng(6)
    x = rng.standard_normal((500, 4)).astype(np.float32)
    assert sliced_wasserstein(x, x, 16, 2, rng) == 0.0
    assert sliced_wasserstein(x, x + 1.0, 16, 2, rng) > 0.5   # every projection moves by |dir . 1| on average
    with pytest.raises(ValueError, match="image sizes differ"):
        swd(np.zeros((2, 32, 32)), np.zeros((2, 32, 64)), CFG, 0)
    with pytest.raises(ValueError, match="non-empty"):
        swd(np.zeros((0, 32, 32)), np.zeros((2, 32, 32)), CFG, 0)
