"""The audit's duplicate groups end to end: verdicts, the flipped-copy flag, and the report's group section."""
import re

import cv2
import numpy as np

from pipeline.audit.audit import AuditConfig
from pipeline.audit.run import run_audit
from pipeline.demo import phantoms
from tests.builders import write_ingested


def _jpeg(img, quality=60):
    ok, buf = cv2.imencode(".jpg", np.round(np.clip(img, 0, 1) * 255).astype(np.uint8),
                           [cv2.IMWRITE_JPEG_QUALITY, quality])
    return cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE).astype(np.float32) / 255


def test_copies_grouped_flipped_flagged_and_shown_side_by_side(tmp_path):
    imgs = [phantoms.render_opg(np.random.default_rng([21, i]), 240, 480)[0] for i in range(5)]
    h, w = imgs[1].shape
    smaller = cv2.resize(imgs[1][12:h - 20, 30:w - 15], None, fx=0.7, fy=0.7, interpolation=cv2.INTER_AREA)
    copy = _jpeg(np.power(smaller, 1.3), 55)                 # cropped, smaller, darker, JPEG
    flipped = np.ascontiguousarray(imgs[3][:, ::-1])         # mirrored export
    ids = write_ingested(tmp_path / "ingested", imgs + [copy, flipped])
    cfg = AuditConfig(min_width=200, min_height=100)
    rows = run_audit(cfg, tmp_path / "ingested", tmp_path / "audit", tmp_path / "reports", workers=1,
                     progress=False)
    by = {r["image_id"]: r for r in rows}
    # the larger original is kept and names the group; the copies are rejected as duplicates
    assert by[ids[5]]["dup_group"] == by[ids[1]]["dup_group"] == ids[1]
    assert by[ids[6]]["dup_group"] == by[ids[3]]["dup_group"] == ids[3]
    assert "duplicate" in by[ids[5]]["reasons"] and "duplicate" in by[ids[6]]["reasons"]
    assert "duplicate" not in by[ids[1]]["reasons"] and "duplicate" not in by[ids[3]]["reasons"]
    assert "flipped_copy" in by[ids[6]]["flags"] and "flipped_copy" not in by[ids[5]]["flags"]
    assert all(by[ids[i]]["dup_group"] == "" for i in (0, 2, 4))
    assert float(by[ids[5]]["dup_similarity"]) >= cfg.dup_threshold
    html = (tmp_path / "reports" / "audit.html").read_text()
    assert "Duplicate groups (2)" in html
    section = html[html.index("Duplicate groups (2)"):]
    for group in (ids[1], ids[3]):
        block = section[section.index(f"group {group}:"):]
        block = block[: block.index("</div>\n<h3") if "</div>\n<h3" in block else len(block)]
        assert len(re.findall(r"<img alt='[0-9a-f]+' src='data:image/png;base64,", block)) == 2
        assert "<b>kept</b>" in block and "similarity 0." in block
    assert "duplicate: flipped copy" in section and "duplicate: copy" in section
