"""Fit and check the teeth-crop box coefficients (``crop.up`` / ``crop.down`` in params.yaml).

The detector (pipeline/crop.py) measures landmarks on each image: the occlusal gap rows over the
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
from pipeline import config, phantoms
from pipeline.crop import CropConfig, detect_teeth, landmark_box, measure
from pipeline.decode import decode_file

SHARED_OPG = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "opg-dev"
FIT_SEED = 20261123  # phantoms for the fit; the tests draw theirs from other seeds


def coverage_and_ratio(crop, box) -> tuple[float, float]:
    iw = max(0.0, min(box[2], crop[2]) - max(box[0], crop[0]))
    ih = max(0.0, min(box[3], crop[3]) - max(box[1], crop[1]))
    area = (box[2] - box[0]) * (box[3] - box[1])
    return iw * ih / area, (crop[2] - crop[0]) * (crop[3] - crop[1]) / area


def _samples(cfg: CropConfig, n_phantoms: int) -> list[dict]:
    out = []
    with open(SHARED_OPG / "teeth_boxes.csv", newline="") as f:
        for r in csv.DictReader(f):
            img = decode_file(SHARED_OPG / "images" / r["file"], "crop_fit").pixels
            out.append({"name": r["file"], "real": True, "img": img, "lm": measure(img, cfg),
                        "box": [float(r[k]) for k in ("x0", "y0", "x1", "y1")]})
    for i in range(n_phantoms):
        h, w = (1400, 2900) if i % 6 == 5 else (384, 768)  # a few at full size
        img, box = phantoms.render_opg(np.random.default_rng([FIT_SEED, i]), h, w)
        out.append({"name": f"phantom-{i}", "real": False, "img": img, "lm": measure(img, cfg), "box": list(box)})
    return out


def _design(samples: list[dict]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per sample, in units of the work height: what the top and bottom must reach beyond the gap rows,
    and the landmark columns they are linear in."""
    xt, yt, xb, yb = [], [], [], []
    for smp in samples:
        lm = smp["lm"]
        hh, s = lm.size[1], lm.scale
        yt.append((lm.gap_top - smp["box"][1] * s) / hh)
        yb.append((smp["box"][3] * s - lm.gap_bottom) / hh)
        xt.append([lm.upper_root_edge / hh, lm.mandible / hh, 1.0])
        xb.append([lm.root_edge / hh, lm.mandible / hh, 1.0])
    return np.array(xt), np.array(yt), np.array(xb), np.array(yb)


# Columns of the design each edge is fitted on (the others get 0). Top: the offset alone. In
# leave-one-out on the 21 real OPGs (2026-11) the upper lobe's fade left a little less slack than a
# constant distance above the gap (0.070 vs 0.076 of the height) but cut one image's teeth by 0.065 of
# the height; the mandible distance left more (0.082).
TERMS = {"up": (2,), "down": (0, 1, 2)}


def fit(samples: list[dict], real_idx: list[int]) -> tuple[list[float], list[float]]:
    """(up, down): least squares on ``real_idx``; offsets raised to cover every sample given."""
    xt, yt, xb, yb = _design(samples)
    coefs = []
    for name, x, y in (("up", xt, yt), ("down", xb, yb)):
        cols = list(TERMS[name])
        c = np.linalg.lstsq(x[real_idx][:, cols], y[real_idx], rcond=None)[0]
        full = np.zeros(x.shape[1])
        full[cols] = np.round(c, 3)
        full[-1] = 0.0
        offset = math.ceil(float((y - x @ full).max()) * 1000) / 1000  # covers every sample
        coefs.append([*(round(float(v), 3) for v in full[:-1]), offset])
    return coefs[0], coefs[1]


def _check(samples: list[dict], cfg: CropConfig) -> list[dict]:
    rows = []
    for smp in samples:
        det = detect_teeth(smp["img"], cfg)
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
        "up": up, "down": down, "params_up": list(cfg.up), "params_down": list(cfg.down),
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
    if (list(cfg.up), list(cfg.down)) != (up, down):
        print(f"\nparams.yaml has up {list(cfg.up)} down {list(cfg.down)}; this fit: up {up} down {down}",
              file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
