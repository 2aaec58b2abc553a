"""Where the stages' folders lie (the contract of shared/DESIGN.md), stated once.

Every stage entry (``stages/*.py``) builds a :class:`Layout` (of the project root) and passes its paths
(or the layout itself, to calls that read several stages' outputs) to the library; library code
never spells these paths itself, and ``tests/core/test_layout.py`` checks that every path here is
one ``dvc.yaml`` declares."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Layout:
    root: Path = Path(".")

    def _at(self, *parts: str) -> Path:
        return Path(self.root).joinpath(*parts)

    @property
    def demo_raw(self) -> Path:
        """The built-in demo archive (stage ``phantoms``)."""
        return self._at("data", "demo_raw")

    @property
    def inventory(self) -> Path:
        """What stage ``inventory`` saw of the archive: the ingest stage's DVC input."""
        return self._at("data", "ingest_inventory.json")

    @property
    def ingested(self) -> Path:
        return self._at("data", "ingested")

    @property
    def ingested_manifest(self) -> Path:
        return self._at("data", "ingested", "manifest.csv")

    @property
    def audit(self) -> Path:
        return self._at("data", "audit")

    @property
    def kept_csv(self) -> Path:
        return self._at("data", "audit", "kept.csv")

    @property
    def crops(self) -> Path:
        return self._at("data", "crops")

    @property
    def crops_report(self) -> Path:
        return self._at("reports", "crops.html")

    @property
    def variants(self) -> Path:
        return self._at("data", "variants")

    @property
    def split(self) -> Path:
        return self._at("data", "split")

    @property
    def split_csv(self) -> Path:
        return self._at("data", "split", "split.csv")

    def variant(self, name: str) -> Path:
        return self._at("data", "variants", name)

    def synthetic(self, name: str = "") -> Path:
        """``data/synthetic/<name>``; without a name the folder of every variant's images."""
        return self._at("data", "synthetic", name) if name else self._at("data", "synthetic")

    def model(self, name: str) -> Path:
        return self._at("models", name)

    def sr_model(self, name: str) -> Path:
        """``models/<name>/sr``: the super-resolution stage's export, checkpoint and record."""
        return self._at("models", name, "sr")

    @property
    def eval(self) -> Path:
        return self._at("data", "eval")

    @property
    def nearest_csv(self) -> Path:
        """Each synthetic image's nearest training image (stage ``evaluate``)."""
        return self._at("data", "eval", "nearest.csv")

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
    def lock(self) -> Path:
        return self._at("dvc.lock")

    @property
    def reader_study_key(self) -> Path:
        """The reader study's answer key (never inside the page): ``data/reader_study``."""
        return self._at("data", "reader_study")

    @property
    def reader_study_reports(self) -> Path:
        """The reader study's page, the readers' answers (``answers/``) and their scores."""
        return self._at("reports", "reader_study")
