"""Quality at the delivered size: metrics on random full-resolution patches.

Whole-image metrics read images at 64 px on the long side, which cannot see enamel, canals or bone
texture at 288x512 and above. Here both sets are cut into ``per_image`` patches of ``size`` px at
the same positions (image k of each set at the same places: common random numbers, as the SWD
does), unscaled, and judged by the C2ST classifier (folds by image, so the patches of one image
never sit on both sides of a split; the interval resamples images) and by precision, recall,
density and coverage in the random-CNN embedding.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.core.config import param
from pipeline.metrics.c2st import C2STConfig, c2st
from pipeline.metrics.embedding import embed, standardise
from pipeline.metrics.intervals import IntervalConfig, group_mean_interval
from pipeline.metrics.prdc import PRDCConfig, prdc_items


@dataclass(frozen=True)
class PatchConfig:
    size: int = param(64, ge=8)        # patch side, full-resolution pixels
    per_image: int = param(4, ge=1)    # patches cut from each image


def positions(n: int, height: int, width: int, cfg: PatchConfig, seed: int) -> np.ndarray:
    """(n, per_image, 2) top-left corners (y, x), drawn once for both sets."""
    if cfg.size > height or cfg.size > width:
        raise ValueError(f"patch {cfg.size} does not fit {height}x{width} images")
    rng = np.random.default_rng(seed)
    ys = rng.integers(0, height - cfg.size + 1, (n, cfg.per_image))
    xs = rng.integers(0, width - cfg.size + 1, (n, cfg.per_image))
    return np.stack([ys, xs], axis=-1)


def cut(images: np.ndarray, where: np.ndarray, size: int) -> np.ndarray:
    """(n * per_image, size, size) patches of ``images`` (n, H, W) at ``where``."""
    return np.stack([images[k, y:y + size, x:x + size] for k in range(len(images)) for y, x in where[k]])


def patch_metrics(reference: np.ndarray, candidate: np.ndarray, cfg: PatchConfig, c2st_cfg: C2STConfig,
                  prdc_cfg: PRDCConfig, intervals: IntervalConfig, seed: int) -> dict:
    """C2ST accuracy and PRDC of ``candidate`` patches against ``reference`` patches (stacks (n, H, W)
    in [0, 1] of one size; the larger set is subsampled to the smaller one's size)."""
    if reference.shape[1:] != candidate.shape[1:]:
        raise ValueError(f"image sizes differ: {reference.shape[1:]} vs {candidate.shape[1:]}")
    rng = np.random.default_rng(seed)
    n = min(len(reference), len(candidate))
    reference = reference[np.sort(rng.choice(len(reference), n, replace=False))]
    candidate = candidate[np.sort(rng.choice(len(candidate), n, replace=False))]
    where = positions(n, *reference.shape[1:], cfg, seed + 1)
    pr, pc = cut(reference, where, cfg.size), cut(candidate, where, cfg.size)
    groups = np.repeat(np.arange(n), cfg.per_image)
    ccfg = C2STConfig(**{**c2st_cfg.__dict__, "max_side": cfg.size})
    c = c2st(pr, pc, ccfg, seed + 2, groups=groups)
    acc_groups = np.concatenate([groups, groups + n])
    out = {"images": n, "patches_per_class": len(pr), "patch": cfg.size,
           "c2st_accuracy": {"value": c["accuracy"], "interval": group_mean_interval(c["correct"], acc_groups, intervals, seed + 3)},
           "c2st_auc": {"value": c["auc"]}}
    er, ec = standardise(embed(pr, prdc_cfg, seed + 4, cfg.size), embed(pc, prdc_cfg, seed + 4, cfg.size))
    items = prdc_items(er, ec, PRDCConfig(k=min(prdc_cfg.k, len(pr) - 1)))
    for name, v in items.items():
        out[name] = {"value": float(v.mean()), "interval": group_mean_interval(v, groups, intervals, seed + 5)}
    return out
