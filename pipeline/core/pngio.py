"""The project's one internal image representation: single-channel 16-bit PNG, full range.

Every stage after ingest reads and writes images through these helpers.
"""
from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from pipeline.core import atomic


def to_uint16(img: np.ndarray) -> np.ndarray:
    """float in [0, 1] -> uint16 full range; uint8 -> x257; uint16 unchanged."""
    if img.dtype == np.uint16:
        return img
    if img.dtype == np.uint8:
        return img.astype(np.uint16) * 257
    if np.issubdtype(img.dtype, np.floating):
        return np.round(np.clip(img, 0.0, 1.0) * 65535.0).astype(np.uint16)
    raise TypeError(f"cannot convert {img.dtype} to uint16")


def to_float01(img: np.ndarray) -> np.ndarray:
    if img.dtype == np.uint16:
        return img.astype(np.float32) / 65535.0
    if img.dtype == np.uint8:
        return img.astype(np.float32) / 255.0
    if np.issubdtype(img.dtype, np.floating):
        return img.astype(np.float32)
    raise TypeError(f"cannot convert {img.dtype} to float")


def encode_png16(img: np.ndarray, compression: int = 1) -> bytes:
    img = to_uint16(img)
    if img.ndim != 2:
        raise ValueError(f"expected a 2-D grey image, got shape {img.shape}")
    ok, buf = cv2.imencode(".png", img, [cv2.IMWRITE_PNG_COMPRESSION, int(compression)])
    if not ok:
        raise OSError("PNG encoding failed")
    return buf.tobytes()


def write_png16(path: str | os.PathLike, img: np.ndarray, compression: int = 1) -> Path:
    """Atomically write a grey image as 16-bit PNG (compression 0-9; 1 is fast, still lossless)."""
    return atomic.write_bytes(path, encode_png16(img, compression))


def write_png8(path: str | os.PathLike, img: np.ndarray, compression: int = 3) -> Path:
    img = to_float01(img)
    img8 = np.round(np.clip(img, 0, 1) * 255.0).astype(np.uint8)
    ok, buf = cv2.imencode(".png", img8, [cv2.IMWRITE_PNG_COMPRESSION, int(compression)])
    if not ok:
        raise OSError("PNG encoding failed")
    return atomic.write_bytes(path, buf.tobytes())


def read_png16(path: str | os.PathLike) -> np.ndarray:
    """Read a grey PNG written by this project as uint16 (8-bit files are scaled x257)."""
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise OSError(f"cannot read image {path}")
    if img.ndim == 3:
        raise ValueError(f"{path}: expected a grey image, got {img.shape[2]} channels")
    return to_uint16(img)


def read_float01(path: str | os.PathLike) -> np.ndarray:
    return to_float01(read_png16(path))
