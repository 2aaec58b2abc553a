import numpy as np
import pytest
import torch

from pipeline.demo.phantoms import render_opg
from pipeline.metrics.diversity import DiversityConfig, diversity, mean_pairwise_ms_ssim, ms_ssim

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _phantoms(n, seed, h=64, w=112):
    return np.stack([render_opg(np.random.default_rng([seed, i]), h, w)[0] for i in range(n)]).astype(np.float32)


def test_ms_ssim_of_an_image_with_itself_is_one():
    x = torch.from_numpy(_phantoms(2, 0)[:, None])
    assert ms_ssim(x, x).numpy() == pytest.approx([1.0, 1.0], abs=1e-4)
    assert float(ms_ssim(x[:1], x[1:])) < 0.99


def test_a_collapsed_set_shows_a_positive_gap():
    cfg = DiversityConfig(pairs=30)
    real = _phantoms(8, 1)
    collapsed = np.repeat(real[:1], 8, axis=0) + np.random.default_rng(2).normal(0, 0.002, real.shape).astype(np.float32)
    d = diversity(real, collapsed, cfg, seed=3)
    assert d["ms_ssim"] > 0.95 > d["ms_ssim_real"]
    assert d["gap"] > 0.1 and d["abs_gap"] == pytest.approx(d["gap"])
    assert mean_pairwise_ms_ssim(real, cfg, 4) == pytest.approx(d["ms_ssim_real"], abs=0.05)
