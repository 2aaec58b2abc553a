"""Fit and check the teeth-crop box coefficients (``crop.up`` / ``crop.down`` in params.yaml).

The detector (pipeline/crop/landmarks.py) measures landmarks on each image: the occlusal gap rows over the
teeth columns, the distance from the gap to the mandible's inferior border, and where the lower
roots' lobe fades. The box's top and bottom are linear in those; this fits the coefficients by least
squares on the 21 annotated real OPGs in ../shared/data/opg-dev, in the form (offset only, or with
the roots' / mandible's slopes) that holds best under leave-one-out, then raises each offset until
every annotated box *and* every fitting phantom (a seed the tests do not use) is covered and it
reaches the residuals' mean + 2.5 standard deviations (the largest of 21 residuals is no bound for
the next image). It prints the
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
import os
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

from bench import crop_transforms
from bench.common import markdown_table, save
from pipeline.core import config, pngio
from pipeline.demo import phantoms
from pipeline.crop.boxes import coverage_and_ratio, detect_teeth, detection
from pipeline.crop.config import CropConfig
from pipeline.crop.crops_report import thumbnail
from pipeline.crop.landmarks import measure
from pipeline.ingest.decode import decode_file

SHARED_OPG = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "opg-dev"
FIT_SEED = 20261123  # phantoms for the fit; the tests draw theirs from other seeds
FULL = 32            # teeth in a phantom (and in a jaw whose count is not annotated)
MOST_TEETH = 20      # the area figure counts jaws with at least this many teeth (a partial
                     # dentition's box is small against the arch its crop must allow for)


def _sample(name: str, real: bool, img: np.ndarray, box, cfg: CropConfig, n_teeth: int = FULL) -> dict:
    """What the fit and the checks need of one image: its landmarks (measured once: the box
    coefficients do not change them), its shape, its annotated teeth box and how many teeth it holds."""
    return {"name": name, "real": real, "lm": measure(img, cfg), "shape": img.shape[:2], "box": list(box),
            "n_teeth": n_teeth}


def _samples(cfg: CropConfig, n_phantoms: int, data: Path = SHARED_OPG) -> list[dict]:
    out = []
    with open(data / "teeth_boxes.csv", newline="") as f:
        for r in csv.DictReader(f):
            img = decode_file(data / "images" / r["file"], "crop_fit").pixels
            out.append(_sample(r["file"], True, img, [float(r[k]) for k in ("x0", "y0", "x1", "y1")], cfg,
                               int(r["n_teeth"])))
    for i in range(n_phantoms):
        h, w = (1400, 2900) if i % 6 == 5 else (384, 768)  # a few at full size
        img, box = phantoms.render_opg(np.random.default_rng([FIT_SEED, i]), h, w)
        out.append(_sample(f"phantom-{i}", False, img, box, cfg))
    return out


def _design(samples: list[dict]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per sample, in units of the jaw scale: how far the top must reach above the occlusal curve's
    middle row and the landmarks it may be linear in; how far the bottom must reach below the
    lowest gap row and its landmarks."""
    yt, xt, xb, yb = [], [], [], []
    for smp in samples:
        lm = smp["lm"]
        hh, s = lm.jaw, lm.scale
        yt.append((lm.gap_mid - smp["box"][1] * s) / hh)
        xt.append([lm.upper_edge / hh, 1.0])
        yb.append((smp["box"][3] * s - lm.gap_bottom) / hh)
        xb.append([lm.root_edge / hh, lm.mandible / hh, 1.0])
    return np.array(yt), np.array(xt), np.array(xb), np.array(yb)


def _ceil3(v: float) -> float:
    return math.ceil(v * 1000) / 1000


# the offset covers every sample given and the residuals' mean + SAFETY_Z standard deviations (a
# one-sided 99.4 % normal quantile): the largest residual of 21 images is no bound for the next image
SAFETY_Z = 2.5
TOP_DESIGNS = ((), (0,))            # slopes used (columns of xt): none, the upper roots' lobe
BOTTOM_DESIGNS = ((), (0,), (0, 1))  # none, the lower roots' lobe, + the mandible distance


