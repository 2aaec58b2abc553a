"""Fit and check the teeth-crop box coefficients (``crop.up`` / ``crop.down`` in params.yaml).

The detector (pipeline/crop/crop.py) measures landmarks on each image: the occlusal gap rows over the
teeth columns, the distance from the gap to the mandible's inferior border, and where the lower
roots' lobe fades. The box's top and bottom are linear in those; this fits the coefficients by least
squares on the 21 annotated real OPGs in ../shared/data/opg-dev, then raises each offset until every
annotated box *and* every fitting phantom (a seed the tests do not use) is covered. It prints the
coefficients to put in params.yaml, and checks them the way the acceptance test does (coverage and
crop area / teeth box area), in-sample and leave-one-out (refit without the image, then crop it).
The real images never leave ../shared: only numbers are written.

    python -m bench.crop_fit [--phantoms 48]
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import math
import sys
from pathlib import Path

import numpy as np

from bench.common import markdown_table, save
from pipeline.core import config
from pipeline.demo import phantoms
from pipeline.crop.crop import CropConfig, coverage_and_ratio, detection, measure
from pipeline.ingest.decode import decode_file

SHARED_OPG = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "opg-dev"
FIT_SEED = 20261123  # phantoms for the fit; the tests draw theirs from other seeds


def _sample(name: str, real: bool, img: np.ndarray, box, cfg: CropConfig) -> dict:
    """What the fit and the checks need of one image: its landmarks (measured once: the box
    coefficients do not change them), its shape and its annotated teeth box."""
    return {"name": name, "real": real, "lm": measure(img, cfg), "shape": img.shape[:2], "box": list(box)}


def _samples(cfg: CropConfig, n_phantoms: int) -> list[dict]:
    out = []
    with open(SHARED_OPG / "teeth_boxes.csv", newline="") as f:
        for r in csv.DictReader(f):
            img = decode_file(SHARED_OPG / "images" / r["file"], "crop_fit").pixels
            out.append(_sample(r["file"], True, img, [float(r[k]) for k in ("x0", "y0", "x1", "y1")], cfg))
    for i in range(n_phantoms):
        h, w = (1400, 2900) if i % 6 == 5 else (384, 768)  # a few at full size
        img, box = phantoms.render_opg(np.random.default_rng([FIT_SEED, i]), h, w)
        out.append(_sample(f"phantom-{i}", False, img, box, cfg))
    return out


def _design(samples: list[dict]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per sample, in units of the work height: how far the top must reach above the highest gap row,
    how far the bottom must reach below the lowest, and the landmarks the bottom is linear in."""
    yt, xb, yb = [], [], []
    for smp in samples:
        lm = smp["lm"]
        hh, s = lm.size[1], lm.scale
        yt.append((lm.gap_top - smp["box"][1] * s) / hh)
        yb.append((smp["box"][3] * s - lm.gap_bottom) / hh)
        xb.append([lm.root_edge / hh, lm.mandible / hh, 1.0])
    return np.array(yt), np.array(xb), np.array(yb)


def _ceil3(v: float) -> float:
    return math.ceil(v * 1000) / 1000


# The top is a distance above the gap alone. In leave-one-out on the 21 real OPGs (2026-11) the upper
# teeth lobe's fade left a little less slack than that constant (0.070 vs 0.076 of the height) but cut
# one image's teeth by 0.065 of the height; the mandible distance left more (0.082).
def fit(samples: list[dict], real_idx: list[int]) -> tuple[float, list[float]]:
    """(up, down): the bottom by least squares on ``real_idx``; every offset (and the top, which is
    an offset alone) raised to cover every sample given, rounded up to 3 decimals."""
    yt, xb, yb = _design(samples)
    c = np.linalg.lstsq(xb[real_idx], yb[real_idx], rcond=None)[0]
    slopes = np.round(c[:-1], 3)
    offset = _ceil3(float((yb - xb[:, :-1] @ slopes).max()))
    return _ceil3(float(yt.max())), [*(float(v) for v in slopes), offset]


def _check(samples: list[dict], cfg: CropConfig) -> list[dict]:
    rows = []
    for smp in samples:
        det = detection(smp["lm"], smp["shape"], cfg)
        cov, ratio = coverage_and_ratio(det.box, smp["box"])
        rows.append({"image": smp["name"], "coverage": cov, "area_ratio": ratio, "method": det.method})
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--phantoms", type=int, default=48)
    args = ap.parse_args()
    if not (SHARED_OPG / "teeth_boxes.csv").is_file():
        print(f"crop_fit: {SHARED_OPG} is absent: nothing to fit on (skipped)")
        return 0
    params = config.load_params(Path("params.yaml"))
    cfg = CropConfig(**params.get("crop", {}))
    samples = _samples(cfg, args.phantoms)
    real = [i for i, smp in enumerate(samples) if smp["real"]]
    up, down = fit(samples, real)
    fitted = dataclasses.replace(cfg, up=up, down=down)
    rows = _check([samples[i] for i in real], fitted)
    # leave-one-out: refit without image i (its box neither fits nor covers), then crop it
    for k, i in enumerate(real):
        rest = [smp for j, smp in enumerate(samples) if j != i]
        u, d = fit(rest, [j for j in range(len(rest)) if rest[j]["real"]])
        (loo,) = _check([samples[i]], dataclasses.replace(cfg, up=u, down=d))
        rows[k].update(loo_coverage=loo["coverage"], loo_area_ratio=loo["area_ratio"])
    ph = _check([smp for smp in samples if not smp["real"]], fitted)
    summary = {
        "up": up, "down": down, "params_up": cfg.up, "params_down": list(cfg.down),
        "real_images": len(rows), "phantoms": len(ph),
        "coverage_min": min(r["coverage"] for r in rows),
        "area_ratio_mean": float(np.mean([r["area_ratio"] for r in rows])),
        "loo_coverage_min": min(r["loo_coverage"] for r in rows),
        "loo_below_0.99": sum(r["loo_coverage"] < 0.99 for r in rows),
        "loo_area_ratio_mean": float(np.mean([r["loo_area_ratio"] for r in rows])),
        "phantom_coverage_min": min(r["coverage"] for r in ph),
        "phantom_area_ratio_mean": float(np.mean([r["area_ratio"] for r in ph])),
    }
    table = markdown_table(rows, ["image", "coverage", "area_ratio", "loo_coverage", "loo_area_ratio", "method"])
    head = "\n".join(f"- {k}: {v:.4g}" if isinstance(v, float) else f"- {k}: {v}" for k, v in summary.items())
    save("crop_fit", {"summary": summary, "rows": rows}, head + "\n\n" + table)
    if (cfg.up, list(cfg.down)) != (up, down):
        print(f"\nparams.yaml has up {cfg.up} down {list(cfg.down)}; this fit: up {up} down {down}",
              file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
