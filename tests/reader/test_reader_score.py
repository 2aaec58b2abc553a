"""Scoring reader-study answers: intervals, joins, rejections, the quality-report section and both
stages run as the pipeline runs them (``python -m stages.reader_study`` / ``stages.reader_score``)."""
from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy.stats import binom, binomtest

from pipeline.core import cli
from pipeline.core.layout import Layout
from pipeline.core.tables import read_csv
from pipeline.reader import score as reader_score
from pipeline.metrics.quality_report import reader_study_section, render
from pipeline.reader.study import ReaderStudyConfig, write_study
from stages import reader_score as stage_score
from stages import reader_study as stage_study
from tests.builders import env, make_reader_study_project

REPO = Path(__file__).resolve().parents[2]
COLS = ["study_id", "study", "reader_id", "position", "image_key", "answer", "confidence", "seconds", "comment",
        "answered_at"]


def _key(n_per_class: int) -> tuple[dict, dict]:
    labels = ["real", "synthetic"] * n_per_class
    key = {f"k{i:04d}": {"position": str(i + 1), "image_key": f"k{i:04d}", "label": lab,
                         "file": f"id{i:04d}" if lab == "real" else f"syn_{i:06d}.png"} for i, lab in enumerate(labels)}
    return {"study_id": "s1", "name": "t", "variant": "wide", "images_per_class": n_per_class}, key


def _answers(reader, pairs, study="s1", file="a.csv"):
    return [(file, i, {"study_id": study, "reader_id": reader, "image_key": k, "answer": a, "confidence": c,
                       "seconds": "1.5", "comment": ""}) for i, (k, a, c) in enumerate(pairs, start=1)]


def test_wilson_matches_scipy_and_covers_95_percent():
    for k, n in ((0, 10), (5, 10), (10, 10), (17, 24), (137, 200)):
        ci = binomtest(k, n).proportion_ci(0.95, method="wilson")
        assert reader_score.wilson(k, n) == pytest.approx((ci.low, ci.high), abs=1e-9)
    # exact coverage of chance (p = 0.5) by the interval of a coin-flip reader, over every possible count
    for n in (24, 40, 200):
        cover = sum(binom.pmf(k, n, 0.5) for k in range(n + 1) if reader_score.wilson(k, n)[0] <= 0.5 <= reader_score.wilson(k, n)[1])
        assert 0.93 <= cover <= 0.99, (n, cover)


def test_coin_flip_readers_through_the_scorer_land_in_their_interval_95_percent_of_the_time():
    meta, key = _key(50)
    rng = np.random.default_rng(7)
    answers = []
    for r in range(100):
        answers += _answers(f"coin{r}", [(k, ["real", "synthetic"][int(rng.integers(2))], 1) for k in key], file=f"{r}.csv")
    s = reader_score.score(meta, key, answers)["scores"]
    inside = [v["ci95"][0] <= 0.5 <= v["ci95"][1] for v in s["per_reader"].values()]
    assert len(inside) == 100 and 0.9 <= np.mean(inside) <= 0.99, np.mean(inside)
    assert s["pooled"]["ci95"][0] <= 0.5 <= s["pooled"]["ci95"][1]
    assert abs(s["mean_reader_accuracy"] - 0.5) < 0.03


def test_figures_of_a_known_reader():
    meta, key = _key(4)   # k0000 real, k0001 synthetic, ...
    keys = list(key)
    # real ones: 3 of 4 called real; synthetic: 1 of 4 called synthetic (k0003, k0005, k0007 taken for real)
    pairs = [(keys[0], "real", 5), (keys[1], "real", 2), (keys[2], "real", 5), (keys[3], "real", 1),
             (keys[4], "synthetic", 4), (keys[5], "synthetic", 4), (keys[6], "real", 3), (keys[7], "real", 3)]
    other = [(keys[1], "real", 1), (keys[3], "synthetic", 5)]
    s = reader_score.score(meta, key, _answers("A", pairs) + _answers("B", other, file="b.csv"))["scores"]
    a = s["per_reader"]["A"]
    assert (a["answers"], a["correct"], a["accuracy"]) == (8, 4, 0.5)
    assert (a["specificity"]["k"], a["specificity"]["n"]) == (3, 4)   # real called real
    assert (a["sensitivity"]["k"], a["sensitivity"]["n"]) == (1, 4)   # synthetic called synthetic
    assert a["by_confidence"]["5"] == {"k": 2, "n": 2, "value": 1.0, "ci95": list(reader_score.wilson(2, 2))}
    assert a["by_confidence"]["3"]["k"] == 1 and a["median_seconds"] == 1.5
    assert a["p_value_vs_chance"] == pytest.approx(1.0)
    assert s["incomplete_readers"] == {"B": 2}
    fooled = s["synthetic_most_often_taken_for_real"]
    # k0001 taken for real by both readers (2 of 2) comes first; then 1 of 1 and 1 of 2
    assert [f["image_key"] for f in fooled] == [keys[1], keys[7], keys[3]]
    assert fooled[0]["taken_for_real_share"] == 1.0 and fooled[0]["file"].startswith("syn_")
    assert s["pooled"]["answers"] == 10


