"""Through DVC, changing one variant's size reruns only that variant's stages."""
import pytest

from pipeline.core import pngio
from tests import builders


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
