"""Letterbox stage: exact output size, transforms.csv, params (through DVC: tests/dvc/test_variants.py)."""
import csv

import numpy as np
import pytest

from pipeline.core import config, pngio
from pipeline.variants import geometry
from pipeline.crop.crop import CropConfig, run_crop
from pipeline.variants.letterbox import LetterboxConfig, enhance, run_letterbox
from tests.builders import make_stage_inputs


def test_run_letterbox_every_variant(tmp_path):
    truth = make_stage_inputs(tmp_path, n=4)
    run_crop(CropConfig(), tmp_path / "audit", tmp_path / "ingested/manifest.csv", tmp_path / "crops",
             tmp_path / "reports/crops.html", workers=1, progress=False)
    variants = {"f": config.Variant("full", "16:9", "letterbox", 36, 64),
                "t": config.Variant("teeth", "square", "letterbox", 32, 32),
                "s": config.Variant("full", "square", "squash", 32, 32)}
    for name, v in variants.items():
        rows = run_letterbox(name, v, LetterboxConfig(pad_value=0.5), tmp_path / "audit", tmp_path / "crops",
                             tmp_path / "variants", workers=2 if name == "f" else 1, progress=False)
        assert len(rows) == len(truth)
        with open(tmp_path / "variants" / name / "transforms.csv", newline="") as f:
            table = list(csv.DictReader(f))
        assert list(table[0]) == geometry.TRANSFORM_COLUMNS
        for r in table:
            img = pngio.read_png16(tmp_path / "variants" / name / "images" / f"{r['image_id']}.png")
            assert img.shape == (v.height, v.width) and img.dtype == np.uint16
            t = geometry.Transform.from_row(r)
            src_dir = "audit/images" if v.source == "full" else "crops/images"
            src = pngio.read_png16(tmp_path / src_dir / f"{r['image_id']}.png")
            assert (t.src_w, t.src_h) == (src.shape[1], src.shape[0])
            if v.mode == "squash":
                assert t.pad_left == t.pad_top == 0
            else:
                assert abs(t.scale_x / t.scale_y - 1) < 0.05
                x0, y0, x1, y1 = t.content_box()
                if y0 > 0:  # the padding holds pad_value
                    assert np.all(img[:y0] == 32768)


def test_enhance_params():
    rng = np.random.default_rng(0)
    img = (rng.random((64, 128)) * 0.3 * 65535 + 10000).astype(np.uint16)
    plain = enhance(img, LetterboxConfig())
    assert plain.dtype == np.uint16 and np.array_equal(plain, img)  # nothing configured: the image itself
    norm = enhance(img, LetterboxConfig(normalise="percentile", percentiles=[0.0, 100.0]))
    assert norm.min() == 0 and norm.max() == 65535
    clahe = enhance(img, LetterboxConfig(clahe=True))
    assert not np.allclose(clahe, plain)
    with pytest.raises(config.ConfigError, match=r"letterbox.pad_value: 2.0 is out of range \(allowed: \[0, 1\]\)"):
        config.build(LetterboxConfig, {"pad_value": 2.0}, "letterbox")
    with pytest.raises(config.ConfigError, match="lo < hi"):
        LetterboxConfig(percentiles=[50.0, 10.0])
