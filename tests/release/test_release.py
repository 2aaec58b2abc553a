import csv
import json

import numpy as np
import pydicom
import pytest

from pipeline.core import pngio
from pipeline.release.release import Provenance, ReleaseConfig, build_release
from pipeline.release.verify_release import verify
from stages import verify_release as verify_cli

VARIANTS = {"wide": (9, 16), "sq": (8, 8)}


@pytest.fixture()
def inputs(tmp_path):
    rng = np.random.default_rng(0)
    syn = tmp_path / "synthetic"
    for v, (h, w) in VARIANTS.items():
        rows = []
        for i in range(5):
            name = f"syn_{i:05d}.png"
            img = rng.integers(0, 65536, (h, w), dtype=np.uint16)
            pngio.write_png16(syn / v / "png16" / name, img)
            pngio.write_png8(syn / v / "png8" / name, img)
            rows.append({"file": name, "seed": 1000 + i, "variant": v, "checkpoint_sha256": "ab" * 32})
        with open(syn / v / "seeds.csv", "w", newline="") as f:
            w_ = csv.DictWriter(f, fieldnames=list(rows[0]))
            w_.writeheader()
            w_.writerows(rows)
    nearest = tmp_path / "nearest.csv"
    with open(nearest, "w", newline="") as f:
        w_ = csv.writer(f)
        w_.writerow(["variant", "file", "nearest_train_id", "distance", "threshold", "flagged"])
        for v in VARIANTS:
            for i in range(5):
                flagged = v == "wide" and i == 2  # the planted near-copy
                w_.writerow([v, f"syn_{i:05d}.png", "deadbeef00000000", 0.01 if flagged else 0.5, 0.1, flagged])
    metrics = tmp_path / "metrics.json"
    metrics.write_text(json.dumps({"wide": {"swd": {"synthetic": 0.2, "real_reference": 0.1}}}))
    lock = {"stages": {"train@wide": {"deps": [{"path": "data/variants/wide", "md5": "123.dir"}],
                                      "params": {"params.yaml": {"train.lr": 0.0001}}}}}
    return syn, nearest, metrics, lock


def _build(tmp_path, inputs, **kw):
    syn, nearest, metrics, lock = inputs
    cfg = ReleaseConfig(name="demo", version="1.0", license="CC BY-NC-SA 4.0 (inherited)", contact="a@b.org",
                        dicom=True, **kw)
    params = {"variants": {"wide": {"height": 9, "width": 16, "source": "full", "aspect": "16:9", "mode": "letterbox"}}}
    return build_release(cfg, syn, nearest, metrics, tmp_path / "release", Provenance("abc123", lock), params)


