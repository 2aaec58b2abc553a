import csv
import hashlib

import numpy as np
import pydicom
import pytest

from pipeline import phantoms
from pipeline.decode import decode_file
from pipeline.phantoms import PhantomsConfig

SMALL = PhantomsConfig(n_clean=14, n_per_defect=2, width=384, height=192)


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    return phantoms.build_archive(tmp_path_factory.mktemp("demo") / "raw", SMALL, seed=5, progress=False)


def _gt(archive):
    with open(archive / "ground_truth.csv", newline="") as f:
        return list(csv.DictReader(f))


def _digest(folder):
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            h.update(p.relative_to(folder).as_posix().encode() + p.read_bytes())
    return h.hexdigest()


def test_same_seed_same_bytes(archive, tmp_path):
    again = phantoms.build_archive(tmp_path / "again", SMALL, seed=5, progress=False)
    assert _digest(again) == _digest(archive)
    other = phantoms.build_archive(tmp_path / "other", SMALL, seed=6, progress=False)
    assert _digest(other) != _digest(archive)


def test_ground_truth_lists_every_file_with_formats_and_defects(archive):
    gt = _gt(archive)
    files = {p.relative_to(archive).as_posix() for p in archive.rglob("*") if p.is_file()}
    assert {r["file"] for r in gt} == files - {"ground_truth.csv"}
    clean = [r for r in gt if not r["defect"]]
    assert len(clean) == SMALL.n_clean
    assert {r["format"] for r in clean} == set(phantoms.CLEAN_FORMATS)
    for d in phantoms.DEFECTS:
        rows = [r for r in gt if r["defect"] == d]
        assert len(rows) == SMALL.n_per_defect, d
        assert all(r["expected_status"] == ("rejected" if d in phantoms.REJECTED_AT_INGEST else "ok") for r in rows)
    assert any(p.stat().st_size == 0 for p in archive.rglob("*") if p.is_file())


def test_teeth_box_covers_the_bright_teeth_rows(archive):
    for r in _gt(archive):
        if r["defect"] or not r["teeth_x0"]:
            continue
        img = decode_file(archive / r["file"], "s").pixels.astype(np.float32) / 65535
        x0, y0, x1, y1 = (int(r[k]) for k in ("teeth_x0", "teeth_y0", "teeth_x1", "teeth_y1"))
        assert 0 <= x0 < x1 <= img.shape[1] and 0 <= y0 < y1 <= img.shape[0]
        inside = img[y0:y1, x0:x1]
        outside = np.concatenate([img[:y0].ravel(), img[y1:].ravel()])
        assert np.percentile(inside, 98) > np.percentile(outside, 98) + 0.05, r["file"]
        assert 1.6 < (x1 - x0) / (y1 - y0) < 3.5  # a wide band of teeth


def test_dicom_quirks_are_present(archive):
    seen = set()
    for p in archive.rglob("*.dcm"):
        if p.stat().st_size == 0:
            continue
        try:
            ds = pydicom.dcmread(p)
            ds.PhotometricInterpretation
        except Exception:
            continue  # the truncated one
        seen.add(ds.PhotometricInterpretation)
        seen.add(ds.file_meta.TransferSyntaxUID.keyword)
        if ds.BitsStored == 12 and ds.BitsAllocated == 16 and "PixelData" in ds and \
                ds.file_meta.TransferSyntaxUID.keyword == "ExplicitVRLittleEndian":
            raw = np.frombuffer(ds.PixelData, np.uint16)
            if (raw >> 12).any():
                seen.add("junk-high-bits")
        for tag in ("VOILUTSequence", "RescaleIntercept", "WindowCenter"):
            if tag in ds:
                seen.add(tag)
        if ds.BitsStored == 8:
            seen.add("8-bit")
    assert {"MONOCHROME1", "MONOCHROME2", "JPEG2000Lossless", "RLELossless", "junk-high-bits",
            "VOILUTSequence", "RescaleIntercept", "WindowCenter", "8-bit"} <= seen


def test_markers_are_planted_in_dicom_only(archive):
    markers = [m.encode() for m in phantoms.marker_strings(5)]
    assert len(set(markers)) == len(markers) == len(phantoms.IDENTIFYING_FIELDS)
    dcm = [p.read_bytes() for p in archive.rglob("*.dcm") if p.stat().st_size]
    for m in markers:
        assert any(m in data for data in dcm), m
    assert not any(m in (archive / "ground_truth.csv").read_bytes() for m in markers)
    assert phantoms.marker_strings(5) != phantoms.marker_strings(6)


def test_some_patients_have_two_studies(archive):
    dicom_patients = [r["patient"] for r in _gt(archive) if not r["defect"] and r["format"].startswith("dicom")]
    assert len(dicom_patients) > len(set(dicom_patients))


def test_rotation_is_visible_in_the_structure():
    img, box = phantoms.render_opg(np.random.default_rng(1), 192, 384)
    rows = img.mean(axis=1)
    # the teeth rows sit in the middle band; the mandible body fills the lower part, the upper part is darker
    assert rows[int(0.65 * 192):int(0.85 * 192)].mean() > rows[int(0.05 * 192):int(0.25 * 192)].mean()
    flipped = img[::-1, ::-1].mean(axis=1)
    assert not np.allclose(rows, flipped, atol=0.01)


def test_config_rejects_tiny_frames():
    from pipeline.config import ConfigError

    with pytest.raises(ConfigError):
        PhantomsConfig(width=50, height=20)
