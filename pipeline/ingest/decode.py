"""Decoding raw radiograph files into one grey representation (uint16, full range).

Format is sniffed from the bytes, not the extension (:mod:`probe`). Size limits (:class:`Limits`)
are checked on the header before anything is decoded. DICOM: read with ``force`` (a data set
without preamble or file meta gets the transfer syntax found while parsing it), each metadata fault
named before the pixel decoder runs, then stored values (bits above BitsStored masked, sign
extended), modality LUT, VOI LUT or window, MONOCHROME1 inverted. PNG/JPEG/TIFF through OpenCV,
after a structural check (PNG to IEND, JPEG to its end marker: padding after them is fine), with
libjpeg's "premature end of data segment" warning (a scan cut short, an end marker appended)
a rejection, NaN/Inf in float samples a rejection, a multi-page TIFF a rejection. Every failure
is a :class:`DecodeError` with a short reason that never quotes a value from the file (reasons
end up in the manifest); pydicom's own log, which does quote values, is silenced.
"""
from __future__ import annotations

import logging
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from pipeline.ingest import probe
from pipeline.ingest.deid import kept_metadata, patient_key
from pipeline.ingest.probe import DecodeError


# pydicom logs (and warns) about invalid values quoting them: patient data in a stage's log.
# Ingest reports its own reasons instead.
_PYDICOM_LOG = logging.getLogger("pydicom")
_PYDICOM_LOG.addHandler(logging.NullHandler())
_PYDICOM_LOG.propagate = False
_PYDICOM_LOG.setLevel(logging.CRITICAL + 1)


@dataclass
class Decoded:
    pixels: np.ndarray
    format: str
    transfer_syntax: str
    bits: int
    photometric: str
    colour: bool
    modality: str = ""
    manufacturer: str = ""
    pixel_spacing: str = ""
    patient_key: str = ""


@dataclass(frozen=True)
class Limits:
    """Images ingest refuses to decode: more than ``max_pixels`` pixels, a side shorter than
    ``min_side`` px, or one side more than ``max_aspect`` times the other (a strip such as
    100000x40 px is no radiograph, and the audit's fixed-height working copies of it would take
    gigabytes). Checked in the header, before any pixel is decoded. Ingest passes its params; the
    defaults here only guard direct calls."""
    max_pixels: int = 40_000_000
    min_side: int = 1
    max_aspect: float = 1e9

    def check(self, width: int, height: int) -> None:
        if width <= 0 or height <= 0:
            raise DecodeError("image with zero width or height in its header", width, height)
        if width * height > self.max_pixels:
            raise DecodeError("too large: more pixels than ingest.max_pixels (not decoded)", width, height)
        if min(width, height) < self.min_side:
            raise DecodeError("too small to be a radiograph: a side under ingest.min_side px", width, height)
        if max(width, height) > self.max_aspect * min(width, height):
            raise DecodeError("not a radiograph's shape: one side over ingest.max_aspect times the other",
                              width, height)


def sniff_format(path) -> str:
    """'dicom' | 'png' | 'jpeg' | 'tiff' | 'unsupported:<NAME>' | 'unknown' (from the bytes)."""
    with open(path, "rb") as f:
        return probe.sniff(f.read(probe.HEAD_BYTES))


def decode_file(path, patient_salt: str, limits: Limits = Limits()) -> Decoded:
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(probe.HEAD_BYTES)
    except OSError as e:
        raise DecodeError(f"unreadable file ({e.strerror or 'I/O error'})") from None
    if size == 0:
        raise DecodeError("empty file (0 bytes)")
    fmt = probe.sniff(head)
    if fmt.startswith("unsupported:"):
        raise DecodeError(f"unsupported format: {fmt.split(':', 1)[1]} (ingest reads DICOM, PNG, JPEG, TIFF)")
    if fmt == "unknown":
        raise DecodeError(probe.describe_unknown(head))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if fmt == "dicom":
                return _decode_dicom(path, patient_salt, limits)
            return _decode_raster(path, fmt, limits)
    except DecodeError:
        raise
    except MemoryError:
        raise DecodeError(f"{fmt.upper()} too large to decode (out of memory)") from None
    except Exception as e:  # malformed files raise anything; the message may quote tag values
        raise DecodeError(f"malformed {fmt.upper()} ({type(e).__name__})") from None


