"""Crop stage throughput on full-size demo OPGs (about 2900x1400), 1 and 2 worker processes, against
the floor of reading the cleaned PNGs alone, and the detector alone (no I/O).

    python -m bench.crop [--n 16] [--width 2900] [--height 1400]
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from bench.common import markdown_table, save, timed
from pipeline import pngio
from pipeline.crop import CropConfig, detect_teeth, run_crop
from tests.test_crop import make_stage_inputs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--width", type=int, default=2900)
    ap.add_argument("--height", type=int, default=1400)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_stage_inputs(root, n=args.n, size=(args.height, args.width), seed=1)
        paths = sorted((root / "audit/images").glob("*.png"))
        t_read, imgs = timed(lambda: [pngio.read_png16(p) for p in paths[:4]])
        t_det, _ = timed(lambda: [detect_teeth(i, CropConfig()) for i in imgs])
        del imgs
        rows = []
        for workers in (1, 2):
            t, out = timed(run_crop, CropConfig(), root / "audit", root / "ingested/manifest.csv",
                           root / f"crops{workers}", root / f"crops{workers}.html", workers=workers, progress=False)
            n = len(paths)
            rows.append({"workers": workers, "images": n, "read_only_img_s": 4 / t_read,
                         "detect_only_img_s": 4 / t_det, "crop_stage_img_s": n / t,
                         "crop_ms_per_img": 1000 * t / n,
                         "fallback": sum(r["method"] == "fallback" for r in out)})
        rows[1]["speedup_vs_1_worker"] = rows[1]["crop_stage_img_s"] / rows[0]["crop_stage_img_s"]
    cols = ["workers", "images", "read_only_img_s", "detect_only_img_s", "crop_stage_img_s", "crop_ms_per_img",
            "fallback", "speedup_vs_1_worker"]
    save("crop", {"size": [args.height, args.width], "rows": rows}, markdown_table(rows, cols))


if __name__ == "__main__":
    main()
