"""Precision, recall, density, coverage: behaviour on point sets whose answer is known."""
from __future__ import annotations

import numpy as np
import pytest

from pipeline.metrics.prdc import PRDCConfig, prdc

K5 = PRDCConfig(k=5)


@pytest.fixture(scope="module")
def real():
    return np.random.default_rng(0).standard_normal((200, 8))


def test_a_subset_of_the_real_manifold_is_precise(real):
    rng = np.random.default_rng(1)
    inner = real[rng.choice(len(real), 60, replace=False)] + 0.01 * rng.standard_normal((60, 8))
    r = prdc(real, inner, K5)
    assert r["precision"] >= 0.98
    # a subset covers only part of the real set: recall and coverage stay below a full fresh sample's
    fresh = prdc(real, rng.standard_normal((200, 8)), K5)
    assert fresh["precision"] >= 0.85 and fresh["coverage"] >= 0.9 and 0.6 <= fresh["density"] <= 1.5
    assert r["coverage"] < fresh["coverage"]


def test_far_away_points_score_zero(real):
    far = np.random.default_rng(2).standard_normal((100, 8)) + 50.0
    assert prdc(real, far, K5) == {"precision": 0.0, "recall": 0.0, "density": 0.0, "coverage": 0.0}


def test_fidelity_falls_as_the_set_moves_away(real):
    rng = np.random.default_rng(3)
    fresh = rng.standard_normal((200, 8))
    prec = [prdc(real, fresh + shift, K5)["precision"] for shift in (0.0, 1.0, 2.0, 4.0)]
    dens = [prdc(real, fresh + shift, K5)["density"] for shift in (0.0, 1.0, 2.0, 4.0)]
    assert prec == sorted(prec, reverse=True) and prec[0] > prec[-1] + 0.5
    assert dens == sorted(dens, reverse=True) and dens[-1] < 0.1


def test_mode_collapse_keeps_precision_but_loses_coverage(real):
    one = np.repeat(real[:1], 50, axis=0)          # one real sample, repeated
    r = prdc(real, one, K5)
    assert r["precision"] == 1.0                   # precision is fidelity only: it cannot see collapse
    assert r["coverage"] <= 0.1 and r["recall"] <= 0.1


def test_bad_input_is_a_clear_error(real):
    with pytest.raises(ValueError, match="equal d"):
        prdc(real, real[:, :3], K5)
    with pytest.raises(ValueError, match="k=5"):
        prdc(real, real[:5], K5)


def test_per_image_terms_average_to_the_metrics():
    from pipeline.metrics.prdc import prdc_items
    rng = np.random.default_rng(4)
    real, fake = rng.normal(0, 1, (40, 6)), rng.normal(0.7, 1, (30, 6))
    items = prdc_items(real, fake, PRDCConfig(k=3))
    assert items["precision"].shape == (30,) and items["density"].shape == (30,)
    assert items["recall"].shape == (40,) and items["coverage"].shape == (40,)
    assert {k: float(v.mean()) for k, v in items.items()} == prdc(real, fake, PRDCConfig(k=3))
