"""Decoding raw files into one grey representation, with DICOM LUTs applied in the right order."""
import collections
from pathlib import Path

import cv2
import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import JPEG2000Lossless, RLELossless

from pipeline.ingest.decode import DecodeError, decode_file, sniff_format
from tests import builders


def dicom(path: Path, stored: np.ndarray, *, bits_stored=None, signed=False, photometric="MONOCHROME2",
          **tags) -> Path:
    """Write a minimal single-frame grey DICOM with the given stored values and tags."""
    ds = builders.sc_dataset()
    ds.PatientID = "PID-SECRET-1"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.Rows, ds.Columns = stored.shape
    alloc = stored.dtype.itemsize * 8
    ds.BitsAllocated = alloc
    ds.BitsStored = bits_stored or alloc
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = int(signed)
    ds.PixelData = np.ascontiguousarray(stored).tobytes()
    for k, v in tags.items():
        setattr(ds, k, v)
    ds.save_as(path, enforce_file_format=True)
    return path


def test_monochrome1_is_inverted_with_known_values(tmp_path):
    stored = np.array([[0, 4095], [2048, 1024]], np.uint16)
    out = decode_file(dicom(tmp_path / "m1.dcm", stored, bits_stored=12, photometric="MONOCHROME1"), "s")
    assert out.photometric == "MONOCHROME1" and out.bits == 12
    assert out.pixels[0, 0] == 65535 and out.pixels[0, 1] == 0  # stored 0 is white in MONOCHROME1
    assert out.pixels[1, 0] == round((1 - 2048 / 4095) * 65535)


def test_window_center_width_linear(tmp_path):
    stored = np.array([[0, 100, 150, 200, 300]], np.uint16)
    out = decode_file(dicom(tmp_path / "w.dcm", stored, bits_stored=12, WindowCenter=150, WindowWidth=101), "s")
    # PS3.3 C.11.2.1.2.1: y = ((x - (c - 0.5)) / (w - 1) + 0.5), clipped to [0, 1]
    expected = np.clip((stored - 149.5) / 100.0 + 0.5, 0, 1) * 65535
    assert np.array_equal(out.pixels, np.round(expected).astype(np.uint16))
    assert out.pixels[0, 0] == 0 and out.pixels[0, -1] == 65535


def test_rescale_then_window_then_monochrome1(tmp_path):
    stored = np.array([[10, 20, 30]], np.uint16)
    # modality LUT: 2*x - 20 -> 0, 20, 40 ; window c=20.5 w=41 -> 0, 0.5, 1 ; MONOCHROME1 -> 1, 0.5, 0
    out = decode_file(dicom(tmp_path / "r.dcm", stored, bits_stored=12, photometric="MONOCHROME1",
                            RescaleSlope=2, RescaleIntercept=-20, WindowCenter=20.5, WindowWidth=41), "s")
    assert out.pixels.tolist() == [[65535, 32768, 0]]


def test_voi_lut_sequence_with_known_values(tmp_path):
    stored = np.array([[0, 1, 2, 3, 7]], np.uint16)
    item = Dataset()
    item.LUTDescriptor = [4, 1, 8]  # 4 entries, first mapped value 1, 8 bits
    item.add_new("LUTData", "US", [0, 85, 170, 255])
    p = dicom(tmp_path / "lut.dcm", stored, bits_stored=8, WindowCenter=100, WindowWidth=10)
    ds = pydicom.dcmread(p)
    ds.VOILUTSequence = [item]
    ds.save_as(p)
    out = decode_file(p, "s")  # the LUT wins over the window; values outside it clamp to its ends
    assert out.pixels.tolist() == [[0, 0, 85 * 257, 170 * 257, 65535]]


def test_bits_above_bits_stored_are_masked(tmp_path):
    clean = np.array([[0, 1000, 4095]], np.uint16)
    junk = clean | np.uint16(0xA000)  # overlay / junk in the unused high bits, as some archives have
    a = decode_file(dicom(tmp_path / "a.dcm", clean, bits_stored=12), "s").pixels
    b = decode_file(dicom(tmp_path / "b.dcm", junk, bits_stored=12), "s").pixels
    assert np.array_equal(a, b)
    assert a.tolist() == [[0, round(1000 / 4095 * 65535), 65535]]


def test_signed_pixels_are_sign_extended(tmp_path):
    values = np.array([[-2048, 0, 2047]], np.int16)
    stored = (values.view(np.uint16) & 0x0FFF).astype(np.uint16).view(np.int16)  # 12-bit two's complement
    out = decode_file(dicom(tmp_path / "s.dcm", stored, bits_stored=12, signed=True), "s")
    assert out.pixels.tolist() == [[0, round(2048 / 4095 * 65535), 65535]]


