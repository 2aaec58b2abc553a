"""Grey-level histogram distance between two image sets.

Pools the grey levels of every image of a set into one histogram and compares the two with
  * the Jensen-Shannon divergence (bits, 0..1) of the binned histograms, bin by bin (the
    headline: it also sees a change of shape, e.g. the narrower histogram of a blurred set, where
    the mean-dominated distance below can stay small);
  * the earth mover's (Wasserstein-1) distance, in percent of the full grey range: how far, on
    average, grey levels must move to turn one histogram into the other (a brightness shift shows
    here by its size).
Lower is better for both; 0 for identical histograms.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.core.config import param


@dataclass(frozen=True)
class HistogramConfig:
    bins: int = param(256, ge=2, le=65536)


def grey_histogram(images: np.ndarray, bins: int) -> np.ndarray:
    """Normalised histogram (sums to 1) of all pixels of a stack of images in [0, 1]."""
    images = np.asarray(images, dtype=np.float32)
    if images.size == 0:
        raise ValueError("no pixels to histogram")
    counts, _ = np.histogram(np.clip(images, 0.0, 1.0), bins=bins, range=(0.0, 1.0))
    return counts.astype(np.float64) / counts.sum()


def earth_movers(p: np.ndarray, q: np.ndarray) -> float:
    """Wasserstein-1 distance of two histograms on equal bins over [0, 1], in percent of the range."""
    return float(np.abs(np.cumsum(p - q)).sum() / len(p) * 100.0)


def jensen_shannon(p: np.ndarray, q: np.ndarray) -> float:
    m = (p + q) / 2

    def kl(a: np.ndarray) -> float:
        nz = a > 0
        return float(np.sum(a[nz] * np.log2(a[nz] / m[nz])))

    return (kl(p) + kl(q)) / 2


def histogram_distance(reference: np.ndarray, candidate: np.ndarray, cfg: HistogramConfig) -> dict:
    p = grey_histogram(reference, cfg.bins)
    q = grey_histogram(candidate, cfg.bins)
    return {"emd_percent": earth_movers(p, q), "jensen_shannon": jensen_shannon(p, q)}
