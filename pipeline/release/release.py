"""Release: the synthetic dataset package researchers receive.

``data/release/<name>-<version>/`` is a BagIt bag (payload under ``data/``, sha256 manifests) with
``DATASET_CARD.md``, ``manifest.csv`` and ``contact_sheet.png`` as tag files, plus a reproducible
``<name>-<version>.tar.gz`` of the whole beside it. Every image flagged by the memorisation check
is left out and listed in the manifest with its reason. ``pipeline.release.verify_release`` checks a
received package.
"""
from __future__ import annotations

import gzip
import io
import json
import re
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

import bagit

from pipeline.core import atomic, config, pngio
from pipeline.core.tables import is_flagged, read_csv, read_seeds, sha256_file, write_csv
from pipeline.release.contact_sheet import contact_sheet
from pipeline.release.dataset_card import render_card
from pipeline.release.provenance import Provenance
from pipeline.release.synthetic_dicom import write_synthetic_dicom

MANIFEST_COLUMNS = ["file", "sha256", "variant", "format", "seed", "checkpoint_sha256", "status", "reason"]


@dataclass(frozen=True)
class ReleaseConfig:
    name: str = "dentsynth-demo"
    version: str = "0.1.0"
    variants: list[str] = field(default_factory=list)  # empty: every generated variant
    png16: bool = True
    png8: bool = True
    dicom: bool = True
    license: str = ""
    contact: str = ""
    organisation: str = ""
    description: str = ""

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", self.name):
            raise config.ConfigError(f"release.name {self.name!r}: letters, digits, '.', '_', '-' only")
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._+-]*", self.version):
            raise config.ConfigError(f"release.version {self.version!r} is not a version string")
        if not (self.png16 or self.png8 or self.dicom):
            raise config.ConfigError("release: choose at least one of png16, png8, dicom")
        if not self.license.strip():
            raise config.ConfigError("release.license is empty: synthetic data inherits the training "
                                     "data's terms; state them")

    @property
    def release_id(self) -> str:
        return f"{self.name}-{self.version}"


def _flagged(nearest_csv: Path) -> dict[tuple[str, str], str]:
    """(variant, file stem) -> exclusion reason, from the memorisation check's table."""
    if not Path(nearest_csv).exists():
        raise FileNotFoundError(f"{nearest_csv} is missing: the memorisation check must run before a "
                                "release (near-copies of training images are never released)")
    out = {}
    for row in read_csv(nearest_csv):
        if is_flagged(row.get("flagged")):
            reason = (f"near-copy of training image {row.get('nearest_train_id', '?')} "
                      f"(distance {float(row['distance']):.4g} < threshold {float(row['threshold']):.4g})")
            out[(row["variant"], Path(row["file"]).stem)] = reason
    return out


def build_release(cfg: ReleaseConfig, synthetic_root: Path, nearest_csv: Path, metrics_json: Path,
                  out_root: Path, provenance: Provenance, params: dict | None = None) -> Path:
    """Assemble, bag and archive the release; returns the bag folder."""
    synthetic_root, out_root = Path(synthetic_root), Path(out_root)
    variants = cfg.variants or sorted(p.name for p in synthetic_root.iterdir() if (p / "seeds.csv").exists())
    if not variants:
        raise FileNotFoundError(f"no generated variants under {synthetic_root}")
    flagged = _flagged(nearest_csv)
    metrics = json.loads(Path(metrics_json).read_text()) if Path(metrics_json).exists() else {}

    with atomic.directory(out_root) as tmp:
        bag_dir = tmp / cfg.release_id
        payload = bag_dir / "payload"  # bagit.make_bag moves it under data/
        rows, sheet_images = [], []
        for variant in variants:
            vdir = synthetic_root / variant
            for i, s in enumerate(read_seeds(vdir)):
                stem = Path(s["file"]).stem
                common = {"variant": variant, "seed": s["seed"], "checkpoint_sha256": s.get("checkpoint_sha256", "")}
                reason = flagged.get((variant, stem))
                if reason:
                    rows.append({**common, "file": s["file"], "sha256": "", "format": "",
                                 "status": "excluded", "reason": reason})
                    continue
                img16 = pngio.read_png16(vdir / "png16" / f"{stem}.png")
                if len(sheet_images) < 48:
                    sheet_images.append((f"{variant} #{s['seed']}", img16))
                outs = []
                if cfg.png16:
                    outs.append(("png16", pngio.write_png16(payload / variant / "png16" / f"{stem}.png", img16, 6)))
                if cfg.png8:
                    outs.append(("png8", pngio.write_png8(payload / variant / "png8" / f"{stem}.png", img16, 6)))
                if cfg.dicom:
                    outs.append(("dicom", write_synthetic_dicom(payload / variant / "dicom" / f"{stem}.dcm", img16,
                                                                cfg.release_id, variant, int(s["seed"]), i)))
                for fmt, path in outs:
                    rel = "data/" + path.relative_to(payload).as_posix()
                    rows.append({**common, "file": rel, "sha256": sha256_file(path), "format": fmt,
                                 "status": "included", "reason": ""})
        payload.mkdir(parents=True, exist_ok=True)
        for child in list(payload.iterdir()):
            child.rename(bag_dir / child.name)
        payload.rmdir()
        bag = bagit.make_bag(str(bag_dir), {
            "Source-Organization": cfg.organisation or "unspecified",
            "Contact-Email": cfg.contact or "unspecified",
            "External-Description": f"SYNTHETIC dental panoramic radiographs ({cfg.release_id}); "
                                    "no image shows a real patient.",
            "External-Identifier": cfg.release_id,
            "Bagging-Date": "1970-01-01",  # fixed: the release is reproducible byte for byte
        }, checksums=["sha256"], processes=1)
        _write_manifest(bag_dir / "manifest.csv", rows)
        included = [r for r in rows if r["status"] == "included"]
        atomic.write_bytes(bag_dir / "contact_sheet.png", contact_sheet(sheet_images))
        atomic.write_text(bag_dir / "DATASET_CARD.md", render_card(cfg, rows, metrics, provenance, params or {}))
        bag.save(manifests=True)  # tag manifest now covers card, manifest.csv and contact sheet
        _write_tar(bag_dir, tmp / f"{cfg.release_id}.tar.gz")
        if not included:
            raise RuntimeError("every synthetic image was excluded: nothing to release")
    return out_root / cfg.release_id


def _write_manifest(path: Path, rows: list[dict]) -> None:
    rows = sorted(rows, key=lambda r: (r["status"] != "included", r["variant"], r["file"]))
    write_csv(path, MANIFEST_COLUMNS, rows)


def _write_tar(bag_dir: Path, tar_path: Path) -> None:
    """A reproducible .tar.gz: sorted entries, fixed times and owners."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        paths = [bag_dir] + sorted(bag_dir.rglob("*"))
        for p in paths:
            info = tar.gettarinfo(str(p), arcname=p.relative_to(bag_dir.parent).as_posix())
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
            info.mode = 0o755 if p.is_dir() else 0o644
            if p.is_file():
                with open(p, "rb") as f:
                    tar.addfile(info, f)
            else:
                tar.addfile(info)
    with atomic.open_file(tar_path, "wb") as f:
        with gzip.GzipFile(fileobj=f, mode="wb", mtime=0, filename="") as gz:
            gz.write(buf.getvalue())
