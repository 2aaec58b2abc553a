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
    assert probe.sniff(b"\x08\x00\x16\x00UI\x1a\x00" + b"1" * 26) == "dicom"   # bare explicit VR
    assert probe.sniff(b"\x08\x00\x16\x00\x1a\x00\x00\x00" + b"1" * 26) == "dicom"  # bare implicit VR
    assert probe.describe_unknown(b"hello\n") == "not an image: a text file"
