"""The two pixel frames of one OPG: *ingested* (the raw file's geometry) and *cleaned* (audit).

The audit stage cleans an ingested image in two steps, recorded per image in ``audit.csv``:
rotate it 180 degrees when ``rot180`` is set, then cut it to ``[trim_y0:trim_y1, trim_x0:trim_x1]``
(coordinates in the rotated frame). :class:`Cleaning` holds those numbers, applies them to an image
and maps half-open boxes ``(x0, y0, x1, y1)`` between the two frames exactly (integers in,
integers out; mapping there and back is the identity).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class Cleaning:
    """How a cleaned image was cut from its ingested image (of size ``width`` x ``height``)."""

    width: int
    height: int
    rot180: bool = False
    trim_x0: int = 0
    trim_y0: int = 0
    trim_x1: int | None = None
    trim_y1: int | None = None

    def __post_init__(self) -> None:
        x1 = self.width if self.trim_x1 is None else self.trim_x1
        y1 = self.height if self.trim_y1 is None else self.trim_y1
        if not (0 <= self.trim_x0 < x1 <= self.width and 0 <= self.trim_y0 < y1 <= self.height):
            raise ValueError(f"trim box {(self.trim_x0, self.trim_y0, x1, y1)} does not fit a "
                             f"{self.width}x{self.height} image")
        object.__setattr__(self, "trim_x1", x1)
        object.__setattr__(self, "trim_y1", y1)

    @classmethod
    def identity(cls, width: int, height: int) -> "Cleaning":
        return cls(width, height)

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the cleaned image."""
        return self.trim_x1 - self.trim_x0, self.trim_y1 - self.trim_y0

    def apply(self, img: np.ndarray) -> np.ndarray:
        """The cleaned image of an ingested image (a view when possible; copy it to keep it)."""
        if img.shape[:2] != (self.height, self.width):
            raise ValueError(f"image is {img.shape[1]}x{img.shape[0]}, cleaning expects {self.width}x{self.height}")
        if self.rot180:
            img = img[::-1, ::-1]
        return img[self.trim_y0:self.trim_y1, self.trim_x0:self.trim_x1]

    def to_ingested(self, box: Box) -> Box:
        """A half-open box in the cleaned frame -> the same region in the ingested frame."""
        x0, y0, x1, y1 = box
        x0, x1 = x0 + self.trim_x0, x1 + self.trim_x0
        y0, y1 = y0 + self.trim_y0, y1 + self.trim_y0
        if self.rot180:
            x0, x1 = self.width - x1, self.width - x0
            y0, y1 = self.height - y1, self.height - y0
        return x0, y0, x1, y1

    def to_cleaned(self, box: Box) -> Box:
        """A half-open box in the ingested frame -> the cleaned frame (may fall outside it)."""
        x0, y0, x1, y1 = box
        if self.rot180:
            x0, x1 = self.width - x1, self.width - x0
            y0, y1 = self.height - y1, self.height - y0
        return x0 - self.trim_x0, y0 - self.trim_y0, x1 - self.trim_x0, y1 - self.trim_y0

    @classmethod
    def from_row(cls, row, width: int, height: int) -> "Cleaning":
        """From an ``audit.csv`` row (a mapping or pandas Series) and the ingested size."""
        return cls(width, height, bool(int(row["rot180"])), int(row["trim_x0"]), int(row["trim_y0"]),
                   int(row["trim_x1"]), int(row["trim_y1"]))
