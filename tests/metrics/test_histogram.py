import numpy as np
import pytest

from pipeline.metrics.histogram import HistogramConfig, grey_histogram, histogram_distance


def test_histogram_is_normalised_and_rejects_empty_sets():
    h = grey_histogram(np.random.default_rng(0).random((3, 8, 8)), 16)
    assert h.shape == (16,) and h.sum() == pytest.approx(1.0)
    with pytest.raises(ValueError):
        grey_histogram(np.zeros((0, 4, 4)), 16)


def test_distance_is_zero_for_the_same_pixels_and_grows_with_a_shift():
    rng = np.random.default_rng(1)
    real = np.clip(rng.normal(0.5, 0.1, (4, 16, 16)), 0, 1)
    same = histogram_distance(real, real.copy(), HistogramConfig())
    assert same["emd_percent"] == pytest.approx(0) and same["jensen_shannon"] == pytest.approx(0)
    small = histogram_distance(real, np.clip(real + 0.05, 0, 1), HistogramConfig())
    large = histogram_distance(real, np.clip(real + 0.2, 0, 1), HistogramConfig())
    assert 0 < small["emd_percent"] < large["emd_percent"]
    assert 4.0 < small["emd_percent"] < 6.0             # a 0.05 shift is ~5 % of the range
    assert 0 < small["jensen_shannon"] < large["jensen_shannon"] <= 1.0