# --------------------------------------------------------------------------------------------- DICOM
_PHOTOMETRIC = {"MONOCHROME1", "MONOCHROME2", "RGB", "YBR_FULL", "YBR_FULL_422", "YBR_PARTIAL_420",
                "YBR_ICT", "YBR_RCT", "PALETTE COLOR"}


def _read_dicom(path: Path):
    import pydicom

    try:
        ds = pydicom.dcmread(path, force=True, defer_size="4 MB")
    except EOFError:
        raise DecodeError("DICOM cut short in its header") from None
    except Exception as e:
        raise DecodeError(f"unreadable DICOM header ({type(e).__name__})") from None
    if len(ds) == 0:
        raise DecodeError("DICOM cut short in its header (no data elements)")
    return ds


def _ends_inside_an_element(ds, path: Path) -> bool:
    """Whether the file stops before its last data element does (pydicom drops a cut element
    silently): the last element's end is not the file's end."""
    try:
        tags = list(ds.keys())
        last = ds.get_item(tags[-1]) if tags else None
        tell, length = getattr(last, "value_tell", None), getattr(last, "length", None)
        if tell is None or length is None or length == 0xFFFFFFFF:
            return False
        return tell + length != path.stat().st_size
    except Exception:  # noqa: BLE001 - no evidence either way
        return False


def _transfer_syntax(ds) -> tuple[str, str]:
    """(keyword shown in the manifest, note). A data set without file meta (no preamble, as old
    PACS exports write it) gets the syntax pydicom found while reading it, set in its file meta."""
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import UID, ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

    meta = getattr(ds, "file_meta", None)
    ts = meta.get("TransferSyntaxUID", None) if meta is not None else None
    if ts is None:
        implicit, little = getattr(ds, "original_encoding", (None, None))
        if implicit is None:
            implicit, little = True, True
        guess = ImplicitVRLittleEndian if implicit else (ExplicitVRLittleEndian if little else ExplicitVRBigEndian)
        if meta is None:
            ds.file_meta = meta = FileMetaDataset()
        meta.TransferSyntaxUID = guess
        return guess.keyword, " (no file meta: read as found)"
    uid = UID(str(ts).strip().rstrip("\x00"))
    if not uid.is_transfer_syntax or not uid.keyword:
        raise DecodeError("DICOM transfer syntax not recognised (not a standard UID)")
    return uid.keyword, ""


def _int_tag(ds, keyword: str):
    if keyword not in ds:
        return None
    try:
        v = ds[keyword].value
        if isinstance(v, (list, tuple)) or (hasattr(v, "__len__") and not isinstance(v, (str, bytes))):
            v = v[0]
        return int(v)
    except Exception:  # noqa: BLE001 - a malformed value: the caller names the tag
        return "bad"


def _is_image_class(ds) -> bool:
    from pydicom.uid import UID

    meta = getattr(ds, "file_meta", None)
    for uid in (ds.get("SOPClassUID", None), meta.get("MediaStorageSOPClassUID", None) if meta is not None else None):
        try:
            if uid and "Image Storage" in UID(str(uid)).name:
                return True
        except Exception:  # noqa: BLE001 - a malformed UID says nothing
            pass
    return False


