"""A variant's training split as one tensor: ``(N, 1, H, W)`` float32 in [-1, 1].

Reads ``data/split/split.csv`` (rows with ``split == train``) and the variant's
``images/<image_id>.png`` (16-bit grey, exactly the variant's H x W). A listed image that is
missing or of the wrong size is an error naming every offender (the letterbox contract guarantees
the size, so a mismatch means stale or foreign data), never a silent skip.
"""
from __future__ import annotations

import concurrent.futures as cf
import os
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from pipeline.core import pngio


def train_ids(split_csv: str | os.PathLike) -> list[str]:
    table = pd.read_csv(split_csv, dtype=str, keep_default_na=False)
    missing = {"image_id", "split"} - set(table.columns)
    if missing:
        raise ValueError(f"{split_csv}: missing column(s) {sorted(missing)}")
    return sorted(table.loc[table["split"] == "train", "image_id"].tolist())


def _read(path: Path) -> np.ndarray:
    import cv2

    cv2.setNumThreads(1)
    return pngio.read_png16(path)


def load_train_images(images_dir: str | os.PathLike, split_csv: str | os.PathLike, height: int,
                      width: int, threads: int = 4) -> tuple[torch.Tensor, list[str]]:
    """(images (N, 1, H, W) float32 in [-1, 1], their image ids in order)."""
    images_dir = Path(images_dir)
    ids = train_ids(split_csv)
    if not ids:
        raise ValueError(f"{split_csv}: no rows with split == train")
    paths = [images_dir / f"{i}.png" for i in ids]
    absent = [p.name for p in paths if not p.is_file()]
    if absent:
        raise FileNotFoundError(f"{len(absent)} train image(s) missing from {images_dir}: {absent[:5]}")
    out = np.empty((len(ids), 1, height, width), dtype=np.float32)
    wrong: list[str] = []
    # decoding is I/O + libpng (GIL released): threads suffice, no process pool needed
    with cf.ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        for k, img in enumerate(tqdm(pool.map(_read, paths), total=len(paths), desc="load train",
                                     unit="img", mininterval=2.0)):
            if img.shape != (height, width):
                wrong.append(f"{ids[k]} {img.shape[1]}x{img.shape[0]}")
                continue
            out[k, 0] = img.astype(np.float32) * (2.0 / 65535.0) - 1.0
    if wrong:
        raise ValueError(f"{len(wrong)} image(s) in {images_dir} are not {width}x{height}: {wrong[:5]}")
    return torch.from_numpy(out), ids