@pytest.mark.parametrize("syntax", [JPEG2000Lossless, RLELossless])
def test_compressed_syntaxes_decode_identically(tmp_path, syntax):
    rng = np.random.default_rng(1)
    stored = rng.integers(0, 4096, (32, 48), dtype=np.uint16)
    raw = decode_file(dicom(tmp_path / "raw.dcm", stored, bits_stored=12), "s")
    p = dicom(tmp_path / "c.dcm", stored, bits_stored=12)
    ds = pydicom.dcmread(p)
    ds.compress(syntax)
    ds.save_as(p)
    out = decode_file(p, "s")
    assert out.transfer_syntax == syntax.keyword
    assert np.array_equal(out.pixels, raw.pixels)


def test_patient_key_is_salted_and_never_the_id(tmp_path):
    p = dicom(tmp_path / "k.dcm", np.zeros((4, 4), np.uint16))
    a, b = decode_file(p, "salt-a"), decode_file(p, "salt-b")
    assert a.patient_key and a.patient_key != b.patient_key
    assert "SECRET" not in a.patient_key and a.modality == "PX"


def test_raster_formats(tmp_path):
    g = (np.arange(24 * 40).reshape(24, 40) % 251).astype(np.uint8)
    cv2.imwrite(str(tmp_path / "g.png"), g)
    cv2.imwrite(str(tmp_path / "g16.tif"), g.astype(np.uint16) * 100)
    cv2.imwrite(str(tmp_path / "rgb.png"), cv2.merge([g, g, g]))
    colour = cv2.merge([g, np.zeros_like(g), 255 - g])
    cv2.imwrite(str(tmp_path / "colour.png"), colour)
    cv2.imwrite(str(tmp_path / "g.jpg"), g)
    assert np.array_equal(decode_file(tmp_path / "g.png", "").pixels, g.astype(np.uint16) * 257)
    t = decode_file(tmp_path / "g16.tif", "")
    assert t.bits == 16 and t.format == "tiff" and np.array_equal(t.pixels, g.astype(np.uint16) * 100)
    r = decode_file(tmp_path / "rgb.png", "")
    assert not r.colour and np.array_equal(r.pixels, g.astype(np.uint16) * 257)
    c = decode_file(tmp_path / "colour.png", "")
    assert c.colour and c.pixels.ndim == 2
    j = decode_file(tmp_path / "g.jpg", "")
    assert j.format == "jpeg" and j.pixels.shape == g.shape


def test_bad_files_are_rejected_with_reasons(tmp_path):
    g = np.full((64, 64), 128, np.uint8)
    cv2.imwrite(str(tmp_path / "ok.png"), g)
    cv2.imwrite(str(tmp_path / "ok.jpg"), g)
    d = dicom(tmp_path / "ok.dcm", np.zeros((64, 64), np.uint16))
    (tmp_path / "empty.dcm").write_bytes(b"")
    (tmp_path / "text.png").write_text("hello, not a picture")
    for src in ("ok.png", "ok.jpg", "ok.dcm"):
        data = (tmp_path / src).read_bytes()
        (tmp_path / f"cut_{src}").write_bytes(data[: len(data) // 2])
    cases = {"empty.dcm": "empty file", "text.png": "not an image", "cut_ok.png": "PNG cut short",
             "cut_ok.jpg": "JPEG cut short", "cut_ok.dcm": "DICOM pixel data shorter"}
    for name, reason in cases.items():
        with pytest.raises(DecodeError) as e:
            decode_file(tmp_path / name, "s")
        assert e.value.reason and reason in e.value.reason, (name, e.value.reason)
    assert sniff_format(d) == "dicom" and sniff_format(tmp_path / "text.png") == "unknown"


def test_every_pydicom_test_file_is_decoded_or_rejected():
    data = Path(pydicom.__file__).parent / "data"
    skip = {".py", ".pyc", ".json", ".txt", ".md"}
    files = [p for p in data.rglob("*") if p.is_file() and p.suffix.lower() not in skip]
    assert len(files) > 50
    decoded, rejected = 0, collections.Counter()
    for p in files:
        try:
            out = decode_file(p, "s")
        except DecodeError as e:
            assert e.reason
            rejected[e.reason.split(" (")[0]] += 1
            continue
        assert out.pixels.dtype == np.uint16 and out.pixels.ndim == 2 and out.pixels.size > 0
        decoded += 1
    print(f"\npydicom test files: {decoded} decoded, {sum(rejected.values())} rejected: {dict(rejected)}")
    assert decoded >= 50