def _check_image_tags(ds, limits: Limits, path: Path) -> tuple[int, int, int, int]:
    """Specific reasons for the metadata faults that stop the pixel decoder (never a tag value)."""
    has_pixels = any(k in ds for k in ("PixelData", "FloatPixelData", "DoubleFloatPixelData"))
    rows, cols = _int_tag(ds, "Rows"), _int_tag(ds, "Columns")
    if not has_pixels:
        if _ends_inside_an_element(ds, path):
            raise DecodeError("DICOM cut short in its header (the file ends inside a data element)")
        if rows is not None or "BitsAllocated" in ds:
            raise DecodeError("DICOM cut short before its pixel data (image tags but no pixels)")
        if _is_image_class(ds):
            raise DecodeError("DICOM image object without pixel data (cut short or stripped)")
        raise DecodeError("DICOM without pixel data (not an image object, e.g. a report)")
    if rows is None or cols is None:
        raise DecodeError("DICOM image without Rows or Columns")
    if rows == "bad" or cols == "bad":
        raise DecodeError("DICOM Rows or Columns is not a number")
    limits.check(cols, rows)
    frames = _int_tag(ds, "NumberOfFrames")
    if frames == "bad":
        raise DecodeError("DICOM NumberOfFrames is not a number")
    if frames is not None and frames > 1:
        raise DecodeError("multi-frame DICOM: not a single radiograph")
    alloc = _int_tag(ds, "BitsAllocated")
    if alloc not in (1, 8, 16, 32, 64):
        raise DecodeError("DICOM BitsAllocated missing or not 1, 8, 16, 32 or 64")
    stored = _int_tag(ds, "BitsStored")
    if stored is None or stored == "bad" or not 1 <= stored <= alloc:
        raise DecodeError("DICOM BitsStored missing or larger than BitsAllocated")
    spp = _int_tag(ds, "SamplesPerPixel")
    if spp not in (1, 3):
        raise DecodeError("DICOM SamplesPerPixel missing or not 1 or 3")
    if _int_tag(ds, "PixelRepresentation") not in (0, 1):
        raise DecodeError("DICOM PixelRepresentation missing or not 0 or 1")
    photometric = str(ds.get("PhotometricInterpretation", "") or "").strip().upper()
    if photometric not in _PHOTOMETRIC:
        raise DecodeError("DICOM PhotometricInterpretation missing or not a known value")
    if (spp == 1) != photometric.startswith(("MONOCHROME", "PALETTE")):
        raise DecodeError("DICOM SamplesPerPixel does not match PhotometricInterpretation")
    return rows, cols, alloc, spp


