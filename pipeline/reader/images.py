"""The pictures a reader study shows: held-out real images and synthetic ones of one variant, at
the size the synthetic ones are delivered at, embedded as uncompressed PNG (the byte size of an
image never tells real from synthetic)."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from pipeline.core import pngio
from pipeline.core.html import png_data_uri
from pipeline.core.layout import Layout
from pipeline.core.tables import is_flagged, read_csv, read_seeds
from pipeline.reader.config import ReaderStudyConfig, StudyError
from pipeline.variants.split import read_split


@dataclass(frozen=True)
class Candidate:
    label: str      # real | synthetic
    path: Path
    file: str       # image id (real) or synthetic file name
    split: str      # val | test for real, "" for synthetic


def delivered_scale(layout: Layout, variant: str) -> int:
    """How much larger than the variant's frame the synthetic images are (their ``sr.json``; 1 without)."""
    meta = layout.synthetic(variant) / "sr.json"
    return int(json.loads(meta.read_text())["scale"]) if meta.is_file() else 1


def real_candidates(cfg: ReaderStudyConfig, layout: Layout) -> list[Candidate]:
    """Held-out real images at the size the synthetic ones are delivered at."""
    split = read_split(layout.split_csv)
    train = set(split.get("train", []))
    full = delivered_scale(layout, cfg.variant) > 1
    images = layout.variant(cfg.variant) / ("images_full" if full else "images")
    out, missing = [], []
    for s in cfg.splits:
        for iid in sorted(split.get(s, [])):
            if iid in train:   # a split table that lists an image twice: never show a training image
                raise StudyError(f"{layout.split_csv}: {iid} is in both train and {s}")
            p = images / f"{iid}.png"
            (out.append(Candidate("real", p, iid, s)) if p.exists() else missing.append(iid))
    if missing:
        print(f"[reader_study] {len(missing)} held-out images of the split are not in {images}: left out")
    return out


def synthetic_candidates(cfg: ReaderStudyConfig, layout: Layout) -> tuple[list[Candidate], int]:
    """(synthetic images, how many were left out as near-copies of a training image)."""
    folder = layout.synthetic(cfg.variant)
    files = [r["file"] for r in read_seeds(folder)]
    flagged: set[str] = set()
    if cfg.exclude_near_copies:
        nearest = layout.eval / "nearest.csv"
        if not nearest.exists():
            raise FileNotFoundError(f"{nearest} is missing (reader_study.exclude_near_copies): run evaluate first")
        flagged = {r["file"] for r in read_csv(nearest) if r["variant"] == cfg.variant and is_flagged(r["flagged"])}
    out = [Candidate("synthetic", folder / "png16" / f, f, "") for f in sorted(files) if f not in flagged]
    missing = [c.file for c in out if not c.path.exists()]
    if missing:
        raise FileNotFoundError(f"{folder}/png16: {len(missing)} files of seeds.csv are missing, e.g. {missing[0]}")
    return out, len(set(files) & flagged)


def content_box(layout: Layout, variant: str, real: list[Candidate]) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1): the part of the variant's frame that is picture (not pad) in every one of
    ``real`` (from transforms.csv); None when nothing is padded."""
    path = layout.variant(variant) / "transforms.csv"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: letterbox_pad false needs it to find the pad bars")
    rows = {r["image_id"]: r for r in read_csv(path)}
    box = [0, 0, 10 ** 9, 10 ** 9]
    for c in real:
        r = rows.get(c.file)
        if r is None:
            raise StudyError(f"{path} has no row for {c.file}")
        x0, y0 = int(r["pad_left"]), int(r["pad_top"])
        x1 = x0 + round(int(r["src_w"]) * float(r["scale_x"]))
        y1 = y0 + round(int(r["src_h"]) * float(r["scale_y"]))
        box = [max(box[0], x0), max(box[1], y0), min(box[2], x1), min(box[3], y1)]
    if box[2] - box[0] < 8 or box[3] - box[1] < 8:
        raise StudyError(f"the real images' common content box {box} is too small to show")
    f = delivered_scale(layout, variant)
    return tuple(v * f for v in box)


def display_image(path: Path, box: tuple[int, int, int, int] | None) -> np.ndarray:
    """The picture as embedded: the variant's own pixels (cut to ``box``), 8-bit grey. Real and
    synthetic images go through exactly this; the browser scales both alike to ``display_width``."""
    img = pngio.read_float01(path)
    if box is not None:
        x0, y0, x1, y1 = box
        img = img[y0:y1, x0:x1]
    return np.round(np.clip(img, 0, 1) * 255).astype(np.uint8)


def stored_png_uri(img: np.ndarray) -> str:
    """An *uncompressed* PNG data URI: its length depends on the size only, never on the content.
    (Compressed, the byte size alone told real from synthetic on the demo: synthetic images were
    smoother, every one smaller than every real one.)"""
    ok, buf = cv2.imencode(".png", img, [cv2.IMWRITE_PNG_COMPRESSION, 0])
    if not ok:
        raise OSError("PNG encoding failed")
    return png_data_uri(buf.tobytes())
