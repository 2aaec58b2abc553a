"""``reports/crops.html``: every OPG thumbnail with its teeth box, lowest confidence first; the
thumbnails themselves (:func:`thumbnail`, drawn by the crop workers).

Self-contained: the thumbnails (written by the crop workers) are embedded as base64 PNG; the page
is written streaming, one thumbnail in memory at a time.
"""
from __future__ import annotations

import base64
import html
from pathlib import Path

import cv2
import numpy as np

from pipeline.core import atomic, pngio

_STYLE = """body{font-family:sans-serif;margin:1em;background:#fafafa}
.grid{display:flex;flex-wrap:wrap;gap:10px}
figure{margin:0;background:#fff;border:1px solid #ccc;padding:4px;width:min-content}
figure.fallback{border:2px solid #f80}
figcaption{font-size:12px;line-height:1.3}
img{display:block}"""


def thumbnail(img: np.ndarray, box: tuple[int, int, int, int], method: str, width: int) -> bytes:
    """8-bit PNG bytes of ``img`` shrunk to ``width`` with ``box`` drawn (green detected, orange fallback)."""
    h, w = img.shape
    s = width / w
    small = cv2.resize(pngio.to_float01(img), (width, max(1, round(h * s))), interpolation=cv2.INTER_AREA)
    lo, hi = np.percentile(small, (0.5, 99.5))
    u8 = np.round(np.clip((small - lo) / max(hi - lo, 1e-6), 0, 1) * 255).astype(np.uint8)
    bgr = cv2.cvtColor(u8, cv2.COLOR_GRAY2BGR)
    colour = (60, 200, 60) if method == "detected" else (0, 140, 255)
    p0 = (int(box[0] * s), int(box[1] * s))
    p1 = (min(width - 1, int(box[2] * s)), min(bgr.shape[0] - 1, int(box[3] * s)))
    cv2.rectangle(bgr, p0, p1, colour, 2)
    ok, buf = cv2.imencode(".png", bgr, [cv2.IMWRITE_PNG_COMPRESSION, 6])
    if not ok:
        raise OSError("thumbnail encoding failed")
    return buf.tobytes()


def write_report(path: Path, rows: list[dict], thumbs_dir: Path) -> Path:
    ordered = sorted(rows, key=lambda r: (float(r["confidence"]), r["image_id"]))
    n_fb = sum(r["method"] == "fallback" for r in rows)
    with atomic.open_file(path, "w", encoding="utf-8") as f:
        f.write("<!doctype html><html><head><meta charset='utf-8'><title>Teeth crops</title>"
                f"<style>{_STYLE}</style></head><body>\n")
        f.write(f"<h1>Teeth crops</h1><p>{len(rows)} images, {n_fb} on the fallback window (orange box), "
                f"{len(rows) - n_fb} detected (green box). Lowest confidence first. Boxes in the cleaned frame; "
                "<code>data/crops/manifest.csv</code> has them in ingested coordinates too.</p>\n<div class='grid'>\n")
        for r in ordered:
            data = base64.b64encode((Path(thumbs_dir) / f"{r['image_id']}.png").read_bytes()).decode()
            cls = "fallback" if r["method"] == "fallback" else "detected"
            reason = f"<br>{html.escape(r['reason'])}" if r.get("reason") else ""
            f.write(f"<figure class='{cls}' id='{html.escape(r['image_id'])}'><img alt='{html.escape(r['image_id'])}' "
                    f"src='data:image/png;base64,{data}'><figcaption><b>{html.escape(r['image_id'])}</b> "
                    f"{cls}, confidence {float(r['confidence']):.2f}<br>box x {r['cx0']}-{r['cx1']}, "
                    f"y {r['cy0']}-{r['cy1']}{reason}</figcaption></figure>\n")
        f.write("</div></body></html>\n")
    return path
