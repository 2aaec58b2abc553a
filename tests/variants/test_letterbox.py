"""Letterbox stage: exact output size, transforms.csv, params; through DVC, changing one variant's size
reruns only that variant's stages."""
import csv

import numpy as np
import pytest

from pipeline.core import config, pngio
from pipeline.variants import geometry
from pipeline.crop.crop import CropConfig, run_crop
from pipeline.variants.letterbox import LetterboxConfig, enhance, run_letterbox
from tests import builders
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


SMALL = {"phantoms.n_clean": 5, "phantoms.n_per_defect": 0, "phantoms.width": 256, "phantoms.height": 128,
         "audit.min_width": 128, "audit.min_height": 64,
         "variants": {"full_16x9": {"source": "full", "aspect": "16:9", "mode": "letterbox", "height": 36, "width": 64},
                      "teeth_square": {"source": "teeth", "aspect": "square", "mode": "letterbox", "height": 32,
                                       "width": 32}}}


@pytest.mark.slow
def test_changing_one_variant_reruns_only_its_stages(repo_root, tmp_path):
    proj = builders.copy_project(repo_root, tmp_path / "proj")
    builders.set_params(proj, SMALL)
    first = builders.dvc(proj, "repro", "crop", "letterbox", "split")
    assert {"crop", "letterbox@full_16x9", "letterbox@teeth_square", "split"} <= builders.ran_stages(first)
    img = pngio.read_png16(next((proj / "data/variants/full_16x9/images").glob("*.png")))
    assert img.shape == (36, 64)
    before = builders.changed_stages(proj)  # stages downstream not yet run (train, ...) may be listed already
    assert not {s for s in before if s.startswith(("letterbox", "crop", "split"))}

    builders.set_params(proj, {"variants.full_16x9.height": 40})
    after = builders.changed_stages(proj)
    assert after - before == {"letterbox@full_16x9"}, after - before
    second = builders.dvc(proj, "repro", "letterbox")
    assert builders.ran_stages(second) == {"letterbox@full_16x9"}
    img = pngio.read_png16(next((proj / "data/variants/full_16x9/images").glob("*.png")))
    assert img.shape == (40, 64)
    # downstream stages of the changed variant (train@full_16x9, ...) may now be stale; no other variant's are
    stale = builders.changed_stages(proj) - before
    assert not any("teeth_square" in s for s in stale) and not any(s in ("crop", "split") for s in stale)
