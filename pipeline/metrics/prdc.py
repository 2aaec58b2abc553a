"""Precision, recall, density and coverage of a synthetic set against real images (k-NN).

Kynkaanniemi et al. 2019 (precision/recall) and Naeem et al. 2020 (density/coverage), on feature
vectors: each real sample gets a ball reaching its k-th nearest real neighbour, and likewise for
synthetic samples.
  * precision: share of synthetic samples inside some real ball (fidelity: do they look real?);
  * recall: share of real samples inside some synthetic ball (diversity: is all of real covered?);
  * density: how many real balls hold a synthetic sample, on average, / k (fidelity, robust to
    outliers; can exceed 1);
  * coverage: share of real samples whose ball holds at least one synthetic sample (diversity,
    robust to outliers).
All are higher-is-better; 1 is what a second sample of real images typically reaches (density
around 1). The feature space comes from the caller (see :func:`pipeline.metrics.c2st.embed`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.core.config import param


@dataclass(frozen=True)
class PRDCConfig:
    k: int = param(5, ge=1)
    embeddings: int = param(3, ge=1)   # random-CNN embeddings (seeds): their mean is reported, with the spread
    max_side: int = param(64, ge=8)    # images are read at this long side (detail bands as local RMS below full size)
    width: int = param(16, ge=1)       # channels of the embedding network's first block


def _distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    d2 = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return np.sqrt(np.clip(d2, 0.0, None))


def _kth_radius(features: np.ndarray, k: int) -> np.ndarray:
    d = _distances(features, features)
    # column 0 of the sorted rows is the point itself (distance 0)
    return np.sort(d, axis=1)[:, k]


def prdc_items(real: np.ndarray, fake: np.ndarray, cfg: PRDCConfig) -> dict[str, np.ndarray]:
    """Each image's share of every metric: ``precision`` and ``density`` per synthetic sample (inside
    some real ball; real balls holding it / k), ``recall`` and ``coverage`` per real sample (inside
    some synthetic ball; its ball holds a synthetic sample). Their means are :func:`prdc`; resampling
    them gives an interval with the balls held fixed (:mod:`pipeline.metrics.intervals`)."""
    real = np.asarray(real)
    fake = np.asarray(fake)
    if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1]:
        raise ValueError(f"expected feature matrices (n, d) of equal d, got {real.shape} and {fake.shape}")
    k = cfg.k
    if min(len(real), len(fake)) <= k:
        raise ValueError(f"k={k} needs more than {k} samples per set, got {len(real)} real, {len(fake)} synthetic")
    real_r = _kth_radius(real, k)
    fake_r = _kth_radius(fake, k)
    d = _distances(real, fake)  # (n_real, n_fake)
    inside = d < real_r[:, None]  # fake j inside the ball of real i
    return {"precision": inside.any(axis=0).astype(np.float64),
            "recall": (d < fake_r[None, :]).any(axis=1).astype(np.float64),
            "density": inside.sum(axis=0) / k,
            "coverage": (d.min(axis=1) < real_r).astype(np.float64)}


def prdc(real: np.ndarray, fake: np.ndarray, cfg: PRDCConfig) -> dict:
    """Precision, recall, density, coverage of ``fake`` (m, d) against ``real`` (n, d)."""
    return {name: float(v.mean()) for name, v in prdc_items(real, fake, cfg).items()}