def _decode_dicom(path: Path, salt: str, limits: Limits = Limits()) -> Decoded:
    ds = _read_dicom(path)
    ts_name, note = _transfer_syntax(ds)
    rows, cols, alloc, spp = _check_image_tags(ds, limits, path)
    photometric = str(ds.get("PhotometricInterpretation", "")).strip().upper()
    uid = ds.file_meta.TransferSyntaxUID
    if "PixelData" in ds and not uid.is_compressed:
        n = len(ds.PixelData or b"")
        samples = 2 if photometric == "YBR_FULL_422" else spp  # 4:2:2: two samples per pixel stored
        if n < (rows * cols * samples * alloc + 7) // 8:
            raise DecodeError("DICOM pixel data shorter than Rows x Columns x BitsAllocated (cut short?)", cols, rows)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            arr = ds.pixel_array
    except Exception as e:  # missing plugin, corrupt compressed data: a rejection, never a quoted value
        msg = str(e).lower()
        if uid.is_compressed and ("no " in msg and ("plugin" in msg or "handler" in msg or "decoder" in msg)
                                  or isinstance(e, (NotImplementedError, ImportError))):
            raise DecodeError(f"no decoder installed for this DICOM transfer syntax ({ts_name})", cols, rows) from None
        if uid.is_compressed:
            raise DecodeError(f"corrupt compressed DICOM pixel data ({ts_name})", cols, rows) from None
        raise DecodeError(f"DICOM pixel data does not match its image tags ({type(e).__name__})", cols, rows) from None
    spp = int(ds.get("SamplesPerPixel", 1) or 1)
    colour = False
    if spp > 1 or arr.ndim == 3:
        if arr.ndim != 3 or arr.shape[-1] not in (3, 4):
            raise DecodeError("unsupported DICOM pixel layout", cols, rows)
        # pydicom's pixel_array already converts YBR colour spaces to RGB
        grey, colour = _to_grey(arr[..., :3], rgb_order=True)
        out = _full_range(grey.astype(np.float32), float(grey.min()), float(grey.max()), _max_of(grey))
        bits = int(ds.get("BitsStored", 8) or 8)
    else:
        if arr.ndim != 2:
            raise DecodeError("unsupported DICOM pixel layout", cols, rows)
        bits = int(ds.get("BitsStored", arr.dtype.itemsize * 8) or arr.dtype.itemsize * 8)
        if np.issubdtype(arr.dtype, np.floating):
            if not np.isfinite(arr).all():
                raise DecodeError("DICOM float pixel data holds NaN or infinite values", cols, rows)
            values = arr.astype(np.float32)
        else:
            values = _mask_bits(arr, bits, int(ds.get("PixelRepresentation", 0) or 0))
        out = _grey_dicom(values, ds, bits, photometric)
    meta = kept_metadata(ds)
    if out.size == 0:
        raise DecodeError("DICOM with an empty image")
    return Decoded(pixels=out, format="dicom", transfer_syntax=ts_name + note, bits=bits,
                   photometric=photometric or "MONOCHROME2", colour=colour,
                   patient_key=patient_key(ds, salt), **meta)


def _mask_bits(arr: np.ndarray, bits: int, signed: int) -> np.ndarray:
    """Stored values with the bits above BitsStored cleared (unsigned) or sign-extended (signed)."""
    bits = max(1, min(bits, arr.dtype.itemsize * 8))
    a = arr.astype(np.int64 if signed else np.uint32, copy=False)
    if bits < arr.dtype.itemsize * 8:
        if signed:
            u = arr.view(np.uint16 if arr.dtype.itemsize == 2 else np.uint32 if arr.dtype.itemsize == 4 else np.uint8)
            u = u.astype(np.int64) & ((1 << bits) - 1)
            a = np.where(u >= (1 << (bits - 1)), u - (1 << bits), u)
        else:
            a = a & ((1 << bits) - 1)
    return a.astype(np.float32)


def _grey_dicom(values: np.ndarray, ds, bits: int, photometric: str) -> np.ndarray:
    from pydicom.pixels import apply_modality_lut

    signed = int(ds.get("PixelRepresentation", 0) or 0)
    lo, hi = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2 ** bits - 1)
    # 1. modality LUT: a LUT sequence, else rescale slope/intercept
    if "ModalityLUTSequence" in ds:
        try:
            values = apply_modality_lut(values.astype(np.int64 if signed else np.uint32), ds).astype(np.float32)
            desc = ds.ModalityLUTSequence[0].LUTDescriptor
            lo, hi = 0.0, float(2 ** int(desc[2]) - 1)
        except Exception as e:
            raise DecodeError(f"invalid modality LUT ({type(e).__name__})") from None
    else:
        slope = _float(ds.get("RescaleSlope", 1.0), 1.0) or 1.0
        intercept = _float(ds.get("RescaleIntercept", 0.0), 0.0)
        if slope != 1.0 or intercept != 0.0:
            values = values * np.float32(slope) + np.float32(intercept)
            lo, hi = sorted((lo * slope + intercept, hi * slope + intercept))
    # 2. VOI: LUT sequence, else the first window, else the stored range
    voi = _voi(values, ds, lo, hi)
    if voi is None:
        vmin, vmax = float(values.min()), float(values.max())
        # a range far larger than the data (e.g. 16 bits stored, 12 used) would give a dark image
        if vmax - vmin < 0.02 * (hi - lo) or vmin < lo or vmax > hi:
            lo, hi = vmin, vmax
        out = (values - np.float32(lo)) / np.float32(max(hi - lo, 1e-6))
    else:
        out = voi
    np.clip(out, 0.0, 1.0, out=out)
    # 3. MONOCHROME1: low values are bright
    if photometric == "MONOCHROME1":
        out = 1.0 - out
    return np.round(out * 65535.0).astype(np.uint16)


