"""The reader study's settings (params.yaml ``reader_study``) and its error."""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from pipeline.core import config


class StudyError(ValueError):
    """The study cannot be built from these inputs (the message says why)."""


@dataclass(frozen=True)
class ReaderStudyConfig:
    """params.yaml ``reader_study`` (each key is described there; the image draw also takes the top-level ``seed``)."""

    name: str = "demo"
    variant: str = "full_16x9"
    images_per_class: int = config.param(20, ge=1)
    splits: list[str] = field(default_factory=lambda: ["val", "test"])
    display_width: int = config.param(768, ge=0)
    letterbox_pad: bool = True
    exclude_near_copies: bool = True
    pbkdf2_iterations: int = config.param(200000, ge=10000)

    def __post_init__(self) -> None:
        bad = set(self.splits) - {"val", "test"}
        if bad or not self.splits:
            raise config.ConfigError(f"reader_study.splits must be val and/or test (never train), got {self.splits}")
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", self.name):
            raise config.ConfigError(f"reader_study.name must be a plain file name, got {self.name!r}")
