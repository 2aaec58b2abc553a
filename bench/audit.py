"""Audit time per full-size OPG (about 2900x1400): the whole stage (measure, decide, write cleaned
images) with 1 and 2 worker processes, and the measurements of one image alone.

    python -m bench.audit [--n 8] [--width 2900] [--height 1400]
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from bench.common import markdown_table, save, timed
from pipeline import audit, ingest, phantoms, pngio
from pipeline.audit import AuditConfig
from pipeline.ingest import IngestConfig


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=8, help="clean full-size OPGs to generate")
    ap.add_argument("--width", type=int, default=2900)
    ap.add_argument("--height", type=int, default=1400)
    args = ap.parse_args()
    cfg = AuditConfig()
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw"
        phantoms.build_archive(raw, phantoms.PhantomsConfig(n_clean=args.n, n_per_defect=0, width=args.width,
                                                            height=args.height), seed=1, progress=False)
        ingest.run_ingest(IngestConfig(raw_dir=str(raw)), Path(tmp) / "ingested", workers=2, progress=False)
        images = sorted((Path(tmp) / "ingested" / "images").glob("*.png"))
        img = pngio.read_png16(images[0])
        audit.measure(img, cfg)  # warm up
        t_measure = min(timed(audit.measure, img, cfg)[0] for _ in range(3))
        rows = []
        for workers in (1, 2):
            t, out = timed(audit.run_audit, cfg, Path(tmp) / "ingested", Path(tmp) / f"audit{workers}", None,
                           workers=workers, progress=False)
            n = len(out)
            rows.append({"workers": workers, "images": n, "s_per_img": t / n, "img_s": n / t,
                         "measure_only_s_per_img": t_measure})
    cols = ["workers", "images", "s_per_img", "img_s", "measure_only_s_per_img"]
    save("audit", {"size": [args.height, args.width], "rows": rows}, markdown_table(rows, cols))


if __name__ == "__main__":
    main()
