import csv
import hashlib

import numpy as np
import pydicom
import pytest

from pipeline.demo import phantoms
from pipeline.ingest.decode import decode_file
from pipeline.demo.phantoms import PhantomsConfig

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
        ds = pydicom.dcmread(p)   # every non-empty one, the truncated ones too: they are cut in the pixel data
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


def _decoded(path):
    return decode_file(path, "s").pixels.astype(np.float32) / 65535


def test_decoding_each_clean_file_gives_back_its_phantom(archive):
    """Modality LUT, VOI LUT or window, MONOCHROME1 inversion and junk-bit masking undo what was stored."""
    for r in _gt(archive):
        if r["defect"]:
            continue
        i = int(r["file"].rsplit("opg_", 1)[1][:4])
        want, box = phantoms.render_opg(np.random.default_rng([5, i]), SMALL.height, SMALL.width)
        assert [int(r[k]) for k in ("teeth_x0", "teeth_y0", "teeth_x1", "teeth_y1")] == list(box)
        got = _decoded(archive / r["file"])
        assert got.shape == want.shape, r["file"]
        err = np.abs(got - want)
        if r["format"].startswith("jpeg"):
            assert err.mean() < 0.01, (r["file"], err.mean())
        elif r["format"] in ("png8", "tiff8", "png_rgb", "tiff_rgb", "dicom_8bit"):
            assert err.max() <= 0.5 / 255 + 1e-4, (r["file"], err.max())  # 8-bit rounding only
        else:  # 12 or 16 bits (12 through a gamma VOI LUT: coarser in the dark)
            assert err.max() < 2.5e-3, (r["file"], err.max())


def test_defects_look_like_their_names(archive):
    for r in _gt(archive):
        d = r["defect"]
        if not d or r["expected_status"] == "rejected":
            continue
        img = _decoded(archive / r["file"])
        assert img.shape == (int(r["height"]), int(r["width"])), r["file"]
        orig = _decoded(archive / r["source"]) if d != "not_panoramic" else None
        if d == "exact_duplicate":
            assert np.array_equal(img, orig), r["file"]
        elif d == "underexposed":
            assert (img < 0.1).mean() > 0.6 > (orig < 0.1).mean(), r["file"]
        elif d == "overexposed":
            assert (img > 0.9).mean() > 0.5 > (orig > 0.9).mean(), r["file"]
        elif d == "blur":
            sharp = lambda a: np.abs(np.diff(a, axis=1)).mean()  # noqa: E731
            assert sharp(img) < 0.3 * sharp(orig), r["file"]
        elif d == "rotated180":
            assert np.abs(img[::-1, ::-1] - orig).mean() < 0.01, r["file"]
        elif d == "near_duplicate":
            assert 0.75 * SMALL.width < img.shape[1] < 0.96 * SMALL.width
        elif d == "not_panoramic":
            assert img.shape[1] <= img.shape[0] and not r["teeth_x0"]
        elif d == "burned_in_text":
            diff = img - orig
            assert (diff > 0.3).mean() > 0.001 and (np.abs(diff) > 0.05).mean() < 0.05, r["file"]
        if r["teeth_x0"]:
            x0, y0, x1, y1 = (int(r[k]) for k in ("teeth_x0", "teeth_y0", "teeth_x1", "teeth_y1"))
            assert 0 <= x0 < x1 <= img.shape[1] and 0 <= y0 < y1 <= img.shape[0], r["file"]


def test_near_duplicate_box_follows_the_resize(archive):
    gt = _gt(archive)
    by = {r["file"]: r for r in gt}
    for r in gt:
        if r["defect"] != "near_duplicate":
            continue
        s = by[r["source"]]
        f = int(r["width"]) / int(s["width"])
        for k in ("teeth_x1", "teeth_y1"):  # the far corner moves by the scale, less a crop of a few px
            assert abs(int(r[k]) - int(s[k]) * f) < 0.04 * int(s["width"]) + 2, (r["file"], k)


def test_many_defects_get_distinct_files(tmp_path):
    cfg = PhantomsConfig(n_clean=3, n_per_defect=5, width=256, height=128)
    out = phantoms.build_archive(tmp_path / "raw", cfg, seed=2, progress=False)
    gt = _gt(out)
    assert len({r["file"] for r in gt}) == len(gt) == 3 + 5 * len(phantoms.DEFECTS)
    assert {r["file"] for r in gt} == {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()} - {
        "ground_truth.csv"}


def test_truncated_files_are_cut_dicom_and_raster(tmp_path):
    out = phantoms.build_archive(tmp_path / "raw", PhantomsConfig(n_clean=2, n_per_defect=3, width=256, height=128),
                                 seed=3, progress=False)
    rows = [r for r in _gt(out) if r["defect"] == "truncated"]
    assert {phantoms._family(r["format"]) for r in rows} == {"dicom", "png", "jpeg"}
    for r in rows:
        data = (out / r["file"]).read_bytes()
        assert len(data) > 1000
        if r["format"].startswith("dicom"):
            assert data[128:132] == b"DICM"
            ds = pydicom.dcmread(out / r["file"])
            with pytest.raises(ValueError, match="pixel data is less than expected"):
                ds.pixel_array
        else:
            assert not data.endswith(b"IEND\xaeB`\x82") and not data.endswith(b"\xff\xd9")


def test_full_size_render_draws_a_whole_opg():
    """A phantom at a real OPG's size (2900x1400): the frame asked for, grey in [0, 1], the teeth box
    inside it and the teeth brighter than the rest. (How fast it renders: ``python -m bench.phantoms``.)"""
    img, box = phantoms.render_opg(np.random.default_rng(0), 1400, 2900)
    assert img.shape == (1400, 2900) and img.dtype == np.float32
    assert 0.0 <= img.min() < img.max() <= 1.0
    x0, y0, x1, y1 = box
    assert 0 <= x0 < x1 <= 2900 and 0 <= y0 < y1 <= 1400 and 1.6 < (x1 - x0) / (y1 - y0) < 3.5
    inside = img[int(y0):int(y1), int(x0):int(x1)]
    assert np.percentile(inside, 98) > np.percentile(np.concatenate([img[:int(y0)].ravel(), img[int(y1):].ravel()]), 98) + 0.05


def test_config_rejects_tiny_frames():
    from pipeline.core.config import ConfigError, build

    with pytest.raises(ConfigError, match=r"phantoms.width: 50 is out of range \(allowed: >= 128\)"):
        build(PhantomsConfig, {"width": 50, "height": 20}, "phantoms")   # params are checked where they are read
