"""Ingest: every entry under ``raw_dir`` -> one grey 16-bit PNG per distinct image + a manifest.

One manifest row per entry of the archive (:mod:`pipeline.ingest.archive`: files, links, broken
links, link loops, pipes, names that are not UTF-8), read or not (status ok | rejected, with a
reason in plain words that never quotes the file's content), so every entry is accounted for.
``source_path`` is a keyed hash of the path relative to ``raw_dir`` (file and folder names of an
export often carry patient names, IDs or dates), or with ``pseudonymise_paths: false`` the path
itself (:meth:`IngestConfig.source_path`: the one place a raw path becomes output). Decoding and
de-identification live in ``decode`` / ``deid``; this module runs a process pool over the entries
(streaming: a bounded number of files in flight, workers write their own PNGs and send back one
small row each) and writes the outputs atomically.

Why the ``ingest`` stage does not list ``${ingest.raw_dir}`` as a DVC dependency: DVC hashes a
dependency folder itself before the stage runs, and stops with an error on a dangling link, a link
loop or a file name that is not UTF-8 ("No such file or directory", "Too many levels of symbolic
links", "surrogates not allowed"), so one bad entry in an institute's archive would stop the whole
pipeline before ingest could record it. We cannot repair the archive (it is read-only source
data), and a ``.dvcignore`` would have to name the bad entries (names that may identify patients).
So the archive is treated as external state, the way DVC documents it: a small stage
``inventory`` (``always_changed``) walks the archive exactly as ingest does and writes
``data/ingest_inventory.json`` (entry counts and one SHA-256 digest over the relative names, kinds,
sizes and content hashes: no name); ``ingest`` depends on that file. ``dvc repro`` thus always
looks at the archive (content hashes are reused from a stat-keyed cache in ``.dvc/tmp``, as DVC
does), reruns ``ingest`` only when something in it changed, and ``dvc status`` reports
``inventory: always changed`` (it cannot know without looking). After its run, ``ingest``
checks the archive against the inventory again (:func:`archive_changed`): an archive that changed
in between fails the stage instead of being recorded under the old digest.
"""
from __future__ import annotations

import collections
import concurrent.futures as cf
import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
from tqdm import tqdm

from pipeline.core import atomic, config, pngio, workpool
from pipeline.core.tables import write_csv
from pipeline.ingest import archive
from pipeline.ingest.archive import Entry
from pipeline.ingest.decode import DecodeError, Limits, decode_file, sniff_format

log = logging.getLogger(__name__)

MANIFEST_COLUMNS = [
    "image_id", "source_path", "format", "transfer_syntax", "width", "height", "bits",
    "photometric", "status", "reason", "patient_key", "modality", "manufacturer",
    "pixel_spacing", "colour", "file_sha256",
]


@dataclass(frozen=True)
class IngestConfig:
    raw_dir: str = "data/demo_raw"
    png_compression: int = config.param(1, ge=0, le=9)
    patient_salt: str = "dentsynth-demo-salt"
    pseudonymise_paths: bool = True
    max_pixels: int = config.param(40_000_000, ge=1)
    min_side: int = config.param(32, ge=1)
    max_aspect: float = config.param(8.0, ge=1)

    @property
    def limits(self) -> Limits:
        return Limits(self.max_pixels, self.min_side, self.max_aspect)

    def source_path(self, entry: Entry) -> str:
        """How a raw entry is named in any output: the keyed hash of its path below raw_dir, or
        with ``pseudonymise_paths`` off the path itself."""
        return archive.pseudonym(entry.rel, self.patient_salt) if self.pseudonymise_paths else entry.display


def image_id(pixels: np.ndarray) -> str:
    """Content hash of decoded pixels: the same pixels get the same id wherever the file lives."""
    h = hashlib.sha256()
    h.update(f"{pixels.dtype.str}:{pixels.shape[0]}x{pixels.shape[1]}:".encode())
    h.update(np.ascontiguousarray(pixels).data)
    return h.hexdigest()[:16]


def list_raw_files(raw_dir: Path) -> list[Path]:
    """Every regular file under ``raw_dir`` (through links, each real folder once), sorted."""
    return [Path(os.fsdecode(e.path)) for e in archive.walk(raw_dir) if e.is_file]


def _blank_row(rel: str) -> dict:
    row = {c: "" for c in MANIFEST_COLUMNS}
    row["source_path"] = rel
    return row


def ingest_one(entry: Entry, images_dir: Path, cfg: IngestConfig) -> dict:
    """Decode one entry and write its PNG; return its manifest row. Never raises for bad input."""
    row = _blank_row(cfg.source_path(entry))
    if not entry.is_file:
        row.update(format="none", status="rejected", reason=entry.problem)
        return row
    path = Path(os.fsdecode(entry.path))
    try:
        row["file_sha256"] = archive.file_sha256(entry.path)
    except OSError as e:
        row.update(format="unknown", status="rejected", reason=f"unreadable file ({e.strerror or 'I/O error'})")
        return row
    try:
        dec = decode_file(path, cfg.patient_salt, cfg.limits)
    except DecodeError as e:
        row.update(format=_sniff_quietly(path), status="rejected", reason=e.reason,
                   width=e.width or "", height=e.height or "")
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
        fmt = sniff_format(path)
    except Exception:
        return "unknown"
    return fmt.split(":", 1)[1].lower().replace(" ", "") if fmt.startswith("unsupported:") else fmt