def _fit_design(x: np.ndarray, y: np.ndarray, idx: list[int], cols: tuple[int, ...]) -> list[float]:
    """Least squares on ``idx`` with the slopes ``cols`` (kept >= 0: a longer root never shortens
    the box; the others 0), then the offset raised to cover every sample and the safety quantile."""
    slopes = np.zeros(x.shape[1] - 1)
    if cols:
        c = np.linalg.lstsq(x[idx][:, [*cols, x.shape[1] - 1]], y[idx], rcond=None)[0]
        slopes[list(cols)] = np.maximum(np.round(c[:-1], 3), 0.0)
    r = y - x[:, :-1] @ slopes
    off = max(float(r.max()), float(r[idx].mean() + SAFETY_Z * r[idx].std()))
    return [*(float(v) for v in slopes), _ceil3(off)]


def _fit_one(x: np.ndarray, y: np.ndarray, idx: list[int], designs) -> list[float]:
    """The design that holds best under leave-one-out on ``idx`` (fewest images the refit edge
    falls short of, then the largest worst-case margin, then the least mean slack), fitted on all of ``idx``."""
    best = None
    for cols in designs:
        short, slack = [], []
        for i in idx:
            rest = [j for j in idx if j != i]
            cf = _fit_design(x[rest + [j for j in range(len(y)) if j not in idx]],
                             y[rest + [j for j in range(len(y)) if j not in idx]], list(range(len(rest))), cols)
            short.append(float(y[i] - x[i] @ np.array(cf)))
            slack.append(-short[-1])
        # the largest leave-one-out margin wins over the least slack: coverage first (a slope that
        # fits these 21 jaws closely held worse on the held-out one)
        key = (sum(v > 0 for v in short), round(max(short), 2), float(np.mean(slack)))
        if best is None or key < best[0]:
            best = (key, cols)
    return _fit_design(x, y, idx, best[1])


def fit(samples: list[dict], real_idx: list[int]) -> tuple[list[float], list[float]]:
    """(up, down): the top and bottom, each in the form that holds best under leave-one-out on
    ``real_idx``, its offset raised to cover every sample given (phantoms too) and the safety
    quantile, rounded up to 3 decimals."""
    yt, xt, xb, yb = _design(samples)
    return _fit_one(xt, yt, real_idx, TOP_DESIGNS), _fit_one(xb, yb, real_idx, BOTTOM_DESIGNS)


SIDES = ("left", "top", "right", "bottom")


def cuts(crop, box) -> dict:
    """Which sides of ``box`` the crop cuts by more than 1 % of the box's width or height (the
    definition of bench/crop_boxes.py)."""
    bw, bh = box[2] - box[0], box[3] - box[1]
    return {"cut_left": crop[0] - box[0] > 0.01 * bw, "cut_top": crop[1] - box[1] > 0.01 * bh,
            "cut_right": box[2] - crop[2] > 0.01 * bw, "cut_bottom": box[3] - crop[3] > 0.01 * bh}


def _check(samples: list[dict], cfg: CropConfig) -> list[dict]:
    rows = []
    for smp in samples:
        det = detection(smp["lm"], smp["shape"], cfg)
        cov, ratio = coverage_and_ratio(det.box, smp["box"])
        rows.append({"image": smp["name"], "coverage": cov, "area_ratio": ratio, "method": det.method,
                     "n_teeth": smp.get("n_teeth", FULL), "confidence": det.confidence, **cuts(det.box, smp["box"])})
    return rows


SOURCES = ("aku-", "akudual-")  # the two AKUDENTAL subsets (annotated): leave-one-source-out folds


def _prefix(name: str) -> str:
    return next(p for p in sorted(SOURCES, key=len, reverse=True) if name.startswith(p))


