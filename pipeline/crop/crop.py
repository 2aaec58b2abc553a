"""Stage ``crop``: every kept cleaned image -> its teeth crop, the manifest (boxes in the cleaned
and the ingested frame, confidence, method, reason) and ``reports/crops.html``.

The detector (:mod:`pipeline.crop.landmarks`, :mod:`pipeline.crop.boxes`) never stops the batch:
an error on one image gives that image the fallback window, with the error named in ``reason``.
"""
from __future__ import annotations

import csv
import tempfile
from pathlib import Path

import numpy as np

from pipeline.core import atomic, config, pngio, workpool
from pipeline.core.frames import Cleaning
from pipeline.core.tables import write_csv
from pipeline.crop.boxes import Detection, detect_teeth, fallback_window
from pipeline.crop.config import CropConfig
from pipeline.crop.crops_report import thumbnail, write_report

__all__ = ["MANIFEST_COLUMNS", "CropConfig", "crop_one", "jobs", "run_crop", "summarise"]

MANIFEST_COLUMNS = ["image_id", "x0", "y0", "x1", "y1", "confidence", "method", "cx0", "cy0", "cx1", "cy1",
                    "reason"]


def _read_table(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def crop_one(image_id: str, src: Path, cleaning: Cleaning, images_dir: Path, thumbs_dir: Path,
             cfg: CropConfig) -> dict:
    """Detect, cut and write one cleaned image; return its manifest row (never raises for bad input)."""
    row = {c: "" for c in MANIFEST_COLUMNS}
    row["image_id"] = image_id
    try:
        img = pngio.read_png16(src)
    except (OSError, ValueError) as e:
        raise RuntimeError(f"crop: cannot read cleaned image {src}: {e}") from e
    if (img.shape[1], img.shape[0]) != cleaning.size:
        raise RuntimeError(f"crop: {src} is {img.shape[1]}x{img.shape[0]} but audit.csv's trim says "
                           f"{cleaning.size[0]}x{cleaning.size[1]}")
    try:
        det = detect_teeth(img, cfg)
    except Exception as e:  # a detector bug on one image must not stop the batch: fall back, say why
        h, w = img.shape
        det = Detection(fallback_window(cfg.fallback, w, h), 0.0, "fallback", None, f"detector error ({type(e).__name__})")
    cx0, cy0, cx1, cy1 = det.box
    pngio.write_png16(images_dir / f"{image_id}.png", np.ascontiguousarray(img[cy0:cy1, cx0:cx1]),
                      cfg.png_compression)
    atomic.write_bytes(thumbs_dir / f"{image_id}.png", thumbnail(img, det.box, det.method, cfg.thumb_width))
    x0, y0, x1, y1 = cleaning.to_ingested(det.box)
    row.update(x0=int(x0), y0=int(y0), x1=int(x1), y1=int(y1), confidence=f"{det.confidence:.4f}",
               method=det.method, cx0=cx0, cy0=cy0, cx1=cx1, cy1=cy1, reason=det.reason)
    return row


def jobs(audit_dir: Path, ingested_manifest: Path) -> list[tuple[str, Cleaning]]:
    """(image_id, cleaning) of every kept image, sorted by id."""
    kept = {r["image_id"] for r in _read_table(audit_dir / "kept.csv")}
    audit = {r["image_id"]: r for r in _read_table(audit_dir / "audit.csv")}
    sizes = {}
    for r in _read_table(ingested_manifest):
        if r.get("status") == "ok":
            sizes[r["image_id"]] = (int(r["width"]), int(r["height"]))
    out = []
    for iid in sorted(kept):
        if iid not in audit or iid not in sizes:
            raise RuntimeError(f"crop: kept image {iid} is missing from audit.csv or the ingest manifest")
        out.append((iid, Cleaning.from_row(audit[iid], *sizes[iid])))
    return out


def run_crop(cfg: CropConfig, audit_dir: Path, ingested_manifest: Path, out_dir: Path, report: Path,
             workers: int | None = None, progress: bool = True) -> list[dict]:
    """Stage ``crop``: kept cleaned images -> ``out_dir/images/*.png``, ``out_dir/manifest.csv``, ``report``."""
    audit_dir = Path(audit_dir)
    todo = jobs(audit_dir, Path(ingested_manifest))
    n = config.workers(workers)
    Path(out_dir).parent.mkdir(parents=True, exist_ok=True)
    with atomic.directory(out_dir) as tmp, tempfile.TemporaryDirectory(dir=Path(out_dir).parent) as thumbs_tmp:
        thumbs = Path(thumbs_tmp)
        images = tmp / "images"
        images.mkdir()
        args = lambda iid, cl: (iid, audit_dir / "images" / f"{iid}.png", cl, images, thumbs, cfg)  # noqa: E731
        rows = list(workpool.imap(crop_one, [args(iid, cl) for iid, cl in todo], n, "crop", progress))
        rows.sort(key=lambda r: r["image_id"])
        write_csv(tmp / "manifest.csv", MANIFEST_COLUMNS, rows)
        Path(report).parent.mkdir(parents=True, exist_ok=True)
        write_report(Path(report), rows, thumbs)
    return rows


def summarise(rows: list[dict]) -> str:
    """One line for the stage's log: how many detected, how many fell back, the median confidence."""
    fb = sum(r["method"] == "fallback" for r in rows)
    conf = [float(r["confidence"]) for r in rows]
    return (f"{len(rows)} crops: {len(rows) - fb} detected, {fb} fallback; "
            f"median confidence {np.median(conf) if conf else float('nan'):.2f}")