def _float(value, default: float) -> float:
    try:
        if isinstance(value, (list, tuple)) or (hasattr(value, "__len__") and not isinstance(value, str)):
            value = value[0]
        return float(value)
    except (TypeError, ValueError, IndexError):
        return default


def _voi(values: np.ndarray, ds, lo: float, hi: float) -> np.ndarray | None:
    """The VOI transform to [0, 1], or None when the file has none."""
    if "VOILUTSequence" in ds and len(ds.VOILUTSequence):
        try:
            item = ds.VOILUTSequence[0]
            desc = [int(x) for x in item.LUTDescriptor]
            n_entries = desc[0] or 65536
            first = desc[1]
            lut_bits = desc[2]
            raw = item.LUTData
            if isinstance(raw, (bytes, bytearray)):  # OW: 16-bit words (8-bit tables stored one per byte)
                lut = np.frombuffer(raw, "<u2" if len(raw) >= 2 * n_entries else "u1")
            else:
                lut = np.asarray(raw).ravel()
            lut = lut.astype(np.float32)
            if lut.size < n_entries:
                raise ValueError("short LUT")
            lut = lut[:n_entries]
            idx = np.clip(np.round(values - first), 0, n_entries - 1).astype(np.int64)
            top = float(2 ** lut_bits - 1)
            if lut.max() > top:  # descriptor under-states the LUT's bit depth (common in the wild)
                top = float(2 ** int(np.ceil(np.log2(lut.max() + 1))) - 1)
            return lut[idx] / np.float32(top)
        except Exception as e:
            raise DecodeError(f"invalid VOI LUT ({type(e).__name__})") from None
    if "WindowCenter" in ds and "WindowWidth" in ds:
        c = _float(ds.WindowCenter, np.nan)
        w = _float(ds.WindowWidth, np.nan)
        if not np.isfinite(c) or not np.isfinite(w) or w <= 0:
            return None
        func = str(ds.get("VOILUTFunction", "LINEAR")).strip().upper() or "LINEAR"
        x = values.astype(np.float32, copy=False)
        if func == "LINEAR_EXACT":
            out = (x - np.float32(c - w / 2)) / np.float32(w)
        elif func == "SIGMOID":
            out = 1.0 / (1.0 + np.exp(-4.0 * (x - np.float32(c)) / np.float32(w)))
        else:  # LINEAR, PS3.3 C.11.2.1.2.1 (width >= 1)
            if w < 1:
                return None
            out = (x - np.float32(c - 0.5)) / np.float32(w - 1) + np.float32(0.5)
        return np.clip(out, 0.0, 1.0).astype(np.float32)
    return None


