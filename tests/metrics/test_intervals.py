"""Bootstrap intervals: they hold the estimate, narrow with more images, and are seeded."""
from __future__ import annotations

import numpy as np
import pytest

from pipeline.metrics.intervals import IntervalConfig, mean_interval, resample_interval


def test_mean_interval_of_right_and_wrong_answers_matches_the_binomial_spread():
    cfg = IntervalConfig(resamples=4000)
    items = np.array([1.0] * 30 + [0.0] * 10)          # accuracy 0.75 over 40 images
    lo, hi = mean_interval(items, cfg, 0)
    half = 1.96 * np.sqrt(0.75 * 0.25 / 40)             # normal approximation: 0.134
    assert lo < 0.75 < hi
    assert abs((hi - lo) / 2 - half) < 0.03
    wide = mean_interval(items[::4], cfg, 0)           # 10 images: about twice as wide
    assert (wide[1] - wide[0]) > 1.6 * (hi - lo)
    assert mean_interval(items, cfg, 0) == [lo, hi] and mean_interval(np.ones(7), cfg, 1) == [1.0, 1.0]
    with pytest.raises(ValueError, match="at least one"):
        mean_interval(np.array([]), cfg, 0)


def test_resample_interval_recomputes_the_distance_on_resampled_sets():
    rng = np.random.default_rng(3)
    a, b = rng.normal(0, 1, 200), rng.normal(0.5, 1, 200)
    gap = lambda x, y: float(abs(x.mean() - y.mean()))  # noqa: E731
    lo, hi = resample_interval(gap, a, b, gap(a, b), 400, 0.95, 7)
    assert lo < gap(a, b) < hi
    assert 0.15 < hi - lo < 0.6                          # 2 x 1.96 x sqrt(2 / 200) = 0.55 at most
    assert resample_interval(gap, a, b, gap(a, b), 400, 0.95, 7) == [lo, hi]


def test_resample_interval_corrects_the_bias_of_repeated_images():
    """A distance that only grows when images repeat (the share of distinct images lost): every
    resample scores above the estimate 0, and the shifted interval holds it again."""
    a = np.arange(50.0)
    lost = lambda x, y: float(1 - len(np.unique(x)) / len(x))  # noqa: E731
    lo, hi = resample_interval(lost, a, a, 0.0, 200, 0.95, 1)
    assert lo <= 0.0 <= hi and hi - lo < 0.2