def _leave_one_source_out(samples: list[dict], cfg: CropConfig) -> list[dict]:
    """Per source: fit on the other source's images (and the phantoms), crop this source's."""
    out = []
    for src in SOURCES:
        test = [smp for smp in samples if smp["real"] and _prefix(smp["name"]) == src]
        rest = [smp for smp in samples if not (smp["real"] and _prefix(smp["name"]) == src)]
        u, d = fit(rest, [j for j, smp in enumerate(rest) if smp["real"]])
        rows = _check(test, dataclasses.replace(cfg, up=u, down=d))
        out.append(_aggregate(f"held out: {src}* ({len(test)}), fitted on the rest", rows))
    return out


def _aggregate(name: str, rows: list[dict]) -> dict:
    cov = np.array([r["coverage"] for r in rows])
    ratio = np.array([r["area_ratio"] for r in rows])
    share = float(np.mean(cov >= 0.99))
    most = np.array([r.get("n_teeth", FULL) >= MOST_TEETH for r in rows])
    cut = {f"cut_{side}": float(np.mean([bool(r.get(f"cut_{side}", False)) for r in rows])) for side in SIDES}
    # a cut the detector was sure of: the "cut molars at confidence 1.0"
    sure_cuts = sum(any(r.get(f"cut_{side}", False) for side in SIDES) and r.get("confidence", 0.0) >= 0.999
                    for r in rows)
    return {"set": name, "images": len(rows), "covered_share": share, "coverage_min": float(cov.min()),
            "coverage_median": float(np.median(cov)), "area_ratio_mean": float(ratio.mean()),
            "area_ratio_mean_20": float(ratio[most].mean()) if most.any() else float("nan"),
            "fallback_share": float(np.mean([r["method"] == "fallback" for r in rows])), **cut,
            "cut_at_confidence_1": int(sure_cuts),
            "meets_target": bool(share >= 0.98 and ratio.mean() <= 1.5)}


def _demo_ground_truth(tmp: Path) -> list[tuple[str, np.ndarray, tuple]]:
    """The demo archive's clean images with their ground-truth teeth boxes (the archive the tests
    build: seed 11, 16 clean images at 768x384)."""
    raw = tmp / "raw"
    phantoms.build_archive(raw, phantoms.PhantomsConfig(n_clean=16, n_per_defect=1, width=768, height=384), seed=11,
                           progress=False)
    out = []
    with open(raw / "ground_truth.csv", newline="") as f:
        for r in csv.DictReader(f):
            if r["expected_status"] != "ok" or r["defect"] not in ("", "exact_duplicate") or not r["teeth_x0"]:
                continue
            img = pngio.to_float01(decode_file(raw / r["file"], "crop_fit").pixels)
            out.append((r["file"], img, tuple(float(r[k]) for k in ("teeth_x0", "teeth_y0", "teeth_x1", "teeth_y1"))))
    return out


def _work_copy(img: np.ndarray, box, width: int = 1024):
    """A copy ``width`` px wide (the detector works at ``crop.work_width`` = 512 anyway) and the box scaled to it."""
    img = pngio.to_float01(img)
    if img.shape[1] <= width:
        return img.astype(np.float32), tuple(box)
    s = width / img.shape[1]
    small = cv2.resize(img, (width, round(img.shape[0] * s)), interpolation=cv2.INTER_AREA)
    return small.astype(np.float32), tuple(v * s for v in box)


