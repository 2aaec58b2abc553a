"""Letterbox stage throughput on full-size demo OPGs (about 2900x1400, source `full`) into 288x512 and
256x256, 1 and 2 worker processes, against the floor of reading + writing the PNGs without resizing.

    python -m bench.letterbox [--n 16] [--width 2900] [--height 1400]
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from bench.common import markdown_table, save, timed
from pipeline import config, pngio
from pipeline.letterbox import LetterboxConfig, run_letterbox
from tests.test_crop import make_stage_inputs

VARIANTS = {"full_288x512": config.Variant("full", "16:9", "letterbox", 288, 512),
            "full_256x256": config.Variant("full", "square", "letterbox", 256, 256)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--width", type=int, default=2900)
    ap.add_argument("--height", type=int, default=1400)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_stage_inputs(root, n=args.n, size=(args.height, args.width), seed=2)
        paths = sorted((root / "audit/images").glob("*.png"))
        t_read, _ = timed(lambda: [pngio.read_png16(p).shape for p in paths])
        rows = []
        for name, v in VARIANTS.items():
            for workers in (1, 2):
                t, _ = timed(run_letterbox, name, v, LetterboxConfig(), root / "audit", root / "crops",
                             root / f"variants{workers}", workers=workers, progress=False)
                n = len(paths)
                rows.append({"variant": name, "workers": workers, "images": n, "read_only_img_s": n / t_read,
                             "letterbox_img_s": n / t, "ms_per_img": 1000 * t / n})
            rows[-1]["speedup_vs_1_worker"] = rows[-1]["letterbox_img_s"] / rows[-2]["letterbox_img_s"]
    cols = ["variant", "workers", "images", "read_only_img_s", "letterbox_img_s", "ms_per_img", "speedup_vs_1_worker"]
    save("letterbox", {"size": [args.height, args.width], "rows": rows}, markdown_table(rows, cols))


if __name__ == "__main__":
    main()
