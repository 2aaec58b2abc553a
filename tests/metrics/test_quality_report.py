"""reports/quality.html renders in headless Chromium with its images visible, self-contained."""
from __future__ import annotations

import csv
import json
import re

import cv2
import numpy as np

from pipeline.core import pngio
from pipeline.core.layout import Layout
from pipeline.metrics.evaluate import METRICS
from pipeline.metrics.fid import NOT_COMPUTED
from pipeline.demo.phantoms import render_opg
from pipeline.metrics.metric_table import HEADLINE
from pipeline.metrics.quality_report import BLIND_SPOTS, overall_verdict, render, verdict, write_report
from tests.browser import screenshot


def _project(root):
    rng = np.random.default_rng(3)
    imgs = root / "data" / "variants" / "wide" / "images"
    syn = root / "data" / "synthetic" / "wide" / "png16"
    rows, near = [], []
    for k in range(12):
        iid = f"{k:016x}"
        pngio.write_png16(imgs / f"{iid}.png", render_opg(rng, 64, 128)[0])
        rows.append({"image_id": iid, "split": "train" if k < 8 else "test", "group": iid})
    for k in range(6):
        pngio.write_png16(syn / f"syn_{k:06d}.png", cv2.GaussianBlur(render_opg(rng, 64, 128)[0], (0, 0), 1.0))
        near.append({"variant": "wide", "file": f"syn_{k:06d}.png", "nearest_train_id": rows[k]["image_id"],
                     "distance": 0.01 * k + 0.02, "threshold": 0.05, "flagged": int(k < 2)})
    (root / "data" / "split").mkdir(parents=True)
    for path, data in ((root / "data" / "split" / "split.csv", rows), (root / "data" / "eval" / "nearest.csv", near)):
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(data[0]))
            w.writeheader()
            w.writerows(data)
    live = root / "models" / "wide" / "live" / "plots" / "metrics"
    live.mkdir(parents=True)
    for name in ("loss_d", "wasserstein"):
        (live / f"{name}.tsv").write_text("timestamp\tstep\t" + name + "\n" +
                                          "".join(f"0\t{s}\t{np.sin(s / 5):.4f}\n" for s in range(0, 100, 10)))
    metrics = {"wide": {name: {"value": NOT_COMPUTED if name in ("fid", "kid_x1e3") else 0.3 + i / 10,
                               "reference": NOT_COMPUTED if name in ("fid", "kid_x1e3") else 0.3,
                               "better": better, "kind": kind}
                        for i, (name, (better, kind)) in enumerate(METRICS.items())}}
    metrics["wide"]["images"] = {"synthetic": 6, "train": 8, "heldout": 4, "heldout_splits": ["test"]}
    (root / "reports").mkdir()
    (root / "reports" / "metrics.json").write_text(json.dumps(metrics))
    (root / "reports" / "audit.json").write_text(json.dumps({"images": 70, "kept": 52, "rejected": {"blank": 3}}))
    return root


def test_report_renders_with_images_visible(tmp_path):
    root = _project(tmp_path)
    out = write_report(Layout(root), root / "reports" / "quality.html")
    text = out.read_text()
    assert not re.search(r"<script|https?://", text), "the page must be self-contained"
    imgs = re.findall(r"<img [^>]*src='data:image/png;base64,", text)
    assert len(imgs) >= 2 + 2 * 4 + 1   # real grid, synthetic grid, 4 nearest pairs, curves
    for phrase in ("Real (held out", "Synthetic", "never seen", "Can a computer tell them apart?", "68.5%",
                   "real-vs-real reference", "near-copy: excluded", "not computed (no weights file)",
                   "Data audit", "kept", "Training curves"):
        assert phrase in text, phrase
    png = screenshot(out, tmp_path / "shot.png", width=1300, height=1400)
    shot = cv2.imread(str(png), cv2.IMREAD_GRAYSCALE)
    # the image grids sit in the upper part of the page: plenty of mid-grey radiograph pixels there
    top = shot[: shot.shape[0] // 2]
    greys = np.mean((top > 30) & (top < 220))
    print(f"\nscreenshot {shot.shape}, mid-grey share of the upper half {greys:.2f}")
    assert greys > 0.08, "the radiographs are not visible in the rendered page"


def test_verdict_words():
    assert verdict({"value": 0.1, "reference": 0.2, "better": "lower"}) == "as good as real"
    assert verdict({"value": 0.22, "reference": 0.2, "better": "lower"}) == "close to real"
    assert verdict({"value": 0.9, "reference": 0.2, "better": "lower"}) == "worse than real"
    assert verdict({"value": 0.5, "reference": 0.9, "better": "higher"}) == "worse than real"
    assert verdict({"value": NOT_COMPUTED, "reference": NOT_COMPUTED, "better": "lower"}) == "not computed"


def test_report_without_optional_inputs(tmp_path):
    text = render({"wide": {"swd": {"value": 1.0, "reference": 1.0, "better": "lower", "kind": "quality"}}},
                  Layout(tmp_path), None, None)
    assert "Images not available" in text and "No training log found" in text


def test_overall_verdict_rests_on_the_headline_metrics_only():
    good = {name: {"value": 0.5, "reference": 0.5, "better": METRICS[name][0]} for name in METRICS}
    assert overall_verdict(good) == "as good as real"
    fooled = dict(good, precision={"value": 0.2, "reference": 0.9, "better": "higher"})  # not a headline metric
    assert "precision" not in HEADLINE and overall_verdict(fooled) == "as good as real"
    bad = dict(good, c2st_accuracy={"value": 0.99, "reference": 0.5, "better": "lower"})
    assert overall_verdict(bad) == "worse than real"
    close = dict(good, swd={"value": 0.55, "reference": 0.5, "better": "lower"})
    assert overall_verdict(close) == "close to real"
    assert overall_verdict({"precision": good["precision"]}) == "not computed"


def test_report_states_verdict_and_blind_spots(tmp_path):
    m = {name: {"value": 0.9, "reference": 0.5, "better": better, "kind": kind}
         for name, (better, kind) in METRICS.items()}
    text = render({"wide": m}, Layout(tmp_path), None, None)
    assert "Overall: <span class='bad'>worse than real</span>" in text and "headline" in text
    for name in METRICS:   # every non-headline quality metric says what fools it, next to its number
        if name not in HEADLINE and METRICS[name][1] == "quality":
            assert BLIND_SPOTS[name] and BLIND_SPOTS[name].replace("'", "&#x27;") in text, name
