"""bench/quality.py: the side-by-side quality benchmark runs end to end on a tiny generated archive
(the pipeline's stages up to split, both recipes for a budget of seconds, the evaluate metrics)."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from bench import quality
from pipeline.core import pngio
from pipeline.demo import phantoms


def _embeddings() -> int:
    """params.yaml ``evaluate.prdc.embeddings``: the random-CNN embeddings precision is averaged over."""
    from pathlib import Path

    from pipeline.core import config

    return int(config.load_params(Path(__file__).resolve().parents[2] / "params.yaml")["evaluate"]["prdc"]["embeddings"])


def _archive(folder, n: int, marker: bool) -> None:
    folder.mkdir()
    for i in range(n):
        img, _ = phantoms.render_opg(np.random.default_rng([7, i]), 208, 416)   # audit: >= 400x200
        pngio.write_png16(folder / f"opg_{i:03d}.png", pngio.to_uint16(img))
    if marker:   # what makes a folder "the generated demo archive": its pictures may be published
        (folder / "ground_truth.csv").write_text("file\n")


@pytest.mark.slow   # ~15 s on an idle core (8 evaluations); the test below is the quick one
def test_quality_bench_runs_both_recipes_and_reports(tmp_path, one_torch_thread):
    raw = tmp_path / "phantoms"
    _archive(raw, 20, marker=True)
    out = tmp_path / "out"
    payload = quality.main(["--raw", str(raw), "--size", "18x32", "--budget-s", "0.5", "--seeds", "2",
                            "--images", "12", "--curve-points", "2", "--workers", "1", "--out", str(out),
                            # a baseline step at its real width takes seconds on a CPU: narrowed here
                            "--baseline", '{"features": 4, "batch": 8}'])
    runs = json.loads((out / "quality.json").read_text())["runs"]
    assert runs == json.loads(json.dumps(payload["runs"]))
    assert sorted((r["recipe"], r["seed"]) for r in runs) == sorted(
        (rec, s) for rec in ("ours", "baseline") for s in {r["seed"] for r in runs})
    assert len({r["seed"] for r in runs}) == 2 and payload["curve_points"] == 2
    for r in runs:
        assert r["data"] == "phantoms" and r["size"] == "18x32" and r["budget_s"] == 0.5
        assert r["steps"] >= 1 and r["train_s"] >= 0.5   # the budget was spent (the clock runs out mid-step)
        for key in ("swd", "swd_reference", "c2st_accuracy", "precision", "coverage", "recall", "density"):
            assert math.isfinite(r[key]), key
        # C2ST decides on n held-out and n synthetic images (n: the smaller set), so its accuracy is a
        # count of 2n decisions; precision is the mean, over the embeddings, of a count of the 12 images
        n = min(r["heldout_images"], r["synthetic_images"])
        assert r["synthetic_images"] == 12 and 5 <= n <= 12, r
        decisions = r["c2st_accuracy"] * 2 * n
        assert decisions == pytest.approx(round(decisions), abs=1e-9) and 0 <= round(decisions) <= 2 * n, r
        inside = r["precision"] * 12 * _embeddings()
        assert inside == pytest.approx(round(inside), abs=1e-6) and 0 <= round(inside) <= 12 * _embeddings(), r
        assert [p["seconds"] for p in r["curve"]] == sorted(p["seconds"] for p in r["curve"])
        assert len(r["curve"]) == 2 and r["curve"][-1]["step"] == r["steps"]
    # real-vs-real SWD is small next to a DCGAN trained for half a second (ours starts from the
    # mean image, so it may already be close)
    assert all(r["swd"] > 2 * r["swd_reference"] for r in runs if r["recipe"] == "baseline")
    md = (out / "quality.md").read_text()
    assert "| phantoms | 18x32 | ours |" in md and "| phantoms | 18x32 | baseline |" in md
    assert (out / "quality.png").is_file() and (out / "quality_curves.png").is_file()
    side = pngio.read_png16(out / "quality.png")
    assert side.shape[0] > 6 * 18 and side.std() > 0
    # every run states its set sizes and a 95% interval holding each figure; the reference set is as
    # big as the synthetic one
    for r in runs:
        assert r["reference_images"] == 12
        for key in ("swd", "c2st_accuracy", "precision", "coverage", "c2st_accuracy_reference", "coverage_reference"):
            lo, hi = r[f"{key}_interval"]
            assert lo <= r[key] <= hi, (key, r)
    assert "95% interval" in md and f"| {runs[0]['train_images']}/{runs[0]['heldout_images']}/12 |" in md


def test_one_recipe_alone(tmp_path, one_torch_thread):
    """--recipes ours trains our recipe only; by default the synthetic set is as big as the held-out one."""
    raw = tmp_path / "phantoms"
    _archive(raw, 20, marker=True)
    out = tmp_path / "out"
    payload = quality.main(["--raw", str(raw), "--size", "18x32", "--budget-s", "0.2", "--seeds", "1",
                            "--curve-points", "1", "--workers", "1", "--out", str(out), "--recipes", "ours"])
    (run,) = payload["runs"]
    assert run["recipe"] == "ours" and run["synthetic_images"] == run["heldout_images"] == run["reference_images"]
    assert "| baseline |" not in (out / "quality.md").read_text()
    with pytest.raises(SystemExit):
        quality.main(["--raw", str(raw), "--recipes", "theirs"])


def test_real_archive_pictures_stay_out_of_the_report(tmp_path, one_torch_thread):
    """Without the phantoms' ground_truth.csv the folder may hold real patients: no side-by-side
    picture in the output folder (only aggregate numbers and curves)."""
    raw = tmp_path / "archive"
    _archive(raw, 20, marker=False)
    out = tmp_path / "out"
    quality.main(["--raw", str(raw), "--size", "18x32", "--budget-s", "0.2", "--seeds", "1", "--images", "12", "--curve-points", "1",
                  "--workers", "1", "--out", str(out), "--ours", '{"batch": 4}',
                  "--baseline", '{"features": 4, "batch": 4}'])
    assert not (out / "quality.png").exists()
    assert (out / "quality.json").is_file() and (out / "quality_curves.png").is_file()
    assert json.loads((out / "quality.json").read_text())["ours_changes"] == {"batch": 4}
