"""reports/quality.html renders in headless Chromium with its images visible, self-contained."""
from __future__ import annotations

import re

import cv2
import numpy as np

from pipeline.core.layout import Layout
from pipeline.metrics.evaluate import METRICS
from pipeline.metrics.fid import NOT_COMPUTED
from pipeline.metrics.metric_table import HEADLINE
from pipeline.metrics.quality_report import BLIND_SPOTS, overall_verdict, render, verdict, write_report
from tests.browser import screenshot
from tests import builders




def test_report_renders_with_images_visible(tmp_path):
    root = builders.make_report_project(tmp_path)
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
