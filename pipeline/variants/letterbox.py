"""Stage ``letterbox@V``: every kept image (``full``: the cleaned image; ``teeth``: its crop) -> exactly
V's height x width, plus the per-image transform (``pipeline/variants/geometry.py``) in ``transforms.csv``.
With ``sr_scale`` on, also at the delivered size (``images_full/``: what the super-resolution stage
learns from and the full-size evaluation compares with).

Per image: optional percentile normalisation and CLAHE (cv2 on 16-bit, since albumentations' CLAHE
breaks on uint16), then the albumentations resize (INTER_AREA when shrinking) and centred constant
padding (``pad_value``) on the 16-bit image, then a 16-bit PNG.
"""
from __future__ import annotations

import csv
import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import albumentations as A  # at import time: the forkserver preloads it once for every worker
import cv2
import numpy as np

from pipeline.core import atomic, config, pngio, workpool
from pipeline.variants import geometry
from pipeline.core.tables import write_csv


@dataclass(frozen=True)
class LetterboxConfig:
    """params.yaml ``letterbox`` (shared by every variant)."""

    pad_value: float = config.param(0.0, ge=0, le=1)      # padding grey
    normalise: Literal["none", "percentile"] = "none"
    percentiles: list[float] = config.param(factory=lambda: [0.5, 99.5], ge=0, le=100, length=2)  # stretch these to 0 and 1
    clahe: bool = False
    clahe_clip: float = config.param(2.0, gt=0)
    clahe_grid: int = config.param(8, ge=1)
    png_compression: int = config.param(1, ge=0, le=9)

    def __post_init__(self) -> None:
        if not self.percentiles[0] < self.percentiles[1]:
            raise config.ConfigError(f"letterbox.percentiles must be [lo, hi] with lo < hi, got {self.percentiles}")


def enhance(img: np.ndarray, cfg: LetterboxConfig) -> np.ndarray:
    """Normalisation / CLAHE as configured; uint16 out (the input itself when neither is on)."""
    img = pngio.to_uint16(img)
    if cfg.normalise == "percentile":
        lo, hi = np.percentile(img, cfg.percentiles)
        f = np.clip((img.astype(np.float32) - lo) / max(float(hi - lo), 1.0), 0, 1)
        img = pngio.to_uint16(f)
    if cfg.clahe:
        clahe = cv2.createCLAHE(clipLimit=cfg.clahe_clip, tileGridSize=(cfg.clahe_grid, cfg.clahe_grid))
        img = clahe.apply(img)
    return img


def fit(img: np.ndarray, variant: config.Variant, cfg: LetterboxConfig) -> tuple[np.ndarray, geometry.Transform]:
    """One image -> (float32 [0, 1] image of exactly variant.height x variant.width, its transform).

    The resize and pad run on the 16-bit image (the output is 16-bit too): a full-size OPG in float32
    is twice the memory traffic, which is what limits two workers on two cores."""

    h, w = img.shape[:2]
    t = geometry.plan(w, h, variant.width, variant.height, variant.mode)
    new_w, new_h = t.resized
    interp = cv2.INTER_AREA if new_w < w or new_h < h else cv2.INTER_LINEAR
    pipe = A.Compose([
        A.Resize(height=new_h, width=new_w, interpolation=interp),
        A.PadIfNeeded(min_height=variant.height, min_width=variant.width, position="center",
                      border_mode=cv2.BORDER_CONSTANT, fill=int(round(cfg.pad_value * 65535))),
    ])
    out = pipe(image=enhance(img, cfg))["image"]
    if out.shape[:2] != (variant.height, variant.width) or out.dtype != np.uint16:  # never write a wrong image
        raise RuntimeError(f"letterbox produced {out.shape} {out.dtype}, expected {(variant.height, variant.width)} uint16")
    return pngio.to_float01(out), t


def full_size(variant: config.Variant) -> config.Variant:
    """The variant's geometry at its delivered size."""
    h, w = variant.delivered
    return dataclasses.replace(variant, height=h, width=w, sr_scale=0)


def letterbox_one(image_id: str, src: Path, out_dir: Path, variant: config.Variant,
                  cfg: LetterboxConfig) -> dict:
    img = pngio.read_png16(src)
    out, t = fit(img, variant, cfg)
    pngio.write_png16(out_dir / f"{image_id}.png", out, cfg.png_compression)
    if variant.sr_scale:
        full, _ = fit(img, full_size(variant), cfg)
        pngio.write_png16(out_dir.parent / "images_full" / f"{image_id}.png", full, cfg.png_compression)
    return t.row(image_id)


def source_ids(source: str, audit_dir: Path, crops_dir: Path) -> tuple[list[str], Path]:
    """The image ids to process and the folder holding their PNGs, for a variant's source."""
    if source == "full":
        table, images = audit_dir / "kept.csv", audit_dir / "images"
    else:
        table, images = crops_dir / "manifest.csv", crops_dir / "images"
    with open(table, newline="", encoding="utf-8") as f:
        ids = [r["image_id"] for r in csv.DictReader(f)]
    return sorted(set(ids)), images


def run_letterbox(name: str, variant: config.Variant, cfg: LetterboxConfig, audit_dir: Path, crops_dir: Path,
                  out_root: Path, workers: int | None = None, progress: bool = True) -> list[dict]:
    """Stage ``letterbox@name``: -> ``out_root/name/images/*.png`` + ``transforms.csv``."""
    ids, images = source_ids(variant.source, Path(audit_dir), Path(crops_dir))
    n = config.workers(workers)
    with atomic.directory(Path(out_root) / name) as tmp:
        (tmp / "images").mkdir()
        if variant.sr_scale:
            (tmp / "images_full").mkdir()
        jobs = [(iid, images / f"{iid}.png", tmp / "images", variant, cfg) for iid in ids]
        rows = list(workpool.imap(letterbox_one, jobs, n, f"letterbox {name}", progress))
        rows.sort(key=lambda r: r["image_id"])
        write_csv(tmp / "transforms.csv", geometry.TRANSFORM_COLUMNS, rows)
    return rows
