"""Split: no patient or duplicate group in two splits; fractions and seed respected."""
import csv
from collections import defaultdict

import numpy as np
import pytest

from pipeline.core import config
from pipeline.variants.split import SplitConfig, assign, groups, run_split


def _rows(n=300, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        pk = f"pk{rng.integers(0, 60)}" if rng.random() < 0.5 else ""
        dg = f"d{rng.integers(0, 40)}" if rng.random() < 0.3 else ""
        rows.append({"image_id": f"{i:016x}", "dup_group": dg, "patient_key": pk})
    return rows


def test_no_patient_or_duplicate_group_straddles_splits():
    rows = _rows()
    out = {r["image_id"]: r for r in assign(rows, SplitConfig(), seed=5)}
    assert len(out) == len(rows)
    for kind in ("patient_key", "dup_group"):
        seen = defaultdict(set)
        for r in rows:
            if r[kind]:
                seen[r[kind]].add(out[r["image_id"]]["split"])
        assert all(len(s) == 1 for s in seen.values()), f"a {kind} is in two splits"
    counts = {s: sum(r["split"] == s for r in out.values()) for s in ("train", "val", "test")}
    assert abs(counts["train"] / len(rows) - 0.7) < 0.08 and counts["val"] > 0 and counts["test"] > 0
    assert assign(rows, SplitConfig(), seed=5) == assign(rows, SplitConfig(), seed=5)
    assert assign(rows, SplitConfig(), seed=5) != assign(rows, SplitConfig(), seed=6)


def test_group_names_and_bridging():
    rows = [{"image_id": "a", "patient_key": "P1", "dup_group": ""},
            {"image_id": "b", "patient_key": "", "dup_group": "g1"},
            {"image_id": "c", "patient_key": "P1", "dup_group": "g1"},  # bridges P1 and g1
            {"image_id": "d", "patient_key": "", "dup_group": "g2"},
            {"image_id": "e", "patient_key": "", "dup_group": ""}]
    g = groups(rows)
    assert g == {"a": "P1", "b": "P1", "c": "P1", "d": "g2", "e": "e"}


def test_run_split_writes_csv(tmp_path):
    kept = tmp_path / "kept.csv"
    with open(kept, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["image_id", "dup_group", "patient_key"])
        w.writeheader()
        w.writerows(_rows(40))
    run_split(SplitConfig(0.6, 0.2, 0.2), 1, kept, tmp_path / "split")
    with open(tmp_path / "split/split.csv", newline="") as f:
        out = list(csv.DictReader(f))
    assert list(out[0]) == ["image_id", "split", "group"] and len(out) == 40
    with pytest.raises(config.ConfigError):
        SplitConfig(0.5, 0.2, 0.2)
