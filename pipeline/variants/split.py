"""Stage ``split``: kept images -> train / val / test, whole groups at a time.

A group is every image connected through a shared patient key (HMAC of the DICOM PatientID) or a
shared near-duplicate group; it is named by its patient key, else its duplicate group, else its
image id. Groups are shuffled with the seed and each is given to the split furthest below its
target share of images, so no patient and no duplicate group ever straddles two splits.
"""
from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.core import atomic, config
from pipeline.core.tables import write_csv

SPLITS = ("train", "val", "test")
COLUMNS = ["image_id", "split", "group"]


@dataclass(frozen=True)
class SplitConfig:
    """params.yaml ``split`` (the draw also takes the top-level ``seed``)."""

    train: float = config.param(0.7, ge=0, le=1)
    val: float = config.param(0.15, ge=0, le=1)
    test: float = config.param(0.15, ge=0, le=1)

    def __post_init__(self) -> None:
        f = (self.train, self.val, self.test)
        if abs(sum(f) - 1.0) > 1e-6:
            raise config.ConfigError(f"split: train + val + test must sum to 1, got {f}")


def groups(rows: list[dict]) -> dict[str, str]:
    """image_id -> group name (union of images sharing a patient key or a duplicate group)."""
    parent: dict[str, str] = {}

    def find(a: str) -> str:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    def union(a: str, b: str) -> None:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)

    ids = sorted({r["image_id"] for r in rows})
    for i in ids:
        parent[f"i:{i}"] = f"i:{i}"
    for r in rows:
        for kind in ("patient_key", "dup_group"):
            v = str(r.get(kind) or "").strip()
            if v and v.lower() != "nan":
                key = f"{kind[0]}:{v}"
                parent.setdefault(key, key)
                union(f"i:{r['image_id']}", key)
    members: dict[str, list[str]] = {}
    for k in parent:
        members.setdefault(find(k), []).append(k)
    name = {}
    for ks in members.values():
        label = (sorted(k[2:] for k in ks if k.startswith("p:")) or sorted(k[2:] for k in ks if k.startswith("d:"))
                 or sorted(k[2:] for k in ks if k.startswith("i:")))[0]
        for k in ks:
            if k.startswith("i:"):
                name[k[2:]] = label
    return name


def assign(rows: list[dict], cfg: SplitConfig, seed: int) -> list[dict]:
    """One row per image: image_id, split, group; deterministic for a seed."""
    group_of = groups(rows)
    by_group: dict[str, list[str]] = {}
    for iid in sorted(group_of):
        by_group.setdefault(group_of[iid], []).append(iid)
    names = sorted(by_group)
    order = np.random.default_rng([seed, 0x5011]).permutation(len(names))
    target = np.array([cfg.train, cfg.val, cfg.test]) * len(group_of)
    have = np.zeros(3)
    split_of: dict[str, str] = {}
    for gi in order:
        g = names[gi]
        # a split with a share but no image yet goes first (so small sets still get a test split)
        empty = [i for i in range(3) if have[i] == 0 and target[i] > 0]
        k = empty[0] if empty else int(np.argmax(target - have))
        split_of[g] = SPLITS[k]
        have[k] += len(by_group[g])
    return [{"image_id": iid, "split": split_of[group_of[iid]], "group": group_of[iid]} for iid in sorted(group_of)]


def run_split(cfg: SplitConfig, seed: int, kept_csv: Path, out_dir: Path) -> list[dict]:
    with open(kept_csv, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise ValueError(f"{kept_csv}: no kept images to split")
    out = assign(rows, cfg, seed)
    with atomic.directory(out_dir) as tmp:
        write_csv(tmp / "split.csv", COLUMNS, out)
    return out


def summarise(rows: list[dict]) -> str:
    parts = []
    for s in SPLITS:
        sel = [r for r in rows if r["split"] == s]
        parts.append(f"{s}: {len(sel)} images, {len({r['group'] for r in sel})} groups")
    return "; ".join(parts)


def read_split(split_csv: str | os.PathLike) -> dict[str, list[str]]:
    """split.csv -> {split: sorted image ids} (every split present, maybe empty)."""
    out: dict[str, list[str]] = {s: [] for s in SPLITS}
    with open(split_csv, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            out.setdefault(row["split"], []).append(row["image_id"])
    return {k: sorted(v) for k, v in out.items()}
