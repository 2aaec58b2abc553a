"""Ingest: every raw file under ``raw_dir`` -> one grey 16-bit PNG per distinct image + a manifest.

One manifest row per raw file, read or not (status ok | rejected, with the reason), so every file
of the archive is accounted for. Decoding and de-identification live in ``decode`` / ``deid``;
this module walks the archive, runs a process pool over it (streaming: a bounded number of files in
flight, workers write their own PNGs and send back one small row each) and writes the outputs
atomically.
"""
from __future__ import annotations

import collections
import concurrent.futures as cf
import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
from tqdm import tqdm

from pipeline.core import atomic, config, pngio, workpool
from pipeline.ingest.decode import DecodeError, decode_file, sniff_format
from pipeline.core.tables import write_csv

log = logging.getLogger(__name__)

MANIFEST_COLUMNS = [
    "image_id", "source_path", "format", "transfer_syntax", "width", "height", "bits",
    "photometric", "status", "reason", "patient_key", "modality", "manufacturer",
    "pixel_spacing", "colour", "file_sha256",
]


@dataclass(frozen=True)
class IngestConfig:
    raw_dir: str = "data/demo_raw"
    png_compression: int = 1
    patient_salt: str = "dentsynth-demo-salt"

    def __post_init__(self) -> None:
        if not 0 <= self.png_compression <= 9:
            raise config.ConfigError(f"ingest.png_compression must be 0-9, got {self.png_compression}")


def image_id(pixels: np.ndarray) -> str:
    """Content hash of decoded pixels: the same pixels get the same id wherever the file lives."""
    h = hashlib.sha256()
    h.update(f"{pixels.dtype.str}:{pixels.shape[0]}x{pixels.shape[1]}:".encode())
    h.update(np.ascontiguousarray(pixels).data)
    return h.hexdigest()[:16]


def list_raw_files(raw_dir: Path) -> list[Path]:
    """Every regular file under ``raw_dir`` (recursive, hidden ones too), sorted for stable output."""
    raw_dir = Path(raw_dir)
    if not raw_dir.is_dir():
        raise FileNotFoundError(f"ingest.raw_dir {raw_dir} is not a folder")
    files = []
    for root, dirs, names in os.walk(raw_dir, followlinks=True):
        dirs.sort()
        for name in names:
            path = Path(root) / name
            if path.is_file():
                files.append(path)
    return sorted(files, key=lambda p: p.relative_to(raw_dir).as_posix())


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _blank_row(rel: str) -> dict:
    row = {c: "" for c in MANIFEST_COLUMNS}
    row["source_path"] = rel
    return row


def ingest_one(path: Path, raw_dir: Path, images_dir: Path, cfg: IngestConfig) -> dict:
    """Decode one raw file and write its PNG; return its manifest row. Never raises for bad input."""
    rel = Path(path).relative_to(raw_dir).as_posix()
    row = _blank_row(rel)
    try:
        row["file_sha256"] = _file_sha256(path)
    except OSError as e:
        row.update(format="unknown", status="rejected", reason=f"unreadable file ({e.strerror or 'I/O error'})")
        return row
    try:
        dec = decode_file(path, cfg.patient_salt)
    except DecodeError as e:
        row.update(format=_sniff_quietly(path), status="rejected", reason=e.reason)
        return row
    except Exception as e:  # a decoder bug must not stop the batch; no message: it may carry values
        row.update(format=_sniff_quietly(path), status="rejected",
                   reason=f"decoder failure ({type(e).__name__})")
        return row
    pixels = dec.pixels
    iid = image_id(pixels)
    out = images_dir / f"{iid}.png"
    if not out.exists():
        pngio.write_png16(out, pixels, cfg.png_compression)
    row.update(
        image_id=iid, format=dec.format, transfer_syntax=dec.transfer_syntax,
        width=int(pixels.shape[1]), height=int(pixels.shape[0]), bits=int(dec.bits),
        photometric=dec.photometric, status="ok", reason="", patient_key=dec.patient_key,
        modality=dec.modality, manufacturer=dec.manufacturer, pixel_spacing=dec.pixel_spacing,
        colour=int(bool(dec.colour)),
    )
    return row


