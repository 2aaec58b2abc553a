"""CSV tables and file digests, written one way everywhere: atomic, UTF-8, a header row first.

Also the readers of tables one stage writes and several read (the synthetic set's ``seeds.csv``,
the memorisation check's ``flagged`` column)."""
from __future__ import annotations

import csv
import hashlib
import os
from pathlib import Path
from typing import Iterable

from pipeline.core import atomic

SEEDS_COLUMNS = ["file", "seed", "variant", "checkpoint_sha256"]


def write_csv(path: str | os.PathLike, columns: list[str], rows: Iterable[dict]) -> None:
    """``rows`` under the header ``columns`` (keys outside ``columns`` are left out), atomically."""
    with atomic.open_file(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)


def read_csv(path: str | os.PathLike) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_seeds(variant_dir: str | os.PathLike) -> list[dict]:
    """``<variant_dir>/seeds.csv`` (the generate stage's record: one row per synthetic image)."""
    path = Path(variant_dir) / "seeds.csv"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run the generate stage first")
    return read_csv(path)


def is_flagged(value: object) -> bool:
    """A ``flagged`` cell (``1``/``true``/``yes``, any case) as a bool."""
    return str(value if value is not None else "").strip().lower() in ("1", "true", "yes")


def cpu_count() -> int:
    """Cores this process may run on (its affinity mask, not the machine's total)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
