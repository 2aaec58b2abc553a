"""Check the teeth crop against *your own* annotated boxes: the device check before you trust it.

The crop was built and validated on the OPGs of a few devices (bench/crop_fit.py). Before an
archive from another device goes through the pipeline, annotate the teeth box (the union of every
tooth, crown to root apex, germs included) of 20 or more of its images, in pixels, in a CSV with the
columns of ``../shared/data/opg-dev/teeth_boxes.csv``::

    file,width,height,n_teeth,x0,y0,x1,y1

and run, with the ``crop`` settings of params.yaml::

    python -m bench.crop_boxes --boxes my_boxes.csv --images /archive/folder [--tolerance 0.97]

It prints, per family of files (the file name's prefix before the first ``-``) and overall: the share
of images whose crop holds at least 99 % of the box (and at least ``--tolerance``: by-eye boxes are
a few pixels off), the median coverage, the mean crop area over the box area, the fallback share and
which side of the box was cut how often. Aggregates only: nothing per image is written, so it may run
on images that must not leave the institute. ``--out NAME`` also saves the aggregates as
reports/bench/NAME.md/.json.
"""
from __future__ import annotations

import argparse
import csv
import sys
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import yaml

from bench.common import markdown_table, save
from pipeline.core import config
from pipeline.crop.boxes import coverage_and_ratio, detect_teeth
from pipeline.crop.config import CropConfig
from pipeline.ingest.decode import DecodeError, decode_file

COLUMNS = ["set", "images", "covered_share", "within_tolerance_share", "coverage_min", "coverage_median",
           "area_ratio_mean", "fallback_share", "cut_left", "cut_top", "cut_right", "cut_bottom"]


def read_boxes(path: Path) -> list[dict]:
    """The annotated boxes; a row without a usable box is a clear error, naming the line."""
    rows = []
    with open(path, newline="", encoding="utf-8") as f:
        for i, r in enumerate(csv.DictReader(f), start=2):
            try:
                box = tuple(float(r[k]) for k in ("x0", "y0", "x1", "y1"))
            except (KeyError, TypeError, ValueError) as e:
                raise SystemExit(f"crop_boxes: {path}:{i}: needs file,x0,y0,x1,y1 numbers ({e})") from e
            if not (box[0] < box[2] and box[1] < box[3]):
                raise SystemExit(f"crop_boxes: {path}:{i}: empty box {box}")
            rows.append({"file": r["file"], "box": box})
    if not rows:
        raise SystemExit(f"crop_boxes: {path} lists no box")
    return rows


def judge(crop: tuple, box: tuple, tolerance: float) -> dict:
    """One image's figures: coverage, area ratio, and the sides of ``box`` the crop cuts (by more
    than 1 % of the box's width or height)."""
    cov, ratio = coverage_and_ratio(crop, box)
    bw, bh = box[2] - box[0], box[3] - box[1]
    cut = {"cut_left": crop[0] - box[0] > 0.01 * bw, "cut_top": crop[1] - box[1] > 0.01 * bh,
           "cut_right": box[2] - crop[2] > 0.01 * bw, "cut_bottom": box[3] - crop[3] > 0.01 * bh}
    return {"coverage": cov, "ratio": ratio, "covered": cov >= 0.99, "tolerated": cov >= tolerance, **cut}


def summary(name: str, judged: list[dict]) -> dict:
    cov = np.array([j["coverage"] for j in judged])
    row = {"set": name, "images": len(judged), "covered_share": float(np.mean([j["covered"] for j in judged])),
           "within_tolerance_share": float(np.mean([j["tolerated"] for j in judged])),
           "coverage_min": float(cov.min()), "coverage_median": float(np.median(cov)),
           "area_ratio_mean": float(np.mean([j["ratio"] for j in judged])),
           "fallback_share": float(np.mean([j["method"] == "fallback" for j in judged]))}
    sides = Counter(k for j in judged for k in ("cut_left", "cut_top", "cut_right", "cut_bottom") if j[k])
    row.update({k: sides.get(k, 0) for k in ("cut_left", "cut_top", "cut_right", "cut_bottom")})
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--boxes", type=Path, required=True, help="CSV: file,width,height,n_teeth,x0,y0,x1,y1 (pixels)")
    ap.add_argument("--images", type=Path, required=True, help="the folder the CSV's file names are in")
    ap.add_argument("--params", type=Path, default=Path("params.yaml"), help="crop settings (default params.yaml)")
    ap.add_argument("--tolerance", type=float, default=0.97, help="coverage a by-eye box is forgiven down to")
    ap.add_argument("--out", help="also save the aggregates as reports/bench/OUT.md/.json")
    args = ap.parse_args(argv)
    cfg = config.stage_config("crop", CropConfig, yaml.safe_load(args.params.read_text()))
    families: dict[str, list[dict]] = defaultdict(list)
    for r in read_boxes(args.boxes):
        path = args.images / r["file"]
        if not path.is_file():
            raise SystemExit(f"crop_boxes: {path} (listed in {args.boxes}) does not exist")
        try:
            img = decode_file(path, "crop_boxes").pixels
        except DecodeError as e:
            raise SystemExit(f"crop_boxes: {path}: {e}") from e
        det = detect_teeth(img, cfg)
        families[r["file"].split("-")[0]].append({**judge(det.box, r["box"], args.tolerance), "method": det.method})
    rows = [summary(name, j) for name, j in sorted(families.items())]
    if len(rows) > 1:
        rows.append(summary("all", [j for js in families.values() for j in js]))
    table = markdown_table(rows, COLUMNS)
    if args.out:
        save(args.out, {"boxes": args.boxes.name, "tolerance": args.tolerance, "sets": rows},
             f"Crop vs annotated boxes ({args.boxes.name}; coverage >= 0.99 and >= {args.tolerance}; "
             "cut_*: images whose crop cuts that side by > 1 % of the box)\n\n" + table)
    else:
        print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
