"""Helpers of the self-contained HTML reports: images embedded as PNG data URIs (no network)."""
from __future__ import annotations

import base64

import cv2
import numpy as np


def png_data_uri(data: bytes) -> str:
    """Encoded PNG bytes as a ``data:`` URI."""
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def image_data_uri(img: np.ndarray) -> str:
    """An image array (8- or 16-bit, grey or BGR) as a PNG ``data:`` URI."""
    ok, buf = cv2.imencode(".png", img)
    if not ok:
        raise OSError("PNG encoding failed")
    return png_data_uri(buf.tobytes())
