"""Letterbox / squash geometry: source image -> fixed output size, and back.

Coordinates are continuous pixel-edge coordinates (pixel ``i`` spans ``[i, i + 1)``), the
convention of ``cv2.resize`` and of half-open boxes, so a box maps exactly and a point maps as

    u = x * scale_x + pad_left,   v = y * scale_y + pad_top     (source (x, y) -> output (u, v))

``letterbox`` keeps the aspect ratio (one scale for both axes, up to the rounding of the resized
size to whole pixels) and pads the rest symmetrically; ``squash`` stretches each axis on its own (the
old baseline, kept only for comparison). A :class:`Transform` is stored per image in
``data/variants/<V>/transforms.csv``.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

import cv2
import numpy as np

TRANSFORM_COLUMNS = ["image_id", "src_w", "src_h", "scale_x", "scale_y", "pad_left", "pad_top", "out_w", "out_h"]


@dataclass(frozen=True)
class Transform:
    src_w: int
    src_h: int
    scale_x: float
    scale_y: float
    pad_left: int
    pad_top: int
    out_w: int
    out_h: int

    @property
    def resized(self) -> tuple[int, int]:
        """(width, height) of the resized image before padding."""
        return round(self.src_w * self.scale_x), round(self.src_h * self.scale_y)

    # points: (..., 2) arrays of (x, y)
    def forward_points(self, pts) -> np.ndarray:
        p = np.asarray(pts, np.float64)
        return np.stack([p[..., 0] * self.scale_x + self.pad_left, p[..., 1] * self.scale_y + self.pad_top], -1)

    def inverse_points(self, pts) -> np.ndarray:
        p = np.asarray(pts, np.float64)
        return np.stack([(p[..., 0] - self.pad_left) / self.scale_x, (p[..., 1] - self.pad_top) / self.scale_y], -1)

    # boxes: (x0, y0, x1, y1), half-open
    def forward_box(self, box) -> tuple[float, float, float, float]:
        (x0, y0), (x1, y1) = self.forward_points([box[:2], box[2:]])
        return float(x0), float(y0), float(x1), float(y1)

    def inverse_box(self, box) -> tuple[float, float, float, float]:
        (x0, y0), (x1, y1) = self.inverse_points([box[:2], box[2:]])
        return float(x0), float(y0), float(x1), float(y1)

    def content_box(self) -> tuple[int, int, int, int]:
        """The output pixels that hold image (not padding)."""
        w, h = self.resized
        return self.pad_left, self.pad_top, self.pad_left + w, self.pad_top + h

    def inverse_image(self, img: np.ndarray, interpolation: int = cv2.INTER_LINEAR) -> np.ndarray:
        """An output-sized image (e.g. a generated one) mapped back onto the source pixel grid."""
        if img.shape[:2] != (self.out_h, self.out_w):
            raise ValueError(f"image is {img.shape[1]}x{img.shape[0]}, transform outputs {self.out_w}x{self.out_h}")
        x0, y0, x1, y1 = self.content_box()
        content = np.ascontiguousarray(img[y0:y1, x0:x1])
        return cv2.resize(content, (self.src_w, self.src_h), interpolation=interpolation)

    def row(self, image_id: str) -> dict:
        return {"image_id": image_id, **asdict(self)}

    @classmethod
    def from_row(cls, row) -> "Transform":
        return cls(int(row["src_w"]), int(row["src_h"]), float(row["scale_x"]), float(row["scale_y"]),
                   int(row["pad_left"]), int(row["pad_top"]), int(row["out_w"]), int(row["out_h"]))


def plan(src_w: int, src_h: int, out_w: int, out_h: int, mode: Literal["letterbox", "squash"]) -> Transform:
    """The transform that fits a ``src_w`` x ``src_h`` image into ``out_w`` x ``out_h``."""
    if min(src_w, src_h, out_w, out_h) <= 0:
        raise ValueError(f"sizes must be positive: {src_w}x{src_h} -> {out_w}x{out_h}")
    if mode == "squash":
        return Transform(src_w, src_h, out_w / src_w, out_h / src_h, 0, 0, out_w, out_h)
    if mode != "letterbox":
        raise ValueError(f"unknown mode {mode!r}")
    s = min(out_w / src_w, out_h / src_h)
    new_w = min(out_w, max(1, round(src_w * s)))
    new_h = min(out_h, max(1, round(src_h * s)))
    # the scale of each axis is the one the whole-pixel resize actually applies
    return Transform(src_w, src_h, new_w / src_w, new_h / src_h, (out_w - new_w) // 2, (out_h - new_h) // 2,
                     out_w, out_h)
