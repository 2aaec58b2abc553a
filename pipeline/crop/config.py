"""The crop stage's settings: params.yaml ``crop`` as a typed, range-checked dataclass."""
from __future__ import annotations

from dataclasses import dataclass

from pipeline.core import config


@dataclass(frozen=True)
class CropConfig:
    """params.yaml ``crop`` (each key is described there). Lengths the params call "x jaw" are in
    units of the jaw scale measured on each image: rows from the occlusal gap down to the
    mandible's inferior border."""

    margin: float = config.param(0.0, ge=0, le=1)
    top_margin: float = config.param(0.0, ge=0, le=1)
    min_confidence: float = config.param(0.35, ge=0, le=1)
    fit_room: float = config.param(0.2, ge=0, le=1)
    fallback: list[float] = config.param(factory=lambda: [0.0, 0.0, 1.0, 1.0], ge=0, le=1, length=4)
    edge_fraction: float = config.param(0.10, gt=0, lt=1)
    gap_fraction: float = config.param(0.15, gt=0, lt=1)
    gap_band: list[float] = config.param(factory=lambda: [0.3, 0.8], ge=0, le=1, length=2)
    crown_band: float = config.param(0.33, ge=0, le=2)
    crown_fraction: float = config.param(0.5, gt=0, lt=1)
    crown_run: float = config.param(0.2, ge=0, le=2)
    side_margin: float = config.param(0.25, ge=0, le=2)
    root_fraction: float = config.param(0.60, gt=0, lt=1)
    up: list[float] = config.param(factory=lambda: [0.0, 0.962], ge=-0.5, le=2, length=2)
    down: list[float] = config.param(factory=lambda: [0.0, 0.0, 0.727], ge=-0.5, le=2, length=3)
    half_width: list[float] = config.param(factory=lambda: [0.8, 2.4], ge=0, le=5, length=2)
    lobe_scale: float = config.param(1.85, gt=0, lt=10)
    scale_spread: float = config.param(1.25, ge=1)
    mandible_room: float = config.param(1.1, gt=0, le=3)
    far_fraction: float = config.param(0.5, gt=0, lt=1)
    far_width: float = config.param(0.1, ge=0, le=0.5)
    far_within: float = config.param(1.4, gt=0)
    edge_snap: list[float] = config.param(factory=lambda: [0.15, 0.3, 0.15], ge=0, le=2, length=3)
    min_symmetry: float = config.param(0.3, ge=0, le=1)
    one_cue_top: float = config.param(0.1, ge=0, le=1)
    edge_probe: float = config.param(0.05, ge=0, le=1)
    edge_tooth: float = config.param(0.3, gt=0, le=2)
    edge_doubt: float = config.param(0.25, ge=0, le=0.5)
    work_width: int = config.param(512, ge=128)
    png_compression: int = config.param(1, ge=0, le=9)
    thumb_width: int = config.param(360, ge=1)

    def __post_init__(self) -> None:
        f = self.fallback
        if not (f[0] < f[2] and f[1] < f[3]):
            raise config.ConfigError(f"crop.fallback must be [x0, y0, x1, y1] with x0 < x1 and y0 < y1; got {list(f)}")
        if not self.gap_band[0] <= self.gap_band[1]:
            raise config.ConfigError(f"crop.gap_band must be [lo, hi] with lo <= hi; got {list(self.gap_band)}")
        if not self.half_width[0] <= self.half_width[1]:
            raise config.ConfigError(f"crop.half_width must be [inner, outer] with inner <= outer; got {list(self.half_width)}")
