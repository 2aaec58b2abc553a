"""Decoding raw radiograph files into one grey representation (uint16, full range).

Format is sniffed from the bytes, not the extension. DICOM: stored values (bits above BitsStored
masked, sign extended), modality LUT, VOI LUT or window, MONOCHROME1 inverted. PNG/JPEG/TIFF
through OpenCV. Every failure is a :class:`DecodeError` with a short reason that never quotes a
DICOM value (reasons end up in the manifest).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from pipeline.ingest.deid import kept_metadata, patient_key


class DecodeError(Exception):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


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


_SIGS = {
    "png": (b"\x89PNG\r\n\x1a\n",),
    "jpeg": (b"\xff\xd8\xff",),
    "tiff": (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"),
}


def _head(path: Path, n: int = 136) -> bytes:
    with open(path, "rb") as f:
        return f.read(n)


def sniff_format(path) -> str:
    head = _head(Path(path))
    if len(head) >= 132 and head[128:132] == b"DICM":
        return "dicom"
    for fmt, sigs in _SIGS.items():
        if any(head.startswith(s) for s in sigs):
            return fmt
    if _looks_like_raw_dicom(head):
        return "dicom"
    return "unknown"


def _looks_like_raw_dicom(head: bytes) -> bool:
    """A DICOM stream without preamble starts with a group 0x0002 or 0x0008 element (little endian)."""
    return len(head) >= 8 and head[0:2] in (b"\x02\x00", b"\x08\x00") and head[3] == 0


def decode_file(path, patient_salt: str) -> Decoded:
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as e:
        raise DecodeError(f"unreadable file ({e.strerror or 'I/O error'})") from None
    if size == 0:
        raise DecodeError("empty file (0 bytes)")
    fmt = sniff_format(path)
    if fmt == "unknown":
        raise DecodeError("not an image: no DICOM, PNG, JPEG or TIFF signature")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if fmt == "dicom":
                return _decode_dicom(path, patient_salt)
            return _decode_raster(path, fmt)
    except DecodeError:
        raise
    except MemoryError:
        raise DecodeError(f"{fmt.upper()} too large to decode") from None
    except Exception as e:  # malformed files raise anything; the message may quote tag values
        raise DecodeError(f"malformed {fmt.upper()} ({type(e).__name__})") from None


# --------------------------------------------------------------------------------------------- DICOM
def _decode_dicom(path: Path, salt: str) -> Decoded:
    import pydicom

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(path, force=True)
    except Exception as e:
        raise DecodeError(f"unreadable DICOM ({type(e).__name__})") from None
    if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
        raise DecodeError("DICOM without pixel data (not an image object)")
    ts = ds.file_meta.get("TransferSyntaxUID", None) if hasattr(ds, "file_meta") else None
    ts_name = getattr(ts, "keyword", "") or (str(ts) if ts else "ImplicitVRLittleEndian")
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if frames > 1:
        raise DecodeError(f"multi-frame DICOM ({frames} frames): not a single radiograph")
    photometric = str(ds.get("PhotometricInterpretation", "")).strip().upper()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            arr = ds.pixel_array
    except Exception as e:  # missing plugin, truncated data, bad tags: all a rejection
        msg = "truncated or corrupt pixel data" if isinstance(e, (ValueError, EOFError)) else "cannot decode pixel data"
        raise DecodeError(f"{msg} ({ts_name}, {type(e).__name__})") from None
    spp = int(ds.get("SamplesPerPixel", 1) or 1)
    colour = False
    if spp > 1 or arr.ndim == 3:
        if arr.ndim != 3 or arr.shape[-1] not in (3, 4):
            raise DecodeError(f"unsupported pixel layout {tuple(arr.shape)}")
        # pydicom's pixel_array already converts YBR colour spaces to RGB
        grey, colour = _to_grey(arr[..., :3], rgb_order=True)
        out = _full_range(grey.astype(np.float32), float(grey.min()), float(grey.max()), _max_of(grey))
        bits = int(ds.get("BitsStored", 8) or 8)
    else:
        if arr.ndim != 2:
            raise DecodeError(f"unsupported pixel layout {tuple(arr.shape)}")
        bits = int(ds.get("BitsStored", arr.dtype.itemsize * 8) or arr.dtype.itemsize * 8)
        if np.issubdtype(arr.dtype, np.floating):
            values = arr.astype(np.float32)
        else:
            values = _mask_bits(arr, bits, int(ds.get("PixelRepresentation", 0) or 0))
        out = _grey_dicom(values, ds, bits, photometric)
    meta = kept_metadata(ds)
    if out.size == 0:
        raise DecodeError("DICOM with an empty image")
    return Decoded(pixels=out, format="dicom", transfer_syntax=ts_name, bits=bits,
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
def _decode_raster(path: Path, fmt: str) -> Decoded:
    data = path.read_bytes()
    _check_complete(data, fmt)
    buf = np.frombuffer(data, np.uint8)
    img = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    if img is None:
        raise DecodeError(f"corrupt or unsupported {fmt.upper()} (OpenCV cannot decode it)")
    if img.dtype not in (np.uint8, np.uint16):
        if img.dtype == np.float32 or img.dtype == np.float64:
            f = img.astype(np.float32)
            f = (f - f.min()) / max(float(f.max() - f.min()), 1e-12)
            img = np.round(f * 65535).astype(np.uint16)
        else:
            raise DecodeError(f"unsupported {fmt.upper()} sample type {img.dtype}")
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
        raise DecodeError(f"unsupported {fmt.upper()} layout {tuple(img.shape)}")
    out = img.astype(np.uint16) * 257 if img.dtype == np.uint8 else img.astype(np.uint16, copy=False)
    return Decoded(pixels=np.ascontiguousarray(out), format=fmt, transfer_syntax="", bits=bits,
                   photometric=photometric, colour=colour)


def _check_complete(data: bytes, fmt: str) -> None:
    if fmt == "png" and b"IEND" not in data[-64:]:
        raise DecodeError("truncated PNG (no IEND chunk)")
    if fmt == "jpeg" and b"\xff\xd9" not in data[-32:]:
        raise DecodeError("truncated JPEG (no end-of-image marker)")


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
