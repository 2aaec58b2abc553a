"""bench/judge.py runs end to end on a tiny generated archive and scores every set against the
held-out one, with an interval that holds each accuracy."""
from __future__ import annotations

import json

import numpy as np

from bench import judge
from pipeline.core import pngio
from pipeline.demo import phantoms
from bench.failures import FAILURE_MODES


def test_judge_scores_snapshots_failure_modes_and_real(tmp_path, one_torch_thread):
    raw = tmp_path / "phantoms"
    raw.mkdir()
    for i in range(20):
        img, _ = phantoms.render_opg(np.random.default_rng([7, i]), 208, 416)
        pngio.write_png16(raw / f"opg_{i:03d}.png", pngio.to_uint16(img))
    out = tmp_path / "out"
    judge.main(["--raw", str(raw), "--size", "18x32", "--budget-s", "0.3", "--points", "2", "--workers", "1",
                "--work", str(tmp_path / "work"), "--out", str(out)])
    payload = json.loads((out / "judge.json").read_text())
    names = [r["set"] for r in payload["rows"]]
    assert names[0] == "real (train images)" and sum(n.startswith("snapshot") for n in names) == 2
    assert set(FAILURE_MODES) <= set(names)
    n = payload["images_per_set"]
    assert n == payload["heldout_images"]
    for r in payload["rows"]:
        assert r["images_per_class"] == n
        lo, hi = r["interval"]
        assert lo <= r["c2st_accuracy"] <= hi and r["judge_cpu_s"] > 0
    assert (out / "judge.md").read_text().count("\n| ") >= len(names)
    # pure noise is told from radiographs every time
    assert next(r for r in payload["rows"] if r["set"] == "noise")["c2st_accuracy"] == 1.0