# ------------------------------------------------------------------------------------- PNG/JPEG/TIFF
def _decode_raster(path: Path, fmt: str, limits: Limits = Limits()) -> Decoded:
    head = probe.raster_header(path, fmt)
    limits.check(head.width, head.height)
    if fmt == "tiff" and head.pages > 1:
        raise DecodeError("multi-page TIFF: not a single radiograph (split the pages first)", head.width, head.height)
    data = path.read_bytes()
    _check_complete(data, fmt)
    buf = np.frombuffer(data, np.uint8)
    if fmt == "jpeg":  # libjpeg reports a scan cut short only as a warning on stderr
        img, warning = _with_stderr(lambda: cv2.imdecode(buf, cv2.IMREAD_UNCHANGED))
        if img is not None and b"premature end of data segment" in warning.lower():
            raise DecodeError("JPEG cut short: its scan ends before the last row (an end marker follows early)",
                              head.width, head.height)
        if img is not None and b"corrupt jpeg data" in warning.lower() and b"extraneous bytes" not in warning.lower():
            raise DecodeError("corrupt JPEG scan data", head.width, head.height)
    else:
        img = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    if img is None:
        raise DecodeError(f"corrupt or unsupported {fmt.upper()} (OpenCV cannot decode it)", head.width, head.height)
    if img.dtype not in (np.uint8, np.uint16):
        if img.dtype == np.float32 or img.dtype == np.float64:
            if not np.isfinite(img).all():
                raise DecodeError(f"{fmt.upper()} float samples hold NaN or infinite values", head.width, head.height)
            f = img.astype(np.float32)
            f = (f - f.min()) / max(float(f.max() - f.min()), 1e-12)
            img = np.round(f * 65535).astype(np.uint16)
        else:
            raise DecodeError(f"unsupported {fmt.upper()} sample type", head.width, head.height)
    bits = 16 if img.dtype == np.uint16 else 8
    colour = False
    photometric = "MONOCHROME2"
    if img.ndim == 3:
        if img.shape[2] == 1:
            img = img[..., 0]
        else:
            img, colour = _to_grey(img[..., :3], rgb_order=False)
            photometric = "RGB"
    if img.ndim != 2 or img.size == 0:
        raise DecodeError(f"unsupported {fmt.upper()} layout", head.width, head.height)
    out = img.astype(np.uint16) * 257 if img.dtype == np.uint8 else img.astype(np.uint16, copy=False)
    return Decoded(pixels=np.ascontiguousarray(out), format=fmt, transfer_syntax="", bits=bits,
                   photometric=photometric, colour=colour)


def _with_stderr(fn):
    """``fn()`` and what native code wrote to file descriptor 2 meanwhile (libjpeg's warnings)."""
    import os
    import tempfile

    sys_stderr = sys.stderr
    sys_stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            result = fn()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        tmp.seek(0)
        return result, tmp.read(4096)


def _check_complete(data: bytes, fmt: str) -> None:
    """A PNG must reach its IEND chunk, a JPEG its end-of-image marker after the scan; bytes after
    them (zero padding some archivers add) are ignored."""
    if fmt == "png":
        pos = 8
        while True:
            if pos + 8 > len(data):
                raise DecodeError("PNG cut short (ends before its IEND chunk)")
            length = int.from_bytes(data[pos:pos + 4], "big")
            ctype = data[pos + 4:pos + 8]
            if ctype == b"IEND":
                return
            pos += 12 + length
    if fmt == "jpeg":
        sos = data.find(b"\xff\xda")
        if sos < 0:
            raise DecodeError("JPEG cut short: no image data (no start-of-scan marker)")
        if data.rfind(b"\xff\xd9") < sos:
            raise DecodeError("JPEG cut short (no end-of-image marker)")


def _to_grey(rgb: np.ndarray, rgb_order: bool) -> tuple[np.ndarray, bool]:
    """Grey stored as 3 equal channels stays exact; true colour -> luminance, flagged."""
    a, b, c = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    if np.array_equal(a, b) and np.array_equal(b, c):
        return np.ascontiguousarray(a), False
    r, g, bl = (a, b, c) if rgb_order else (c, b, a)
    y = 0.299 * r.astype(np.float32) + 0.587 * g.astype(np.float32) + 0.114 * bl.astype(np.float32)
    return np.round(y).astype(rgb.dtype), True


def _max_of(arr: np.ndarray) -> float:
    return float(np.iinfo(arr.dtype).max) if np.issubdtype(arr.dtype, np.integer) else 1.0


def _full_range(values: np.ndarray, lo: float, hi: float, top: float) -> np.ndarray:
    return np.round(np.clip(values / np.float32(top), 0, 1) * 65535).astype(np.uint16)
