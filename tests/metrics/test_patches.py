"""Patch metrics at full resolution: same places in both sets, folds and intervals by image."""
import numpy as np
import pytest

from pipeline.demo import phantoms
from pipeline.metrics.c2st import C2STConfig, _folds
from bench.failures import FULL_SIZE_MODES, full_size_failures
from pipeline.metrics.intervals import IntervalConfig, group_mean_interval
from pipeline.metrics.prdc import PRDCConfig
from pipeline.metrics.patches import PatchConfig, cut, patch_metrics, positions


def test_both_sets_are_cut_at_the_same_places():
    a = np.random.default_rng(0).random((3, 40, 50))
    where = positions(3, 40, 50, PatchConfig(size=16, per_image=5), seed=1)
    pa, pb = cut(a, where, 16), cut(a.copy(), where, 16)
    assert pa.shape == (15, 16, 16) and np.array_equal(pa, pb)
    y, x = where[1, 2]
    assert np.array_equal(pa[5 + 2], a[1, y:y + 16, x:x + 16])
    with pytest.raises(ValueError):
        positions(1, 10, 10, PatchConfig(size=16, per_image=1), 0)


def test_folds_keep_the_patches_of_an_image_together():
    groups = np.repeat(np.arange(10), 4)
    f = _folds(40, groups, 5, np.random.default_rng(0))
    for g in range(10):
        assert len(set(f[groups == g])) == 1
    assert sorted(np.bincount(f)) == [8] * 5


def test_the_interval_resamples_images_not_patches():
    cfg = IntervalConfig(resamples=500)
    same = group_mean_interval(np.ones(20), np.repeat(np.arange(5), 4), cfg, 0)
    assert same == [1.0, 1.0]
    # two images, all patches right in one and wrong in the other: the mean is anything from 0 to 1
    lo, hi = group_mean_interval(np.r_[np.ones(10), np.zeros(10)], np.repeat([0, 1], 10), cfg, 0)
    assert lo == 0.0 and hi == 1.0
    # the same terms as 20 independent patches would give a narrow interval
    lo2, hi2 = group_mean_interval(np.r_[np.ones(10), np.zeros(10)], np.arange(20), cfg, 0)
    assert hi2 - lo2 < 0.6


def test_full_size_failures_keep_shape_and_differ_from_the_images():
    imgs = np.stack([phantoms.render_opg(np.random.default_rng(k), 64, 128)[0] for k in range(2)])
    fails = full_size_failures(imgs, 4, seed=0)
    assert set(fails) == set(FULL_SIZE_MODES)
    for name, f in fails.items():
        assert f.shape == imgs.shape and f.dtype == np.float32 and 0 <= f.min() and f.max() <= 1
        assert np.abs(f - imgs).mean() > 1e-3, name


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_patch_c2st_ranks_every_full_size_failure_below_real():
    """Unseen real phantoms against held-out ones sit near chance; every failure mode of a
    super-resolution stage is told apart more often."""
    rng = np.random.default_rng(1)
    render = lambda n: np.stack([phantoms.render_opg(rng, 64, 128)[0] for _ in range(n)])
    held, unseen = render(20), render(20)
    cfg = PatchConfig(size=32, per_image=4)
    c2st = C2STConfig(epochs=20, patience=5)
    real = patch_metrics(held, unseen, cfg, c2st, PRDCConfig(), IntervalConfig(resamples=200), 3)["c2st_accuracy"]["value"]
    for name, imgs in full_size_failures(unseen, 2, seed=2).items():   # x2: tiles of 32 px, seams inside the patches
        acc = patch_metrics(held, imgs, cfg, c2st, PRDCConfig(), IntervalConfig(resamples=200), 3)["c2st_accuracy"]["value"]
        assert acc > real + 0.1, (name, acc, real)