def _rows(bag):
    with open(bag / "manifest.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_release_builds_and_verifies(tmp_path, inputs):
    bag = _build(tmp_path, inputs)
    assert bag.name == "demo-1.0"
    assert verify(bag) == []
    assert verify(bag.with_name("demo-1.0.tar.gz")) == []
    assert verify_cli.main([str(bag)]) == 0
    rows = _rows(bag)
    included = [r for r in rows if r["status"] == "included"]
    assert len(included) == 9 * 3  # 9 images kept x (png16, png8, dicom)
    assert {r["format"] for r in included} == {"png16", "png8", "dicom"}
    card = (bag / "DATASET_CARD.md").read_text()
    for section in ("## Motivation", "## Composition", "## Collection and provenance", "## Preprocessing",
                    "## Quality metrics", "## Intended uses", "## Out-of-scope uses", "## Licence", "## Contact"):
        assert section in card
    assert "These images are synthetic" in card and "CC BY-NC-SA 4.0" in card
    assert "abc123" in card and "123.dir" in card  # code commit and training-data hash from dvc.lock
    assert (bag / "contact_sheet.png").stat().st_size > 0
    assert (bag / "bagit.txt").exists() and (bag / "manifest-sha256.txt").exists()


def test_near_copies_are_never_released(tmp_path, inputs):
    bag = _build(tmp_path, inputs)
    assert not list(bag.glob("data/wide/*/syn_00002.*")), "the flagged image must not be released"
    assert len(list(bag.glob("data/sq/*/syn_00002.*"))) == 3, "the same name in another variant is unaffected"
    excluded = [r for r in _rows(bag) if r["status"] == "excluded"]
    assert len(excluded) == 1 and excluded[0]["variant"] == "wide" and excluded[0]["file"] == "syn_00002.png"
    assert "near-copy" in excluded[0]["reason"]


def test_release_needs_the_memorisation_check(tmp_path, inputs):
    syn, nearest, metrics, lock = inputs
    nearest.unlink()
    with pytest.raises(FileNotFoundError, match="memorisation"):
        _build(tmp_path, (syn, nearest, metrics, lock))


def test_dicom_says_synthetic_and_carries_no_person(tmp_path, inputs):
    bag = _build(tmp_path, inputs)
    dcm = sorted(bag.glob("data/wide/dicom/*.dcm"))
    assert len(dcm) == 4
    ds = pydicom.dcmread(dcm[0])
    assert ds.ConversionType == "SYN"
    assert list(ds.ImageType) == ["DERIVED", "SECONDARY"]
    assert "SYNTHETIC" in ds.SeriesDescription and ds.BurnedInAnnotation == "NO"
    assert ds.PatientName == "" and ds.PatientID == "" and ds.get("PatientBirthDate", "") == ""
    assert "InstitutionName" not in ds and ds.StudyDate == ""
    png = pngio.read_png16(bag / "data/wide/png16" / dcm[0].with_suffix(".png").name)
    assert np.array_equal(ds.pixel_array, png)
    uids = {pydicom.dcmread(p).SOPInstanceUID for p in dcm}
    assert len(uids) == 4


def test_release_is_reproducible(tmp_path, inputs):
    a = _build(tmp_path / "a", inputs).with_name("demo-1.0.tar.gz").read_bytes()
    b = _build(tmp_path / "b", inputs).with_name("demo-1.0.tar.gz").read_bytes()
    assert a == b


def test_verify_names_the_file_that_broke(tmp_path, inputs, capsys):
    bag = _build(tmp_path, inputs)
    victim = sorted(bag.glob("data/sq/png16/*.png"))[0]
    rel = victim.relative_to(bag).as_posix()
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.write_bytes(bytes(data))
    problems = verify(bag)
    assert problems and all(rel in p for p in problems) and "checksum" in problems[0]
    assert verify_cli.main([str(bag)]) == 1
    assert rel in capsys.readouterr().err


def test_verify_fails_on_deleted_and_unlisted_files(tmp_path, inputs):
    bag = _build(tmp_path, inputs)
    gone = sorted(bag.glob("data/wide/png8/*.png"))[0]
    gone.unlink()
    problems = verify(bag)
    assert any(gone.relative_to(bag).as_posix() in p and "missing" in p for p in problems)

    bag2 = _build(tmp_path / "two", inputs)
    (bag2 / "data" / "sq" / "extra.png").write_bytes(b"not listed")
    (bag2 / "notes.txt").write_text("hello")
    problems = verify(bag2)
    assert any("data/sq/extra.png" in p for p in problems)
    assert any("notes.txt" in p for p in problems)

    bag3 = _build(tmp_path / "three", inputs)
    (bag3 / "DATASET_CARD.md").unlink()
    assert verify(bag3) == ["DATASET_CARD.md: missing"]


def test_verify_a_corrupted_archive(tmp_path, inputs):
    tar = _build(tmp_path, inputs).with_name("demo-1.0.tar.gz")
    tar.write_bytes(tar.read_bytes()[:200])
    problems = verify(tar)
    assert problems and "demo-1.0.tar.gz" in problems[0]