def _sniff_quietly(path: Path) -> str:
    try:
        return sniff_format(path)
    except Exception:
        return "unknown"


def _run_pool(paths: list[Path], workers: int, args: tuple) -> Iterator[tuple[Path, dict | None]]:
    """Yield (path, row) as files finish; row is None for files whose worker died."""
    pending = collections.deque(paths)
    with workpool.pool(workers, (__name__,)) as pool:
        in_flight: dict[cf.Future, Path] = {}
        while pending or in_flight:
            while pending and len(in_flight) < 4 * workers:
                p = pending.popleft()
                in_flight[pool.submit(ingest_one, p, *args)] = p
            done, _ = cf.wait(in_flight, return_when=cf.FIRST_COMPLETED)
            for fut in done:
                p = in_flight.pop(fut)
                try:
                    yield p, fut.result()
                except cf.process.BrokenProcessPool:
                    # the pool is gone: hand back this file and everything still in flight
                    lost = [p] + list(in_flight.values())
                    in_flight.clear()
                    for q in lost:
                        yield q, None
                    yield from ((q, None) for q in pending)
                    return


def ingest_files(paths: Iterable[Path], raw_dir: Path, images_dir: Path, cfg: IngestConfig,
                 workers: int = 1, progress: bool = True) -> list[dict]:
    """Rows for ``paths`` (any order in, sorted by source path out)."""
    paths = list(paths)
    images_dir.mkdir(parents=True, exist_ok=True)
    args = (Path(raw_dir), images_dir, cfg)
    rows: dict[Path, dict] = {}
    bar = tqdm(total=len(paths), desc="ingest", unit="img", disable=not progress)
    if workers <= 1:
        for p in paths:
            rows[p] = ingest_one(p, *args)
            bar.update()
    else:
        crashed: list[Path] = []
        for p, row in _run_pool(paths, workers, args):
            if row is None:
                crashed.append(p)
            else:
                rows[p] = row
                bar.update()
        # A worker died (a native decoder crash): retry those files one process each, so the
        # culprit is found and recorded, and the others still get ingested.
        for p in crashed:
            got = list(_run_pool([p], 1, args))
            row = got[0][1] if got else None
            if row is None:
                row = _blank_row(Path(p).relative_to(raw_dir).as_posix())
                row.update(format=_sniff_quietly(p), status="rejected",
                           reason="decoder crashed on this file")
            rows[p] = row
            bar.update()
    bar.close()
    return [rows[p] for p in sorted(rows, key=lambda q: rows[q]["source_path"])]


def write_manifest(path: Path, rows: list[dict]) -> None:
    write_csv(path, MANIFEST_COLUMNS, rows)


def read_manifest(path: Path):
    import pandas as pd

    return pd.read_csv(path, dtype={"image_id": str, "patient_key": str}, keep_default_na=False)


def run_ingest(cfg: IngestConfig, out_dir: Path, root: Path = Path("."), workers: int | None = None,
               progress: bool = True) -> list[dict]:
    """The ingest stage: ``cfg.raw_dir`` -> ``out_dir/images/*.png`` + ``out_dir/manifest.csv``."""
    raw_dir = config.resolve(cfg.raw_dir, root)
    paths = list_raw_files(raw_dir)
    n_workers = config.workers(workers)
    with atomic.directory(out_dir) as tmp:
        rows = ingest_files(paths, raw_dir, tmp / "images", cfg, n_workers, progress)
        write_manifest(tmp / "manifest.csv", rows)
    if len(rows) != len(paths):  # cannot happen by construction; never silently drop a file
        raise RuntimeError(f"manifest has {len(rows)} rows for {len(paths)} raw files")
    return rows


def summarise(rows: list[dict]) -> str:
    ok = sum(r["status"] == "ok" for r in rows)
    ids = len({r["image_id"] for r in rows if r["status"] == "ok"})
    reasons = collections.Counter(r["reason"] for r in rows if r["status"] != "ok")
    lines = [f"{len(rows)} raw files: {ok} ok ({ids} distinct images), {len(rows) - ok} rejected"]
    lines += [f"  rejected x{n}: {reason}" for reason, n in reasons.most_common()]
    return "\n".join(lines)