def _transform_rows(images, cfg: CropConfig, seed: int, draws: int = 3,
                    n_teeth: dict | None = None, transforms: dict | None = None) -> dict[str, list[dict]]:
    """Per transform: one row per image (coverage of the transformed teeth box, area ratio, method,
    the image's teeth: ``n_teeth`` by name, a full dentition where not given). ``transforms``
    instead of the issue's (``crop_transforms.TRANSFORMS`` and the random devices)."""
    names = list(transforms) if transforms else [*crop_transforms.TRANSFORMS, "random device (all at once)"]
    per: dict[str, list[dict]] = {name: [] for name in names}
    for k, (name, img, box) in enumerate(images):
        teeth = (n_teeth or {}).get(name, FULL)
        cases = [(tn, *fn(img, box)) for tn, fn in (transforms or crop_transforms.TRANSFORMS).items()]
        rng = np.random.default_rng([seed, k])
        if not transforms:
            cases += [("random device (all at once)", *crop_transforms.random_device(img, box, rng))
                      for _ in range(draws)]
        for tn, im, b in cases:
            det = detect_teeth(im, cfg)
            cov, ratio = coverage_and_ratio(det.box, b)
            per[tn].append({"image": name, "coverage": cov, "area_ratio": ratio, "method": det.method,
                            "n_teeth": teeth, "confidence": det.confidence, **cuts(det.box, b)})
    return per


def _per_source(per: dict[str, list[dict]], label: str) -> list[dict]:
    """The transform rows of ``per`` (transform -> rows) per source (the file name's prefix before
    its first ``-``), over every transform together: a source that regresses shows apart."""
    by: dict[str, list[dict]] = {}
    for rows in per.values():
        for r in rows:
            by.setdefault(str(r.get("image", "?")).split("-")[0], []).append(r)
    return [_aggregate(f"{label}: {src}-* (all transforms)", rows) for src, rows in sorted(by.items())]


def _unannotated(data: Path, cfg: CropConfig) -> list[dict]:
    """The OPGs in ``data``/images with no teeth box (other devices: kul-*, mlua-*), per source: how
    often the detector falls back, its confidence, and the crop's share of the frame. No coverage can
    be computed for them: look at them with ``--overlays``."""
    with open(data / "teeth_boxes.csv", newline="") as f:
        annotated = {r["file"] for r in csv.DictReader(f)}
    per: dict[str, list[dict]] = {}
    more = data.parent / "opg-more" / "images"   # ../shared/data/opg-more: one device, no boxes
    paths = [("", p) for p in sorted((data / "images").iterdir())]
    paths += [("opg-more ", p) for p in (sorted(more.iterdir()) if more.is_dir() else [])]
    for folder, p in paths:
        if p.name in annotated or p.name.startswith("."):
            continue
        img = decode_file(p, "crop_fit").pixels
        det = detect_teeth(img, cfg)
        x0, y0, x1, y1 = det.box
        per.setdefault(folder + p.name.split("-")[0], []).append(
            {"method": det.method, "confidence": det.confidence,
             "share": (x1 - x0) * (y1 - y0) / float(img.shape[0] * img.shape[1])})
    return [{"source": f"{src}-* (no teeth boxes)", "images": len(rows),
             "fallback_share": float(np.mean([r["method"] == "fallback" for r in rows])),
             "confidence_median": float(np.median([r["confidence"] for r in rows])),
             "crop_share_of_frame_mean": float(np.mean([r["share"] for r in rows]))}
            for src, rows in per.items()]


