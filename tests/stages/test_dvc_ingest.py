"""`dvc repro` drives phantoms -> ingest; changing an ingest param reruns ingest and not phantoms."""
import pytest

from tests import builders

SMALL = {"phantoms.n_clean": 4, "phantoms.n_per_defect": 1, "phantoms.width": 256, "phantoms.height": 128}


@pytest.mark.slow
def test_ingest_param_change_reruns_only_ingest(repo_root, tmp_path):
    proj = builders.copy_project(repo_root, tmp_path / "proj")
    builders.set_params(proj, SMALL)
    first = builders.dvc(proj, "repro", "ingest")
    assert builders.ran_stages(first) == {"phantoms", "ingest"}
    n_raw = sum(1 for p in (proj / "data/demo_raw").rglob("*") if p.is_file())
    manifest = (proj / "data/ingested/manifest.csv").read_text().splitlines()
    assert len(manifest) - 1 == n_raw, "one manifest row per raw file"
    assert builders.changed_stages(proj, "ingest") == set()

    builders.set_params(proj, {"ingest.png_compression": 3})
    assert builders.changed_stages(proj, "ingest") == {"ingest"}
    second = builders.dvc(proj, "repro", "ingest")
    assert builders.ran_stages(second) == {"ingest"}
    assert "Stage 'phantoms' didn't change, skipping" in second

    builders.set_params(proj, {"phantoms.n_clean": 5})
    assert builders.changed_stages(proj, "ingest") == {"phantoms"}
    assert builders.ran_stages(builders.dvc(proj, "repro", "ingest")) == {"phantoms", "ingest"}