def _run_pool(paths: list[Entry], workers: int, args: tuple) -> Iterator[tuple[Entry, dict | None]]:
    """Yield (path, row) as files finish; row is None for files whose worker died."""
    pending = collections.deque(paths)
    with workpool.pool(workers, (__name__,)) as pool:
        in_flight: dict[cf.Future, Entry] = {}
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


def ingest_files(entries: Iterable[Entry], images_dir: Path, cfg: IngestConfig,
                 workers: int = 1, progress: bool = True) -> list[dict]:
    """Rows for ``entries`` (any order in, sorted by source path out)."""
    entries = list(entries)
    images_dir.mkdir(parents=True, exist_ok=True)
    args = (images_dir, cfg)
    rows: dict[bytes, dict] = {}
    bar = tqdm(total=len(entries), desc="ingest", unit="img", disable=not progress)
    if workers <= 1:
        for e in entries:
            rows[e.rel] = ingest_one(e, *args)
            bar.update()
    else:
        crashed: list[Entry] = []
        for e, row in _run_pool(entries, workers, args):
            if row is None:
                crashed.append(e)
            else:
                rows[e.rel] = row
                bar.update()
        # A worker died (a native decoder crash): retry those files one process each, so the
        # culprit is found and recorded, and the others still get ingested.
        for e in crashed:
            got = list(_run_pool([e], 1, args))
            row = got[0][1] if got else None
            if row is None:
                row = _blank_row(cfg.source_path(e))
                row.update(format=_sniff_quietly(Path(os.fsdecode(e.path))), status="rejected",
                           reason="decoder crashed on this file")
            rows[e.rel] = row
            bar.update()
    bar.close()
    return [rows[k] for k in sorted(rows, key=lambda k: (rows[k]["source_path"], k))]


def write_manifest(path: Path, rows: list[dict]) -> None:
    write_csv(path, MANIFEST_COLUMNS, rows)


def read_manifest(path: Path):
    import pandas as pd

    return pd.read_csv(path, dtype={"image_id": str, "patient_key": str}, keep_default_na=False)


def run_ingest(cfg: IngestConfig, out_dir: Path, root: Path = Path("."), workers: int | None = None,
               progress: bool = True) -> list[dict]:
    """The ingest stage: ``cfg.raw_dir`` -> ``out_dir/images/*.png`` + ``out_dir/manifest.csv``."""
    raw_dir = config.resolve(cfg.raw_dir, root)
    entries = archive.walk(raw_dir)
    n_workers = config.workers(workers)
    with atomic.directory(out_dir) as tmp:
        rows = ingest_files(entries, tmp / "images", cfg, n_workers, progress)
        if len(rows) != len(entries):  # cannot happen by construction; never silently drop an entry
            raise RuntimeError(f"manifest has {len(rows)} rows for {len(entries)} archive entries")
        write_manifest(tmp / "manifest.csv", rows)
    return rows


INVENTORY_CACHE = Path(".dvc/tmp/dentsynth-inventory-cache.json")  # content hashes by (inode, size, mtime): no names


def inventory_cache(root: Path = Path(".")) -> Path | None:
    """Where the stages keep the inventory's content hashes: DVC's scratch folder, if there is one."""
    return Path(root) / INVENTORY_CACHE if (Path(root) / ".dvc").is_dir() else None


def archive_changed(cfg: IngestConfig, inventory_json: Path, root: Path = Path(".")) -> bool:
    """Whether the archive differs from the inventory written earlier (False without one)."""
    if not Path(inventory_json).is_file():
        return False
    now = archive.inventory(archive.walk(config.resolve(cfg.raw_dir, root)), inventory_cache(root))
    return now["digest"] != json.loads(Path(inventory_json).read_text()).get("digest")


def write_inventory(cfg: IngestConfig, out: Path, root: Path = Path("."), cache: Path | None = None) -> dict:
    """The ``inventory`` stage: counts and one digest of the archive listing (no names) -> ``out``."""
    inv = archive.inventory(archive.walk(config.resolve(cfg.raw_dir, root)), cache)
    atomic.write_text(out, json.dumps(inv, indent=1, sort_keys=True) + "\n")
    return inv


def summarise(rows: list[dict]) -> str:
    ok = sum(r["status"] == "ok" for r in rows)
    ids = len({r["image_id"] for r in rows if r["status"] == "ok"})
    reasons = collections.Counter(r["reason"] for r in rows if r["status"] != "ok")
    lines = [f"{len(rows)} archive entries: {ok} ok ({ids} distinct images), {len(rows) - ok} rejected"]
    lines += [f"  rejected x{n}: {reason}" for reason, n in reasons.most_common()]
    return "\n".join(lines)
