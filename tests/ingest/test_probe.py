"""Formats from their signatures; sizes and TIFF pages from headers alone."""
import cv2
import numpy as np
import pytest

from pipeline.ingest import probe
from pipeline.ingest.decode import DecodeError, Limits, decode_file


def _img(h=40, w=90):
    return (np.arange(h * w).reshape(h, w) % 251).astype(np.uint8)


@pytest.mark.parametrize("ext,fmt", [(".png", "png"), (".jpg", "jpeg"), (".tif", "tiff")])
def test_size_from_the_header(tmp_path, ext, fmt):
    p = tmp_path / f"a{ext}"
    cv2.imwrite(str(p), _img())
    head = probe.raster_header(p, fmt)
    assert (head.width, head.height, head.pages) == (90, 40, 1)
    with pytest.raises(DecodeError, match="too large") as e:  # rejected before decoding
        decode_file(p, "", Limits(max_pixels=1000))
    assert (e.value.width, e.value.height) == (90, 40)
    with pytest.raises(DecodeError, match="shape"):
        decode_file(p, "", Limits(max_aspect=2.0))


def test_jpeg_with_exif_thumbnail_before_the_frame(tmp_path):
    thumb = cv2.imencode(".jpg", _img(8, 8))[1].tobytes()
    exif = b"Exif\0\0" + thumb  # an APP1 segment holding a whole JPEG (its own SOF and EOI)
    jpg = cv2.imencode(".jpg", _img())[1].tobytes()
    data = jpg[:2] + b"\xff\xe1" + (len(exif) + 2).to_bytes(2, "big") + exif + jpg[2:]
    (tmp_path / "e.jpg").write_bytes(data)
    assert probe.raster_header(tmp_path / "e.jpg", "jpeg").width == 90
    assert decode_file(tmp_path / "e.jpg", "").pixels.shape == (40, 90)


def _tiff(pages: list[tuple[np.ndarray, int]]) -> bytes:
    """A little-endian uncompressed 8-bit grey TIFF; each page (pixels, NewSubfileType)."""
    import struct

    out = bytearray(b"II*\0\0\0\0\0")
    prev_next = 4
    for img, subfile in pages:
        h, w = img.shape
        strip = len(out)
        out += img.tobytes()
        if len(out) % 2:
            out += b"\0"
        tags = [(254, 4, subfile), (256, 4, w), (257, 4, h), (258, 3, 8), (259, 3, 1), (262, 3, 1),
                (273, 4, strip), (277, 3, 1), (278, 4, h), (279, 4, h * w)]
        ifd = len(out)
        struct.pack_into("<I", out, prev_next, ifd)
        out += struct.pack("<H", len(tags))
        for tag, typ, val in tags:
            out += struct.pack("<HHI", tag, typ, 1) + (struct.pack("<HH", val, 0) if typ == 3 else struct.pack("<I", val))
        prev_next = len(out)
        out += b"\0\0\0\0"
    return bytes(out)


def test_tiff_pages_thumbnails_not_counted(tmp_path):
    (tmp_path / "thumb.tif").write_bytes(_tiff([(_img(), 0), (_img(10, 20), 1)]))  # page 2: reduced resolution
    head = probe.raster_header(tmp_path / "thumb.tif", "tiff")
    assert (head.width, head.height, head.pages) == (90, 40, 1)
    assert decode_file(tmp_path / "thumb.tif", "").pixels.shape == (40, 90)  # the image, not refused
    (tmp_path / "two.tif").write_bytes(_tiff([(_img(), 0), (_img()[::-1].copy(), 0)]))
    assert probe.raster_header(tmp_path / "two.tif", "tiff").pages == 2
    with pytest.raises(DecodeError, match="multi-page TIFF"):
        decode_file(tmp_path / "two.tif", "")
    (tmp_path / "cut.tif").write_bytes((tmp_path / "two.tif").read_bytes()[:6])
    with pytest.raises(DecodeError, match="TIFF cut short"):
        probe.raster_header(tmp_path / "cut.tif", "tiff")


