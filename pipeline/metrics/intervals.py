"""95% intervals for the quality metrics, by bootstrap over images.

Two kinds, by what a metric is made of:

- Metrics that are means of per-image terms (C2ST accuracy: each image classified right or wrong
  out of fold; precision and density per synthetic image, recall and coverage per real image,
  :func:`pipeline.metrics.prdc.prdc_items`): the terms are resampled with replacement, the fitted
  classifiers and k-NN balls held fixed (:func:`mean_interval`). Cheap, and it answers "how much
  would this figure move with other images of the same kind", not "with another classifier".
- Distribution distances (SWD): both image sets are resampled with replacement and the distance
  recomputed (:func:`resample_interval`). A resample repeats images, which alone makes two sets
  look further apart, so the interval is shifted back by that bias (the resamples' median minus
  the estimate): a bias-corrected percentile interval.

Percentile intervals; with 15 images a side they are wide, which is the point of showing them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from pipeline.core.config import param


@dataclass(frozen=True)
class IntervalConfig:
    resamples: int = param(1000, ge=10)       # bootstrap draws for means of per-image terms
    swd_resamples: int = param(20, ge=0)      # bootstrap draws for SWD (each recomputes the distance; 0: none)
    level: float = param(0.95, gt=0, lt=1)


def _percentiles(values: np.ndarray, level: float) -> list[float]:
    lo, hi = np.percentile(values, [50 * (1 - level), 50 * (1 + level)])
    return [float(lo), float(hi)]


def mean_interval(items: np.ndarray, cfg: IntervalConfig, seed: int) -> list[float]:
    """[lo, hi] of the mean of ``items`` (one term per image) over bootstrap resamples."""
    items = np.asarray(items, dtype=np.float64).ravel()
    if items.size == 0:
        raise ValueError("an interval needs at least one image")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, items.size, size=(cfg.resamples, items.size))
    return _percentiles(items[idx].mean(axis=1), cfg.level)


def group_mean_interval(items: np.ndarray, groups: np.ndarray, cfg: IntervalConfig, seed: int) -> list[float]:
    """[lo, hi] of the mean of ``items`` when whole groups (the patches of one image) are resampled:
    the patches of an image are not independent draws."""
    items, groups = np.asarray(items, dtype=np.float64).ravel(), np.asarray(groups).ravel()
    if items.size == 0 or items.size != groups.size:
        raise ValueError(f"{items.size} items and {groups.size} group labels")
    uniq, inv = np.unique(groups, return_inverse=True)
    sums, counts = np.bincount(inv, items), np.bincount(inv)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(uniq), size=(cfg.resamples, len(uniq)))
    return _percentiles(sums[idx].sum(axis=1) / counts[idx].sum(axis=1), cfg.level)


def resample_interval(metric: Callable[[np.ndarray, np.ndarray], float], a: np.ndarray, b: np.ndarray,
                      estimate: float, resamples: int, level: float, seed: int) -> list[float]:
    """[lo, hi] of ``metric(a*, b*)`` over ``resamples`` draws of both sets with replacement, shifted
    by the resamples' bias (their median minus ``estimate``, the metric on ``a`` and ``b``)."""
    rng = np.random.default_rng(seed)
    vals = np.asarray([metric(a[rng.integers(0, len(a), len(a))], b[rng.integers(0, len(b), len(b))])
                       for _ in range(resamples)])
    bias = float(np.median(vals)) - estimate
    return [v - bias for v in _percentiles(vals, level)]
