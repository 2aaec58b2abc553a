"""What a raw file is, from its first bytes and its header alone (never its pixel data).

:func:`sniff` names the format from the signature (not the extension), including the formats ingest
does not read (GIF, WebP, BMP, JPEG 2000, ...), so a rejection says "unsupported format: GIF"
instead of "not an image"; a DICOM data set stored raw (no preamble, no "DICM") has no signature and
is recognised by the structure of its first data elements (:func:`bare_dicom_encoding`). :func:`raster_header` reads the size of a PNG (IHDR), JPEG (SOF) or TIFF
(tags of every page) from its header, so an oversize image is rejected before it is decoded in
full, and a multi-page TIFF is seen as one. Every failure is a :class:`DecodeError` whose reason is
plain words and never quotes the file's bytes.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path


class DecodeError(Exception):
    """A raw file that ingest rejects; ``reason`` goes into the manifest as it is."""

    def __init__(self, reason: str, width: int = 0, height: int = 0):
        super().__init__(reason)
        self.reason = reason
        self.width, self.height = width, height


READ = ("dicom", "png", "jpeg", "tiff")

# signatures of formats ingest does not read: name shown in the reason
_UNSUPPORTED = (
    (b"GIF87a", "GIF"), (b"GIF89a", "GIF"),
    (b"\x00\x00\x00\x0cjP  \r\n\x87\n", "JPEG 2000"), (b"\xff\x4f\xff\x51", "JPEG 2000"),
    (b"\xff\x0a", "JPEG XL"), (b"\x00\x00\x00\x0cJXL \r\n\x87\n", "JPEG XL"),
    (b"%PDF", "PDF document"), (b"PK\x03\x04", "ZIP archive"), (b"\x1f\x8b", "gzip archive"),
    (b"7z\xbc\xaf\x27\x1c", "7-Zip archive"), (b"Rar!", "RAR archive"),
    (b"\x00\x00\x01\x00", "Windows icon"), (b"8BPS", "Photoshop document"),
)


HEAD_BYTES = 4096  # the bytes a format is told from (enough for a bare DICOM data set's first elements)


def sniff(head: bytes) -> str:
    """'dicom' | 'png' | 'jpeg' | 'tiff' | 'unsupported:<NAME>' | 'unknown'."""
    if len(head) >= 132 and head[128:132] == b"DICM":
        return "dicom"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "tiff"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "unsupported:WebP"
    if head[4:8] == b"ftyp" and head[8:12] in (b"heic", b"heix", b"mif1", b"avif", b"avis"):
        return "unsupported:" + ("AVIF" if head[8:12].startswith(b"avi") else "HEIF")
    if head[:2] == b"BM" and len(head) >= 18 and struct.unpack("<I", head[14:18])[0] in (12, 40, 52, 56, 64, 108, 124):
        return "unsupported:BMP"
    for sig, name in _UNSUPPORTED:
        if head.startswith(sig):
            return "unsupported:" + name
    if bare_dicom_encoding(head):
        return "dicom"
    return "unknown"


_VRS = {b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FL", b"FD", b"IS", b"LO", b"LT", b"OB", b"OD",
        b"OF", b"OL", b"OV", b"OW", b"PN", b"SH", b"SL", b"SQ", b"SS", b"ST", b"SV", b"TM", b"UC", b"UI",
        b"UL", b"UN", b"UR", b"US", b"UT", b"UV"}
_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"UC", b"UN", b"UR", b"UT", b"UV"}  # 4-byte length
_VALUE_SIZE = {b"US": 2, b"SS": 2, b"UL": 4, b"SL": 4, b"FL": 4, b"AT": 4, b"FD": 8, b"SV": 8, b"UV": 8}
_UNDEFINED = 0xFFFFFFFF
_ITEM_TAGS = {0xE000, 0xE00D, 0xE0DD}  # group FFFE: item, item end, sequence end (no VR in either encoding)
MIN_ELEMENTS = 3  # a bare data set is recognised by this many plausible data elements in a row


def bare_dicom_encoding(head: bytes) -> str:
    """'explicit' | 'implicit' when ``head`` starts with a DICOM data set without the 128-byte
    preamble and "DICM" (old PACS exports), else ''. Recognised by its structure, whatever group it
    starts at: :data:`MIN_ELEMENTS` little-endian data elements from offset 0 with ascending tags,
    known VRs (explicit VR), even lengths that fit their VR, items only inside sequences."""
    for encoding in ("explicit", "implicit"):
        if _plausible_elements(head, encoding == "explicit"):
            return encoding
    return ""


def _plausible_tag(group: int, elem: int) -> bool:
    if group % 2 == 0:
        return 0x0002 <= group < 0xFFFE
    return group >= 0x0009 and group != 0xFFFF and (elem == 0 or elem >= 0x0010)  # private: creators, then data


def _plausible_elements(head: bytes, explicit: bool) -> bool:
    pos, seen, last, depth = 0, 0, (-1, -1), 0
    while seen < MIN_ELEMENTS:
        if pos + 8 > len(head):
            return False
        group, elem, length = struct.unpack_from("<HHI", head, pos)
        header = 8
        if group == 0xFFFE:
            if elem not in _ITEM_TAGS or depth == 0:
                return False
            last = (-1, -1)  # an item is a data set of its own
            if elem != 0xE000:
                depth -= 1  # the end of an item or a sequence of undefined length
            elif length == _UNDEFINED:
                depth += 1
            else:
                pos += length  # an item (or pixel fragment) of known length
            pos += 8
            seen += 1
            continue
        if not _plausible_tag(group, elem) or (group, elem) <= last:
            return False
        if explicit:
            vr = head[pos + 4:pos + 6]
            if vr not in _VRS or (vr in _LONG_VRS and head[pos + 6:pos + 8] != b"\0\0"):
                return False
            if vr in _LONG_VRS:
                if pos + 12 > len(head):
                    return False
                length, header = struct.unpack_from("<I", head, pos + 8)[0], 12
            else:
                length = struct.unpack_from("<H", head, pos + 6)[0]
            if length == _UNDEFINED and vr not in (b"SQ", b"UN", b"OB", b"OW"):
                return False
            if length != _UNDEFINED and length % _VALUE_SIZE.get(vr, 1):
                return False
        if length != _UNDEFINED and length % 2:
            return False
        seen += 1
        last = (group, elem)
        if length == _UNDEFINED:  # a sequence (or encapsulated pixel data): items follow
            depth += 1
            pos += header
        else:
            pos += header + length
    return True


def describe_unknown(head: bytes) -> str:
    """The reason for a file with no image signature (plain words, no content quoted)."""
    if not head.strip(b"\x00"):
        return "not an image: the file holds only zero bytes"
    sample = head[:512]
    try:
        sample.decode("utf-8")
        is_text = all(32 <= b or b in (9, 10, 13) for b in sample)
    except UnicodeDecodeError:
        is_text = False
    if is_text:
        return "not an image: a text file"
    return "not an image: no DICOM, PNG, JPEG or TIFF signature"


@dataclass(frozen=True)
class Header:
    width: int
    height: int
    pages: int = 1          # TIFF: full-resolution pages (reduced-resolution thumbnails not counted)
    sample_format: int = 1  # TIFF SampleFormat of page 1 (3: IEEE float)


def raster_header(path: Path, fmt: str) -> Header:
    """The size (and TIFF page count) from the header of a PNG, JPEG or TIFF file."""
    with open(path, "rb") as f:
        if fmt == "png":
            return _png(f)
        if fmt == "jpeg":
            return _jpeg(f)
        if fmt == "tiff":
            return _tiff(f)
    raise ValueError(fmt)


def _png(f) -> Header:
    head = f.read(33)
    if len(head) < 33 or head[12:16] != b"IHDR":
        raise DecodeError("PNG cut short or corrupt in its header (no IHDR chunk)")
    w, h = struct.unpack(">II", head[16:24])
    return Header(w, h)


def _jpeg(f) -> Header:
    if f.read(2) != b"\xff\xd8":
        raise DecodeError("corrupt JPEG header")
    while True:
        b = f.read(1)
        if not b:
            raise DecodeError("JPEG cut short in its header (no frame header)")
        if b != b"\xff":
            raise DecodeError("corrupt JPEG header (a segment does not start with a marker)")
        m = f.read(1)
        while m == b"\xff":  # fill bytes before a marker
            m = f.read(1)
        if not m:
            raise DecodeError("JPEG cut short in its header (no frame header)")
        marker = m[0]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            continue
        if marker in (0xD9, 0xDA):
            raise DecodeError("corrupt JPEG: image data before any frame header")
        seg = f.read(2)
        if len(seg) < 2:
            raise DecodeError("JPEG cut short in its header (no frame header)")
        (length,) = struct.unpack(">H", seg)
        if length < 2:
            raise DecodeError("corrupt JPEG header (a segment length is invalid)")
        body = f.read(length - 2)
        if len(body) < length - 2:
            raise DecodeError("JPEG cut short in its header (no frame header)")
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            if len(body) < 5:
                raise DecodeError("corrupt JPEG frame header")
            h, w = struct.unpack(">HH", body[1:5])
            return Header(w, h)
        if marker == 0xF7:  # JPEG-LS frame header (SOF55)
            raise DecodeError("unsupported format: JPEG-LS")


_TIFF_TYPES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 16: 8, 17: 8, 18: 8}


def _tiff(f) -> Header:
    head = f.read(16)
    if len(head) < 8:
        raise DecodeError("TIFF cut short in its header")
    e = "<" if head[:2] == b"II" else ">"
    big = struct.unpack(e + "H", head[2:4])[0] == 43
    if big:
        if len(head) < 16:
            raise DecodeError("TIFF cut short in its header")
        offset = struct.unpack(e + "Q", head[8:16])[0]
    else:
        offset = struct.unpack(e + "I", head[4:8])[0]
    f.seek(0, 2)
    size = f.tell()
    pages, first, seen = 0, None, set()
    while offset and len(seen) < 100_000:
        if offset in seen or offset + (8 if big else 2) > size:
            if first is None:
                raise DecodeError("TIFF cut short or corrupt: its first page header is missing")
            break  # a broken chain after page 1: the pages read so far count
        seen.add(offset)
        f.seek(offset)
        count = struct.unpack(e + ("Q" if big else "H"), f.read(8 if big else 2))[0]
        entry = 20 if big else 12
        raw = f.read(count * entry + (8 if big else 4))
        if len(raw) < count * entry:
            if first is None:
                raise DecodeError("TIFF cut short in its first page header")
            break
        tags = {}
        for i in range(count):
            ent = raw[i * entry:(i + 1) * entry]
            tag, typ = struct.unpack(e + "HH", ent[:4])
            if tag not in (254, 256, 257, 339):
                continue
            n = struct.unpack(e + ("Q" if big else "I"), ent[4:12 if big else 8])[0]
            width = _TIFF_TYPES.get(typ, 0)
            val = ent[12:20] if big else ent[8:12]
            if n >= 1 and width in (1, 2, 4, 8) and width <= len(val):
                code = {1: "B", 2: "H", 4: "I", 8: "Q"}[width]
                tags[tag] = struct.unpack(e + code, val[:width])[0]
        tail = raw[count * entry:]
        offset = struct.unpack(e + ("Q" if big else "I"), tail[:8 if big else 4])[0] if len(tail) >= (8 if big else 4) else 0
        if first is None:
            if 256 not in tags or 257 not in tags:
                raise DecodeError("TIFF without image width/height tags")
            first = tags
        if not (tags.get(254, 0) & 1):  # bit 0: a reduced-resolution copy (thumbnail)
            pages += 1
    if first is None:
        raise DecodeError("TIFF cut short or corrupt: no page header")
    return Header(int(first[256]), int(first[257]), max(pages, 1), int(first.get(339, 1)))