def _overlays(folder: Path, data: Path, cfg: CropConfig) -> int:
    """Every OPG in ``data``/images with its crop box drawn (annotated box in blue where there is
    one), for looking at by eye. Never inside the repository: the images are licence-restricted."""
    repo = Path(__file__).resolve().parents[1]
    folder = folder.resolve()
    if folder == repo or repo in folder.parents:
        raise SystemExit(f"crop_fit: --overlays {folder} is inside the repository; the real images must not go there")
    folder.mkdir(parents=True, exist_ok=True)
    boxes = {}
    with open(data / "teeth_boxes.csv", newline="") as f:
        for r in csv.DictReader(f):
            boxes[r["file"]] = [float(r[k]) for k in ("x0", "y0", "x1", "y1")]
    n = 0
    for p in sorted((data / "images").iterdir()):
        img = decode_file(p, "crop_fit").pixels
        det = detect_teeth(img, cfg)
        png = thumbnail(img, det.box, det.method, 720)
        bgr = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
        s = 720 / img.shape[1]
        if p.name in boxes:
            b = [int(v * s) for v in boxes[p.name]]
            cv2.rectangle(bgr, (b[0], b[1]), (b[2], b[3]), (255, 0, 0), 1)
        cv2.putText(bgr, f"{p.name} {det.method} {det.confidence:.2f}", (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4,
                    (0, 255, 255), 1)
        cv2.imwrite(str(folder / f"{p.stem}.png"), bgr)
        n += 1
    return n


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--phantoms", type=int, default=48)
    ap.add_argument("--data", type=Path, default=Path(os.environ.get("DENTSYNTH_OPG_DEV", SHARED_OPG)),
                    help="the opg-dev folder (default ../shared/data/opg-dev, or $DENTSYNTH_OPG_DEV)")
    ap.add_argument("--overlays", type=Path, help="also write every OPG with its box here (outside the repo)")
    ap.add_argument("--draws", type=int, default=3, help="random-device draws per image")
    args = ap.parse_args()
    data = args.data
    if not (data / "teeth_boxes.csv").is_file():
        print(f"crop_fit: {data} is absent: nothing to fit on (skipped)")
        return 0
    params = config.load_params(Path("params.yaml"))
    cfg = CropConfig(**params.get("crop", {}))
    samples = _samples(cfg, args.phantoms, data)
    real = [i for i, smp in enumerate(samples) if smp["real"]]
    up, down = fit(samples, real)
    fitted = dataclasses.replace(cfg, up=up, down=down)
    rows = _check([samples[i] for i in real], fitted)
    # leave-one-out: refit without image i (its box neither fits nor covers), then crop it
    loo = []
    for i in real:
        rest = [smp for j, smp in enumerate(samples) if j != i]
        u, d = fit(rest, [j for j in range(len(rest)) if rest[j]["real"]])
        loo += _check([samples[i]], dataclasses.replace(cfg, up=u, down=d))
    ph = _check([smp for smp in samples if not smp["real"]], fitted)
    params_rows = _check([samples[i] for i in real], cfg)
    folds = [_aggregate("real, params.yaml settings, in-sample", params_rows),
             _aggregate("real, refitted, in-sample", rows),
             _aggregate("real, leave-one-out (refit without the image)", loo),
             *_leave_one_source_out(samples, cfg),
             _aggregate(f"{len(ph)} fitting phantoms (seed {FIT_SEED})", ph)]

    # device-like transforms (bench/crop_transforms.py) of the annotated real OPGs and of the demo archive
    real_imgs = []
    with open(data / "teeth_boxes.csv", newline="") as f:
        for r in csv.DictReader(f):
            img = decode_file(data / "images" / r["file"], "crop_fit").pixels
            real_imgs.append((r["file"], *_work_copy(img, [float(r[k]) for k in ("x0", "y0", "x1", "y1")])))
    teeth = {smp["name"]: smp["n_teeth"] for smp in samples if smp["real"]}
    with tempfile.TemporaryDirectory() as tmp:
        demo = _demo_ground_truth(Path(tmp))
    table, beyond, sources = [], [], []
    for label, imgs in (("real", real_imgs), ("demo", demo)):
        per = _transform_rows(imgs, cfg, FIT_SEED, args.draws, teeth)
        for tn, trows in per.items():
            table.append(_aggregate(f"{label}: {tn}", trows))
        table.append(_aggregate(f"{label}: all transforms", [r for trows in per.values() for r in trows]))
        if label == "real":
            sources = _per_source(per, label)
        for tn, trows in _transform_rows(imgs, cfg, FIT_SEED, 0, teeth, crop_transforms.BEYOND).items():
            beyond.append(_aggregate(f"{label}: {tn}", trows))
    real_imgs = demo = None
    others = _unannotated(data, cfg)

    summary = {
        "up": up, "down": down, "params_up": list(cfg.up), "params_down": list(cfg.down),
        "real_images": len(rows), "phantoms": len(ph),
        "transforms_meeting_target_real": sum(t["meets_target"] for t in table
                                              if t["set"].startswith("real:") and "all transforms" not in t["set"]),
        "transforms_meeting_target_demo": sum(t["meets_target"] for t in table
                                              if t["set"].startswith("demo:") and "all transforms" not in t["set"]),
        "transforms_covered_real": sum(t["covered_share"] >= 0.98 for t in table
                                       if t["set"].startswith("real:") and "all transforms" not in t["set"]),
        "transforms_covered_demo": sum(t["covered_share"] >= 0.98 for t in table
                                       if t["set"].startswith("demo:") and "all transforms" not in t["set"]),
        "transforms": len(table) // 2 - 1,
        "fallback_share_real_all_transforms": next(t["fallback_share"] for t in table if t["set"] == "real: all transforms"),
        "covered_share_real_all_transforms": next(t["covered_share"] for t in table if t["set"] == "real: all transforms"),
        "cut_at_confidence_1_real": next(t["cut_at_confidence_1"] for t in table if t["set"] == "real: all transforms"),
        "beyond_covered_real": sum(t["covered_share"] >= 0.98 for t in beyond if t["set"].startswith("real:")),
        "beyond_covered_demo": sum(t["covered_share"] >= 0.98 for t in beyond if t["set"].startswith("demo:")),
        "beyond": len(beyond) // 2,
    }
    if args.overlays:
        summary["overlays_written"] = _overlays(args.overlays, data, cfg)
    cols = ["set", "images", "covered_share", "coverage_min", "coverage_median", "area_ratio_mean",
            "area_ratio_mean_20", "fallback_share", "cut_left", "cut_top", "cut_right", "cut_bottom",
            "cut_at_confidence_1", "meets_target"]
    head = "\n".join(f"- {k}: {v:.4g}" if isinstance(v, float) else f"- {k}: {v}" for k, v in summary.items())
    text = (head + "\n\nTarget: coverage >= 0.99 (share of the teeth box inside the crop) on >= 98 % of the images "
            "and mean crop area <= 1.5x the teeth box. Aggregates only (the real images are licence-restricted).\n\n"
            "### Fit and hold-out\n\n" + markdown_table(folds, cols) +
            "\n\n### Device-like transforms (params.yaml settings; real: the 21 annotated OPGs, demo: the demo "
            "archive's ground truth; random device: " + str(args.draws) + " draws per image)\n\n" +
            markdown_table(table, cols) +
            "\n\n### Per source (the real transform rows above, every transform together)\n\n" +
            markdown_table(sources, cols) +
            "\n\ncut_*: the share of images whose crop cuts that side of the teeth box by more than 1 % of its "
            "width or height; cut_at_confidence_1: images cut on any side at confidence >= 0.999.\n\n### Beyond the issue's ranges (bench/crop_transforms.py BEYOND: where the crop stops holding)\n\n" +
            markdown_table(beyond, cols) +
            "\n\narea_ratio_mean_20: the mean over the jaws with at least " + str(MOST_TEETH) + " annotated teeth (18 of "
            "the 21 real OPGs; every demo jaw), the issue's own area figure.\n\n"
            "### Other devices, no teeth boxes (opg-dev and ../shared/data/opg-more; params.yaml settings; coverage is judged by eye on --overlays)\n\n" +
            markdown_table(others, ["source", "images", "fallback_share", "confidence_median",
                                    "crop_share_of_frame_mean"]))
    save("crop_fit", {"summary": summary, "folds": folds, "transforms": table, "sources": sources, "beyond": beyond,
                      "other_devices": others}, text)
    if (list(cfg.up), list(cfg.down)) != (up, down):
        print(f"\nparams.yaml has up {cfg.up} down {list(cfg.down)}; this fit: up {up} down {down}",
              file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