def test_bad_rows_are_rejected_with_their_reason_never_dropped():
    meta, key = _key(2)
    keys = list(key)
    rows = (_answers("A", [(keys[0], "real", 3), (keys[1], "synthetic", 2)])
            + _answers("A", [(keys[0], "real", 3)], file="a.json")            # the same again: counted once
            + _answers("A", [(keys[1], "real", 2)], file="a2.csv")            # the same image, differently
            + _answers("B", [(keys[2], "maybe", 3), (keys[3], "real", 7), ("zzz", "real", 3)])
            + _answers("C", [(keys[0], "real", 3)], study="other"))
    s = reader_score.score(meta, key, rows)["scores"]
    reasons = sorted(r["reason"] for r in s["rejected"])
    assert len(reasons) == 5
    assert any("answered image k0001 already, differently, in a.csv" in r for r in reasons)
    assert any("'maybe' is neither real nor synthetic" in r for r in reasons)
    assert any("confidence 7 is not 1-5" in r for r in reasons)
    assert any("image key 'zzz' is not in the key" in r for r in reasons)
    assert any("answers to study other, the key is study s1" in r for r in reasons)
    assert s["per_reader"]["A"]["answers"] == 2 and set(s["per_reader"]) == {"A"}


def test_no_answers_yet_and_the_quality_report_section(tmp_path):
    root = tmp_path
    make_reader_study_project(root, size=(36, 64))
    layout = Layout(root)
    write_study(ReaderStudyConfig(name="t", variant="wide", images_per_class=4, display_width=0,
                                  pbkdf2_iterations=10000), 3, layout, passphrase="abcd-efgh-jkmn-pqrs")
    s = reader_score.run_score(layout)
    assert s["pooled"] is None and s["readers"] == 0
    assert "no answers scored yet" in "".join(reader_study_section(layout))
    key = read_csv(root / "data" / "reader_study" / "key.csv")
    # two readers: one fooled by every synthetic image, one right on all
    for reader, fooled in (("A", True), ("B", False)):
        with open(root / "reports" / "reader_study" / "answers" / f"t_{reader}.csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=COLS)
            w.writeheader()
            for r in key:
                ans = "real" if fooled else r["label"]
                w.writerow({"study_id": r["study_id"], "study": "t", "reader_id": reader, "position": r["position"],
                            "image_key": r["image_key"], "answer": ans, "confidence": 3, "seconds": 2, "comment": ""})
    s = reader_score.run_score(layout)
    assert s["pooled"]["accuracy"] == 0.75 and s["readers"] == 2
    saved = (root / "reports" / "reader_study" / "scores.json").read_text()
    assert json.loads(saved)["pooled"]["answers"] == 16
    for r in key:   # scores.json may go to git: no real image named in it
        if r["label"] == "real":
            assert r["file"] not in saved
    per_image = read_csv(root / "reports" / "reader_study" / "per_image.csv")
    assert len(per_image) == 8 and {p["taken_for_real"] for p in per_image if p["label"] == "synthetic"} == {"1"}
    assert [r["reader_id"] for r in read_csv(root / "reports" / "reader_study" / "per_reader.csv")] == ["A", "B"]
    text = "".join(reader_study_section(layout))
    lo, hi = s["pooled"]["ci95"]
    assert (f"Readers told real from synthetic in <b>75.0%</b> (95% CI {lo:.1%} to {hi:.1%}) of 16 answers, chance "
            "50%; published: 68.5% for a diffusion model (PanoDiff-SR)") in text
    assert text.count("<img ") == 4 and "1 of 2 said real" in text
    page = render({}, layout, None, None)
    assert "Reader study: can dentists tell them apart?" in page


def _run(root: Path, module: str, extra_env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module], cwd=root, capture_output=True, text=True, timeout=120,
                          env={**env(), "PYTHONPATH": str(REPO), **(extra_env or {})})


def test_both_stages_run_from_the_project_root(tmp_path, monkeypatch, capsys):
    root = tmp_path
    ids = make_reader_study_project(root)
    params = {"seed": 9, "variants": {"wide": {"source": "full", "aspect": "16:9", "mode": "letterbox", "height": 36,
                                               "width": 64}},
              "reader_study": {"name": "pilot", "variant": "wide", "images_per_class": 5, "display_width": 128,
                               "pbkdf2_iterations": 10000}}
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    r = _run(root, "stages.reader_study", {"DENTSYNTH_READER_PASSPHRASE": "wxyz-2345-6789-abcd"})
    assert r.returncode == 0, r.stderr
    assert "must not leave the institute" in r.stdout and "wxyz" not in r.stdout
    page = (root / "reports" / "reader_study" / "pilot.html").read_text()
    assert (root / "data" / "reader_study" / "passphrase.txt").read_text().strip() == "wxyz-2345-6789-abcd"
    assert not any(i in page for i in ids["val"] + ids["test"])
    monkeypatch.chdir(root)   # the same entry in-process (a subprocess costs seconds of imports)
    with pytest.raises(SystemExit) as e:
        cli.run(stage_score.main, argv=[])
    assert e.value.code == 0 and "no answers yet" in capsys.readouterr().out
    key = read_csv(root / "data" / "reader_study" / "key.csv")
    (root / "reports" / "reader_study" / "answers" / "pilot_X.json").write_text(json.dumps(
        {"study_id": key[0]["study_id"], "study": "pilot", "reader_id": "X",
         "answers": [{"image_key": k["image_key"], "answer": k["label"], "confidence": 4, "seconds": 3.2}
                     for k in key] + [{"image_key": "nope", "answer": "real", "confidence": 1, "seconds": 1}]}))
    r = _run(root, "stages.reader_score")
    assert r.returncode == 0, r.stderr
    assert "accuracy 100.0%" in r.stdout and "1 row(s) rejected" in r.stdout and "'nope' is not in the key" in r.stdout
    params["reader_study"]["variant"] = "missing"
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    with pytest.raises(SystemExit) as e:
        cli.run(stage_study.main, argv=[])
    assert e.value.code == 2 and "unknown variant" in capsys.readouterr().err
