"""Where the stages' folders lie (the contract of shared/DESIGN.md), stated once.

Stages build a :class:`Layout` (of the project root) and pass it to library calls that read several
stages' outputs; library code never spells these paths itself."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Layout:
    root: Path = Path(".")

    def _at(self, *parts: str) -> Path:
        return Path(self.root).joinpath(*parts)

    @property
    def ingested(self) -> Path:
        return self._at("data", "ingested")

    @property
    def audit(self) -> Path:
        return self._at("data", "audit")

    @property
    def crops(self) -> Path:
        return self._at("data", "crops")

    @property
    def split_csv(self) -> Path:
        return self._at("data", "split", "split.csv")

    def variant(self, name: str) -> Path:
        return self._at("data", "variants", name)

    def synthetic(self, name: str) -> Path:
        return self._at("data", "synthetic", name)

    def model(self, name: str) -> Path:
        return self._at("models", name)

    @property
    def eval(self) -> Path:
        return self._at("data", "eval")

    @property
    def reports(self) -> Path:
        return self._at("reports")

    @property
    def metrics_json(self) -> Path:
        return self._at("reports", "metrics.json")

    @property
    def audit_json(self) -> Path:
        return self._at("reports", "audit.json")

    @property
    def release(self) -> Path:
        return self._at("data", "release")

    @property
    def reader_study_key(self) -> Path:
        """The reader study's answer key (never inside the page): ``data/reader_study``."""
        return self._at("data", "reader_study")

    @property
    def reader_study_reports(self) -> Path:
        """The reader study's page, the readers' answers (``answers/``) and their scores."""
        return self._at("reports", "reader_study")
