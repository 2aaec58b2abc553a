import json
import re

import cv2
import numpy as np

from pipeline.audit import audit, audit_report
from pipeline.demo import phantoms
from pipeline.audit.audit import AuditConfig
from pipeline.audit.run import run_audit
from tests.browser import screenshot
from tests.builders import write_ingested


def _archive(folder):
    """8 phantoms: 5 clean, one blurred, one with burned-in text, one square (not panoramic)."""
    imgs = [phantoms.render_opg(np.random.default_rng([9, i]), 200, 400)[0] for i in range(7)]
    imgs[5] = cv2.GaussianBlur(imgs[5], (0, 0), 6)
    imgs[6] = phantoms._burn_text(imgs[6], np.random.default_rng(1))
    imgs.append(phantoms.render_periapical(np.random.default_rng(3), 300, 300))
    write_ingested(folder, imgs)


def test_report_is_self_contained_and_renders_with_gallery(tmp_path):
    _archive(tmp_path / "ingested")
    cfg = AuditConfig(min_width=300, min_height=150)
    rows = run_audit(cfg, tmp_path / "ingested", tmp_path / "audit", tmp_path / "reports", workers=1,
                           progress=False)
    html = (tmp_path / "reports" / "audit.html").read_text()
    # every image is embedded: no file, URL or script reference
    assert "<script" not in html and "http://" not in html and "https://" not in html
    srcs = re.findall(r"src='([^']*)'", html)
    assert srcs and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert html.count("alt='histogram") >= 10
    for title in ("reason: blur", "reason: not_panoramic", "flag: burned_in_text"):
        assert title in html
    metrics = json.loads((tmp_path / "reports" / "audit.json").read_text())
    assert metrics["images"] == 8 and metrics["kept"] + metrics["rejected"] == 8
    assert metrics["reasons"]["blur"] >= 1 and metrics["flags"]["burned_in_text"] >= 1
    assert metrics["kept"] == sum(r["verdict"] == "keep" for r in rows)
    png = screenshot(tmp_path / "reports" / "audit.html", tmp_path / "shot.png", 1200, 3000)
    shot = cv2.imread(str(png))
    assert shot is not None and shot.shape[0] >= 2000
    # the gallery (lower part of the page) shows thumbnails, not a blank page
    lower = shot[shot.shape[0] // 2:]
    assert lower.std() > 20


def test_histogram_draws_the_threshold():
    uri = audit_report.histogram("sharpness", [0.01, 0.2, 0.25, 0.3], AuditConfig())
    assert uri.startswith("data:image/png;base64,") and len(uri) > 1000
    assert audit_report._threshold_lines("aspect", AuditConfig()) == [(1.5, "min"), (3.2, "max")]