def test_sniff_names_unsupported_formats():
    assert probe.sniff(b"GIF89a" + b"\0" * 20) == "unsupported:GIF"
    assert probe.sniff(b"RIFF\0\0\0\0WEBPVP8 ") == "unsupported:WebP"
    assert probe.sniff(b"\x00\x00\x00\x0cjP  \r\n\x87\n") == "unsupported:JPEG 2000"
    assert probe.sniff(b"BM" + b"\0" * 12 + (40).to_bytes(4, "little") + b"\0" * 8) == "unsupported:BMP"
    assert probe.sniff(b"BMW is a car brand, not a bitmap") == "unknown"
    assert probe.describe_unknown(b"hello\n") == "not an image: a text file"


def _bare_dicom(first_group: int, implicit: bool, pixels: np.ndarray) -> bytes:
    """A DICOM data set stored raw (no preamble, no "DICM", no file meta) whose first element is in
    ``first_group`` (0x0010: patient, 0x0018: acquisition, 0x0028: the image tags themselves)."""
    from pydicom.dataset import Dataset
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_dataset

    ds = Dataset()
    if first_group <= 0x0010:
        ds.PatientName, ds.PatientID = "Doe^Jane", "PID-1"
    if first_group <= 0x0018:
        ds.KVP, ds.ImagerPixelSpacing = "70", [0.1, 0.1]
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.Rows, ds.Columns = pixels.shape
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.PixelData = pixels.astype("<u2").tobytes()
    fp = DicomBytesIO()
    fp.is_little_endian, fp.is_implicit_VR = True, implicit
    write_dataset(fp, ds)
    data = fp.getvalue()
    assert int.from_bytes(data[:2], "little") == first_group
    return data


@pytest.mark.parametrize("implicit", [True, False], ids=["implicit", "explicit"])
@pytest.mark.parametrize("group", [0x0010, 0x0018, 0x0028])
def test_raw_dicom_is_recognised_by_structure_at_any_first_group(tmp_path, group, implicit):
    px = (np.arange(40 * 90).reshape(40, 90) * 17 % 65536).astype(np.uint16)
    data = _bare_dicom(group, implicit, px)
    assert probe.bare_dicom_encoding(data[:probe.HEAD_BYTES]) == ("implicit" if implicit else "explicit")
    (tmp_path / "raw.dcm").write_bytes(data)
    dec = decode_file(tmp_path / "raw.dcm", "salt")
    assert dec.format == "dicom" and dec.transfer_syntax.startswith("ImplicitVR" if implicit else "ExplicitVR")
    assert np.array_equal(dec.pixels, px)  # 16 bits stored: the stored values, as they are


def test_junk_is_not_mistaken_for_raw_dicom(tmp_path):
    rng = np.random.default_rng(3)
    good = _bare_dicom(0x0028, False, np.zeros((40, 90), np.uint16))
    junk = {
        "random": b"\x01" + rng.bytes(4095),
        "one plausible element, then random": good[:10] + rng.bytes(500),   # (0028,0002) US 1, then noise
        "tags descending": good[10:30] + good[:10] + good[30:],                # (0028,0004) before (0028,0002)
        "odd length": b"\x28\x00\x02\x00\x03\x00\x00\x00" + rng.bytes(600),
        "unknown VR": b"\x28\x00\x02\x00QQ\x02\x00\x01\x00" + good[10:],
        "an item outside any sequence": b"\xfe\xff\x00\xe0\x00\x00\x00\x00" + good,
        "command group": b"\x00\x00\x00\x00\x04\x00\x00\x00" + good,
        "text": b"Patient called about the appointment\n" * 20,
    }
    for name, data in junk.items():
        assert probe.sniff(data[:probe.HEAD_BYTES]) != "dicom", name
        (tmp_path / "junk.bin").write_bytes(data)
        with pytest.raises(DecodeError, match="not an image") as e:
            decode_file(tmp_path / "junk.bin", "salt")
        assert e.value.reason in ("not an image: no DICOM, PNG, JPEG or TIFF signature", "not an image: a text file"), name
