"""A contact sheet: labelled thumbnails of grey images on one 8-bit PNG."""
from __future__ import annotations

import math

import cv2
import numpy as np

from pipeline.core import pngio


def contact_sheet(images: list[tuple[str, np.ndarray]], thumb_w: int = 192, columns: int = 6,
                  title: str = "SYNTHETIC images - not patients") -> bytes:
    """PNG bytes of a grid of (label, grey image) pairs; every thumbnail keeps its aspect ratio."""
    if not images:
        images = [("(no images)", np.zeros((9, 16), np.uint16))]
    thumbs = []
    for label, img in images:
        f = pngio.to_float01(img)
        h = max(1, round(f.shape[0] * thumb_w / f.shape[1]))
        t = cv2.resize(f, (thumb_w, h), interpolation=cv2.INTER_AREA)
        thumbs.append((label, (np.clip(t, 0, 1) * 255).astype(np.uint8)))
    cell_h = max(t.shape[0] for _, t in thumbs) + 18
    cols = min(columns, len(thumbs))
    rows = math.ceil(len(thumbs) / cols)
    top = 28
    sheet = np.full((top + rows * cell_h + 4, cols * (thumb_w + 4) + 4), 40, np.uint8)
    cv2.putText(sheet, title, (6, 19), cv2.FONT_HERSHEY_SIMPLEX, 0.55, 255, 1, cv2.LINE_AA)
    for k, (label, t) in enumerate(thumbs):
        r, c = divmod(k, cols)
        y, x = top + r * cell_h, 4 + c * (thumb_w + 4)
        sheet[y:y + t.shape[0], x:x + thumb_w] = t
        cv2.putText(sheet, label[:30], (x + 2, y + t.shape[0] + 13), cv2.FONT_HERSHEY_SIMPLEX, 0.38, 220, 1,
                    cv2.LINE_AA)
    ok, buf = cv2.imencode(".png", sheet)
    if not ok:
        raise OSError("PNG encoding failed")
    return buf.tobytes()
