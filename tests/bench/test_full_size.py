"""bench/full_size.py runs end to end on a tiny generated archive and writes its report."""
from __future__ import annotations

import json
import math

import pytest

from bench import full_size
from tests.bench.test_quality import _archive


@pytest.mark.slow   # the stages up to split, three trainings of half a second, 13 patch C2STs
@pytest.mark.timeout(1800)
def test_full_size_bench_scores_every_method_and_failure(tmp_path, one_torch_thread):
    raw = tmp_path / "phantoms"
    _archive(raw, 20, marker=True)
    out = tmp_path / "out"
    full_size.main(["--raw", str(raw), "--work", str(tmp_path / "work"), "--size", "18x32", "--scale", "2",
                    "--gan-budget", "0.5", "--sr-budget", "0.5", "--patch", "16", "--per-image", "2",
                    "--out", str(out)])
    full_size.main(["--summarise", "--out", str(out)])
    payload = json.loads((out / "full_size.json").read_text())
    methods = {r["method"] for r in payload["results"]}
    assert {"real (train vs held-out)", "cascade", "bicubic", "direct", "SR of held-out low-res",
            "bicubic of held-out low-res"} <= methods
    assert sum(m.startswith("failure: ") for m in methods) == 5
    for r in payload["results"]:
        assert r["size"] == "36x64" and 0 <= r["patch_c2st_accuracy"] <= 1
        assert len(r["swd_levels"]) == len(r["swd_ratio"]) >= 2 and all(math.isfinite(v) for v in r["swd_levels"])
    cascade = next(r for r in payload["results"] if r["method"] == "cascade")
    assert cascade["consistency_mae"] < 0.01
    assert (out / "full_size.md").read_text().count("failure: ") == 5
    speeds = payload["runs"][0]["speed"]
    assert [s["scale"] for s in speeds] == [4, 8] and all(s["infer_images_per_s"] > 0 for s in speeds)
