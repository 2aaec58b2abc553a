"""The metrics ``evaluate`` reports, in the report's order: which way is better, and what they judge.
A module of its own so the report reads it without loading torch."""
from __future__ import annotations

# metric -> (better, kind); the order is the report's
METRICS = {
    "swd": ("lower", "quality"),
    "c2st_accuracy": ("lower", "quality"),
    "c2st_auc": ("lower", "quality"),
    "ms_ssim_gap": ("lower", "quality"),
    "histogram_js": ("lower", "quality"),
    "histogram_emd_percent": ("lower", "quality"),
    "precision": ("higher", "quality"),
    "recall": ("higher", "quality"),
    "density": ("higher", "quality"),
    "coverage": ("higher", "quality"),
    "fid": ("lower", "quality"),
    "kid_x1e3": ("lower", "quality"),
    "near_copy_share": ("lower", "privacy"),
}

# The metrics the quality report's overall verdict rests on: those that ranked every failure mode
# of bench.failures (noise, blur, noise over the mean image at four strengths, blotchy
# texture, wrong scale, one mode, checkerboard) worse than unseen real images, on phantoms and on
# real OPGs, in every split of bench/metric_validation.py (reports/bench/metric_validation.md).
HEADLINE = ("swd", "c2st_accuracy", "c2st_auc", "coverage")
