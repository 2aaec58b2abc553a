"""bench/crop_fit.py: the least-squares fit of the crop's box coefficients covers every sample."""
from __future__ import annotations

import numpy as np

from bench import crop_fit
from pipeline.crop.crop import CropConfig, Landmarks, landmark_box


def _samples(n: int, seed: int = 0) -> list[dict]:
    """Landmarks whose teeth box follows top = gap - 0.2 H, bottom = gap + 0.5 root + 0.3 mandible
    + 0.05 H, plus noise (in work pixels, scale 1)."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        hh = 200
        gap_top, gap_bottom = rng.uniform(80, 100), rng.uniform(105, 120)
        mand, root = rng.uniform(60, 80), rng.uniform(20, 40)
        lm = Landmarks(1.0, (400, hh), 80.0, 320.0, gap_top, gap_bottom, mand, root, {})
        top = gap_top - 0.2 * hh + rng.normal(0, 2)
        bottom = gap_bottom + 0.5 * root + 0.3 * mand + 0.05 * hh + rng.normal(0, 2)
        out.append({"name": f"s{k}", "real": k < n - 5, "lm": lm, "shape": (hh, 400),
                    "box": [90.0, top, 310.0, bottom]})
    return out


def test_fit_recovers_the_law_and_covers_every_sample():
    samples = _samples(40)
    up, down = crop_fit.fit(samples, [i for i, s in enumerate(samples) if s["real"]])
    assert abs(up - 0.2) < 0.05
    assert abs(down[0] - 0.5) < 0.15 and abs(down[1] - 0.3) < 0.15
    cfg = CropConfig(up=up, down=down)
    for s in samples:  # every box inside, phantoms ("real": False) included
        x0, y0, x1, y1 = landmark_box(s["lm"], cfg)
        assert y0 <= s["box"][1] + 1e-9 and y1 >= s["box"][3] - 1e-9
