"""`dvc repro` drives phantoms -> ingest; changing an ingest param reruns ingest and not phantoms."""
import pytest

from tests import builders

SMALL = {"phantoms.n_clean": 4, "phantoms.n_per_defect": 1, "phantoms.width": 256, "phantoms.height": 128}


@pytest.mark.slow
def test_ingest_param_change_reruns_only_ingest(repo_root, tmp_path):
    proj = builders.copy_project(repo_root, tmp_path / "proj")
    builders.set_params(proj, SMALL)
    first = builders.dvc(proj, "repro", "ingest")
    assert builders.ran_stages(first, always=True) == {"phantoms", "inventory", "ingest"}
    n_raw = sum(1 for p in (proj / "data/demo_raw").rglob("*") if p.is_file())
    manifest = (proj / "data/ingested/manifest.csv").read_text().splitlines()
    assert len(manifest) - 1 == n_raw, "one manifest row per raw file"
    assert builders.changed_stages(proj, "ingest") == set()

    builders.set_params(proj, {"ingest.png_compression": 3})
    assert builders.changed_stages(proj, "ingest") == {"ingest"}
    second = builders.dvc(proj, "repro", "ingest")
    assert builders.ran_stages(second, always=True) == {"inventory", "ingest"}  # the archive is looked at every time
    assert "Stage 'phantoms' didn't change, skipping" in second

    builders.set_params(proj, {"phantoms.n_clean": 5})
    assert builders.changed_stages(proj, "ingest") == {"phantoms"}
    assert builders.ran_stages(builders.dvc(proj, "repro", "ingest"), always=True) == {"phantoms", "inventory", "ingest"}


@pytest.mark.slow
def test_messy_archive_through_dvc_repro(repo_root, tmp_path):
    """An archive DVC itself cannot hash (dangling link, link loop, non-UTF-8 name, a pipe): `dvc repro`
    runs, one manifest row per entry; unchanged archive: ingest skipped; a new file: ingest reruns."""
    import csv

    proj = builders.copy_project(repo_root, tmp_path / "proj")
    expected, planted = builders.messy_archive(tmp_path / "archive")
    builders.set_params(proj, SMALL | {"ingest.raw_dir": str(tmp_path / "archive"), "ingest.max_pixels": 1_000_000})
    log = builders.dvc(proj, "repro", "ingest")
    with open(proj / "data/ingested/manifest.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(expected)
    assert not [m for m in planted if m.lower() in log.lower()], "no identifying value in the stage's output"
    assert builders.changed_stages(proj, "ingest") == set()
    again = builders.dvc(proj, "repro", "ingest")
    assert builders.ran_stages(again, always=True) == {"inventory"} and "Stage 'ingest' didn't change, skipping" in again
    (tmp_path / "archive" / "ok" / "new.txt").write_text("a new entry")
    assert builders.ran_stages(builders.dvc(proj, "repro", "ingest"), always=True) == {"inventory", "ingest"}
    with open(proj / "data/ingested/manifest.csv", newline="") as f:
        assert len(list(csv.DictReader(f))) == len(expected) + 1
