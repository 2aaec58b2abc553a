"""Teeth-region crop: find the box around all teeth (crowns and roots) of an OPG from the image itself.

Classical CV, on a copy of the image shrunk to ``work_width`` pixels wide and stretched to its
1st..99.5th percentiles:

1. **Occlusal gap.** The dark band between the upper and lower crowns. A *valley* map (how much
   darker a pixel is than both the pixels ``valley_reach`` above and below it, on an image smoothed
   along the rows) peaks there; per column of the central 40 % the deepest valley in the middle
   rows is taken, and a parabola (the "smile" of the occlusal plane) is fitted to those points by
   iteratively re-weighted least squares. Its curvature is clamped to what a smile can be.
2. **Straightening.** The map of *vertical structure* (structure-tensor energy of horizontal
   minus vertical gradients: teeth, roots and the gaps between them are vertical; bone, soft tissue
   and the occlusal gap are not), clipped at its 98th percentile so metal fillings do not dominate,
   is resampled row by row relative to the fitted curve: the arches become two horizontal bands.
3. **Intensity projections.** The row projection of the straightened map over the central columns
   has one lobe for the upper teeth and one for the lower teeth; the box's top and bottom are where
   each lobe falls below ``edge_fraction`` of its peak (a morphological closing first bridges the
   dips between crown and root). The column projection within those rows gives the left and right
   ends of the arches the same way, searched outwards from the midline.
4. **Landmarks.** The box's rows come from anatomy, not from the lobes (which overshoot into the
   nasal floor and the mandible): the occlusal gap at the midline and under the molars (searched
   near the curve), and the distance from the gap down to the mandible's inferior border (the
   lowest strong bright-above/dark-below step under the premolars: this jaw's scale). Top = side gap
   - (``up[0]`` x mandible distance + ``up[1]`` x height); bottom = midline gap + ``down[0]`` x
   mandible distance + ``down[1]`` x height. Left/right: the gap's extent clamped to ``left``/``right``.
   The four scalars were fitted on the 21 annotated real OPGs (every tooth inside) and the phantoms.
5. **Margin.** The box grows by ``margin`` of the image width/height on each side (``top_margin`` more
   above: tooth germs and canine roots make the top the least certain edge) and is clipped to the image.

Confidence (0..1) is the product of soft scores: how many gap points agree with the fitted curve,
how deep the gap is, whether both lobes stand out of the background, and whether the box has a
plausible size and position for an OPG (measured before the priors). Below ``min_confidence`` the
manifest says ``method=fallback`` and the box is the landmark rows with the widest plausible columns
when a gap was found where one can be; otherwise the documented **fallback window** ``fallback`` (fractions of
the cleaned image: by default x 15-85 %, y 12-92 %, generous on purpose).
"""
from __future__ import annotations

import csv
import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from . import atomic, config, pngio, workpool
from .frames import Cleaning

log = logging.getLogger(__name__)

MANIFEST_COLUMNS = ["image_id", "x0", "y0", "x1", "y1", "confidence", "method", "cx0", "cy0", "cx1", "cy1",
                    "reason"]


@dataclass(frozen=True)
class CropConfig:
    """params.yaml ``crop``."""

    margin: float = 0.0             # grow the box by this fraction of the image width/height on each side
    top_margin: float = 0.0         # extra margin above (the top edge is the least certain: tooth germs, long canines)
    min_confidence: float = 0.35    # below: use the fallback window
    fallback: list[float] = field(default_factory=lambda: [0.15, 0.12, 0.85, 0.92])  # x0 y0 x1 y1 fractions
    edge_fraction: float = 0.10     # a lobe ends where the projection falls below this share of its peak
    gap_fraction: float = 0.15      # the arches end where the gap depth falls below this share of its median
    gap_band: list[float] = field(default_factory=lambda: [0.38, 0.75])   # rows searched for the occlusal gap
    # teeth top = occlusal gap at the sides - (up[0] x mandible distance + up[1] x height);
    # teeth bottom = occlusal gap at the midline + down[0] x mandible distance + down[1] x height
    up: list[float] = field(default_factory=lambda: [0.70, 0.023])
    down: list[float] = field(default_factory=lambda: [0.20, 0.231])
    left: list[float] = field(default_factory=lambda: [0.185, 0.19])  # plausible left end (x width)
    right: list[float] = field(default_factory=lambda: [0.805, 0.81])  # plausible right end
    work_width: int = 512           # detection runs on a copy this wide
    png_compression: int = 1
    thumb_width: int = 360          # report thumbnails

    def __post_init__(self) -> None:
        if not 0 <= self.margin <= 1:
            raise config.ConfigError(f"crop.margin must be in [0, 1], got {self.margin}")
        if not 0 <= self.min_confidence <= 1:
            raise config.ConfigError(f"crop.min_confidence must be in [0, 1], got {self.min_confidence}")
        f = list(self.fallback)
        if len(f) != 4 or not (0 <= f[0] < f[2] <= 1 and 0 <= f[1] < f[3] <= 1):
            raise config.ConfigError(f"crop.fallback must be [x0, y0, x1, y1] fractions with x0<x1, y0<y1; got {f}")
        if not 0 <= self.top_margin <= 1:
            raise config.ConfigError(f"crop.top_margin must be in [0, 1], got {self.top_margin}")
        for name in ("up", "down"):
            r = list(getattr(self, name))
            if len(r) != 2 or not (0 <= r[0] <= 2 and -0.5 <= r[1] <= 1):
                raise config.ConfigError(f"crop.{name} must be [share of the mandible distance, share of the height]; got {r}")
        for name in ("gap_band", "left", "right"):
            r = list(getattr(self, name))
            if len(r) != 2 or not 0 <= r[0] <= r[1] <= 1:
                raise config.ConfigError(f"crop.{name} must be [lo, hi] fractions with lo <= hi; got {r}")
        if not 0 < self.edge_fraction < 1:
            raise config.ConfigError(f"crop.edge_fraction must be in (0, 1), got {self.edge_fraction}")
        if self.work_width < 128:
            raise config.ConfigError(f"crop.work_width must be >= 128, got {self.work_width}")
        if not 0 <= self.png_compression <= 9:
            raise config.ConfigError(f"crop.png_compression must be 0-9, got {self.png_compression}")


@dataclass(frozen=True)
class Detection:
    """A teeth box (half-open ints, in the frame of the image given) and how it was found."""

    box: tuple[int, int, int, int]
    confidence: float
    method: str  # detected | fallback
    detected: tuple[int, int, int, int] | None = None  # the detector's box even when not used
    reason: str = ""


# ------------------------------------------------------------------------------------------ helpers
def _prepare(img: np.ndarray, work_width: int) -> tuple[np.ndarray, float]:
    h, w = img.shape
    s = min(1.0, work_width / w)
    small = cv2.resize(pngio.to_float01(img), (max(8, round(w * s)), max(8, round(h * s))),
                       interpolation=cv2.INTER_AREA)
    lo, hi = np.percentile(small, (1.0, 99.5))
    g = np.clip((small - lo) / max(hi - lo, 1e-6), 0, 1).astype(np.float32)
    return g, s


def _vertical_structure(g: np.ndarray) -> np.ndarray:
    b = cv2.GaussianBlur(g, (0, 0), 1.0)
    gx = cv2.Sobel(b, cv2.CV_32F, 1, 0)
    gy = cv2.Sobel(b, cv2.CV_32F, 0, 1)
    jxx = cv2.GaussianBlur(gx * gx, (0, 0), 3)
    jyy = cv2.GaussianBlur(gy * gy, (0, 0), 3)
    v = np.sqrt(np.maximum(jxx - jyy, 0))
    return np.minimum(v, np.percentile(v, 98) + 1e-9)


def _occlusal_curve(g: np.ndarray, v: np.ndarray, band=(0.38, 0.75)) -> tuple[np.ndarray, float, float, np.ndarray]:
    """Parabola (a, b, c) of row = a u^2 + b u + c, u = x / W - 0.5; inlier share; depth; valley map.

    A gap row must be darker than the rows around it *and* have teeth (vertical structure ``v``) both
    a crown height above and below it: the tongue/palate air band has teeth on one side only."""
    hh, ww = g.shape
    sm = cv2.GaussianBlur(g, (0, 0), sigmaX=6, sigmaY=1.5)
    t = max(2, int(round(0.035 * hh)))
    pad = cv2.copyMakeBorder(sm, t, t, 0, 0, cv2.BORDER_REPLICATE)
    valley = np.minimum(pad[:hh], pad[2 * t:]) - sm
    t2 = max(2, int(round(0.08 * hh)))
    vs = cv2.GaussianBlur(v, (0, 0), 3)
    vp = cv2.copyMakeBorder(vs, t2, t2, 0, 0, cv2.BORDER_CONSTANT, value=0)
    both = np.sqrt(np.maximum(vp[:hh] * vp[2 * t2:], 0)) / (float(vs.max()) + 1e-9)
    score = np.maximum(valley, 0) * both
    lo, hi = int(band[0] * hh), max(int(band[0] * hh) + 1, int(band[1] * hh))
    xs = np.arange(int(0.3 * ww), int(0.7 * ww), max(1, ww // 128))
    sb = score[lo:hi][:, xs]
    ys = lo + sb.argmax(0)
    depth = valley[lo:hi][:, xs][sb.argmax(0), np.arange(len(xs))] * (sb.max(0) > 0)
    u = xs / ww - 0.5
    X = np.stack([u * u, u, np.ones_like(u)], 1)
    keep = depth > 0
    coef = np.array([0.0, 0.0, float(np.median(ys))])
    for _ in range(4):
        if keep.sum() < 5:
            break
        wgt = np.sqrt(depth[keep])
        coef = np.linalg.lstsq(X[keep] * wgt[:, None], ys[keep] * wgt, rcond=None)[0]
        # a smile: the occlusal plane rises (row decreases) to the sides, by at most ~10 % of the height
        coef[0] = float(np.clip(coef[0], -1.5 * hh, 0.3 * hh))
        coef[2] = float(np.median(ys[keep] - X[keep, :2] @ coef[:2]))
        res = np.abs(X @ coef - ys)
        keep = (depth > 0) & (res < max(2.0, 0.02 * hh))
    inliers = float(keep.mean())
    contrast = float(np.median(depth[keep]) / (g.std() + 1e-6)) if keep.any() else 0.0
    return coef, inliers, contrast, valley


def _mandible_distance(g: np.ndarray, mapx: np.ndarray, mapy: np.ndarray, reach: int) -> float:
    """Rows from the occlusal curve down to the inferior border of the mandible (work pixels).

    The border is the strongest bright-above / dark-below step of the image straightened along the
    curve, 0.15..0.45 of the height below it, averaged over the columns under the premolars and
    canines (the middle 12 % is left out: the cervical spine's ghost lies over the chin)."""
    hh, ww = g.shape
    sg = cv2.remap(cv2.GaussianBlur(g, (0, 0), 3, sigmaY=1.5), mapx, mapy, cv2.INTER_LINEAR,
                   borderMode=cv2.BORDER_REPLICATE)
    k = max(2, int(0.015 * hh))
    cols = np.r_[int(0.3 * ww):int(0.44 * ww), int(0.56 * ww):int(0.7 * ww)]
    sub = sg[:, cols].mean(1)
    step = np.zeros_like(sub)
    step[k:-k] = sub[2 * k:] - sub[:-2 * k]  # > 0: brighter below
    lo, hi = reach + int(0.2 * hh), min(len(step) - k, reach + int(0.48 * hh))
    drop = np.maximum(-step[lo:hi], 0)
    # the lowest strong drop: the roots above the border give drops as strong as the cortex's
    peaks = [i for i in range(1, len(drop) - 1) if drop[i] >= drop[i - 1] and drop[i] >= drop[i + 1]
             and drop[i] >= 0.5 * drop.max() > 0]
    return float((peaks[-1] if peaks else int(np.argmax(drop))) + lo - reach)


def _side_gap(valley: np.ndarray, curve: np.ndarray) -> float:
    """Mean row of the occlusal gap under the molars (columns 20-30 % and 70-80 %), found near the
    fitted curve: the parabola is fitted on the front teeth and often under-bends at the back."""
    hh, ww = valley.shape
    r = max(2, int(0.07 * hh))
    rows = []
    for x in (*range(int(0.2 * ww), int(0.3 * ww)), *range(int(0.7 * ww), int(0.8 * ww))):
        y0 = int(np.clip(round(float(curve[x])), 0, hh - 1))
        a = max(0, y0 - r)
        rows.append(a + int(np.argmax(valley[a:y0 + r, x])))
    return float(np.median(rows[:len(rows) // 2]) + np.median(rows[len(rows) // 2:])) / 2


def _extent(profile: np.ndarray, start: int, step: int, frac: float) -> int:
    thr = frac * profile[start]
    i = start
    while 0 <= i + step < len(profile) and profile[i + step] > thr:
        i += step
    return i


def _soft(x: float, lo: float, hi: float) -> float:
    """0 at or below lo, 1 at or above hi, linear between."""
    return float(np.clip((x - lo) / (hi - lo), 0.0, 1.0))


def _window(frac, w: int, h: int) -> tuple[int, int, int, int]:
    x0, y0, x1, y1 = frac
    return int(np.floor(x0 * w)), int(np.floor(y0 * h)), int(np.ceil(x1 * w)), int(np.ceil(y1 * h))


# ----------------------------------------------------------------------------------------- detector
def detect_teeth(img: np.ndarray, cfg: CropConfig = CropConfig()) -> Detection:
    """The teeth box of one OPG (2-D grey array, any dtype), in that image's pixel frame."""
    if img.ndim != 2 or min(img.shape) < 16:
        raise ValueError(f"expected a 2-D grey image of at least 16x16, got shape {img.shape}")
    h, w = img.shape
    g, s = _prepare(img, cfg.work_width)
    hh, ww = g.shape
    v = _vertical_structure(g)
    coef, inliers, contrast, valley = _occlusal_curve(g, v, cfg.gap_band)

    # straighten along the occlusal curve: row t of S is t rows from the curve
    u = np.arange(ww, dtype=np.float32) / ww - 0.5
    curve = (coef[0] * u * u + coef[1] * u + coef[2]).astype(np.float32)
    reach = int(0.5 * hh)
    ts = np.arange(-reach, reach + 1, dtype=np.float32)
    mapy = curve[None, :] + ts[:, None]
    mapx = np.broadcast_to(np.arange(ww, dtype=np.float32), mapy.shape).copy()
    straight = cv2.remap(v, mapx, mapy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)

    c0, c1 = int(0.3 * ww), int(0.7 * ww)
    rows = straight[:, c0:c1].mean(1)
    k = max(3, int(0.04 * hh) | 1)
    rows = cv2.morphologyEx(rows[:, None], cv2.MORPH_CLOSE, np.ones((k, 1), np.uint8)).ravel()
    rows = cv2.GaussianBlur(rows[:, None], (0, 0), 1.5).ravel()
    upper, lower = rows[:reach], rows[reach + 1:]
    pu, pl = int(upper.argmax()), int(lower.argmax())
    top = _extent(upper, pu, -1, cfg.edge_fraction) - reach
    bottom = _extent(lower, pl, +1, cfg.edge_fraction) + 1

    # left/right: the occlusal gap (dark between bright crowns) runs exactly as far as the teeth
    vstraight = cv2.remap(valley, mapx, mapy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    near = max(2, int(0.04 * hh))
    cols = vstraight[reach - near:reach + near + 1].max(0)
    kc = max(3, int(0.06 * ww) | 1)
    cols = cv2.morphologyEx(cols[:, None], cv2.MORPH_CLOSE, np.ones((kc, 1), np.uint8)).ravel()
    cols = cv2.GaussianBlur(cols[:, None], (0, 0), 2.0).ravel()
    ref = float(np.median(cols[c0:c1]))
    thr = cfg.gap_fraction * ref
    centre = c0 + int(np.argmax(cols[c0:c1] > thr)) if (cols[c0:c1] > thr).any() else ww // 2
    left = right = max(centre, ww // 2) if cols[ww // 2] > thr else centre
    while left > 0 and cols[left - 1] > thr:
        left -= 1
    while right < ww - 1 and cols[right + 1] > thr:
        right += 1
    right += 2

    xs = slice(max(left, 0), min(right, ww))
    y_top = float(curve[xs].min()) + top
    y_bot = float(curve[xs].max()) + bottom
    raw = (left, y_top, right, y_bot)
    # vertical extent from landmarks: the occlusal gap at the midline and under the molars, and the
    # distance from the gap down to the mandible's inferior border (the scale of this jaw); the
    # gap-based left/right ends are clamped to the plausible range (the rami)
    mid = float(curve[c0:c1].mean())
    mand = float(np.clip(_mandible_distance(g, mapx, mapy, reach), 0.25 * hh, 0.5 * hh))
    side = float(np.clip(curve[ww // 2] - _side_gap(valley, curve), -0.03 * hh, 0.16 * hh))
    bx0 = float(np.clip(left, cfg.left[0] * ww, cfg.left[1] * ww))
    bx1 = float(np.clip(right, cfg.right[0] * ww, cfg.right[1] * ww))
    gap0 = float(curve[ww // 2])
    by0 = gap0 - side - cfg.up[0] * mand - cfg.up[1] * hh
    by1 = gap0 + cfg.down[0] * mand + cfg.down[1] * hh

    # confidence: soft scores, multiplied
    background = float(np.median(rows)) + 1e-9
    lobes = min(upper[pu], lower[pl]) / background
    bw, bh = (raw[2] - raw[0]) / ww, (raw[3] - raw[1]) / hh
    cx = (raw[0] + raw[2]) / 2 / ww
    scores = {
        "gap_fit": _soft(inliers, 0.3, 0.7),
        "gap_depth": _soft(contrast, 0.05, 0.25),
        "lobes": _soft(lobes, 1.1, 1.6),
        "width": _soft(bw, 0.15, 0.3),   # too wide / too tall is what the priors clamp; too small is a miss
        "height": _soft(bh, 0.1, 0.25),
        "centred": _soft(-abs(cx - 0.5), -0.3, -0.15),
        "gap_row": _soft(mid / hh, cfg.gap_band[0], cfg.gap_band[0] + 0.03) * _soft(-mid / hh, -cfg.gap_band[1], -cfg.gap_band[1] + 0.03),
    }
    confidence = float(np.prod(list(scores.values())))

    # margin, back to full resolution
    mx, my = cfg.margin * ww, cfg.margin * hh
    detected = (int(np.clip(np.floor((bx0 - mx) / s), 0, w - 1)),
                int(np.clip(np.floor((by0 - my - cfg.top_margin * hh) / s), 0, h - 1)),
                int(np.clip(np.ceil((bx1 + mx) / s), 1, w)), int(np.clip(np.ceil((by1 + my) / s), 1, h)))
    ok = detected[2] - detected[0] >= 8 and detected[3] - detected[1] >= 8
    if ok and confidence >= cfg.min_confidence:
        return Detection(detected, confidence, "detected", detected)
    weak = sorted(scores, key=scores.get)[:2]
    reason = "low confidence (" + ", ".join(f"{n}={scores[n]:.2f}" for n in weak) + ")"
    if ok and scores["gap_row"] > 0 and scores["gap_fit"] > 0 and scores["gap_depth"] > 0.5 and scores["lobes"] > 0:
        # the occlusal gap was found where it can be: the landmark rows, the widest plausible columns
        box = (int(np.clip(np.floor((cfg.left[0] * ww - mx) / s), 0, w - 1)), detected[1],
               int(np.clip(np.ceil((cfg.right[1] * ww + mx) / s), 1, w)), detected[3])
        return Detection(box, confidence, "fallback", detected, reason + "; window around the occlusal gap")
    return Detection(_window(cfg.fallback, w, h), confidence, "fallback", detected if ok else None, reason)


# -------------------------------------------------------------------------------------------- stage
def _read_table(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


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


def crop_one(image_id: str, src: Path, cleaning: Cleaning, images_dir: Path, thumbs_dir: Path,
             cfg: CropConfig) -> dict:
    """Detect, cut and write one cleaned image; return its manifest row (never raises for bad input)."""
    row = {c: "" for c in MANIFEST_COLUMNS}
    row["image_id"] = image_id
    try:
        img = pngio.read_png16(src)
    except (OSError, ValueError) as e:
        raise RuntimeError(f"crop: cannot read cleaned image {src}: {e}") from e
    if (img.shape[1], img.shape[0]) != cleaning.size:
        raise RuntimeError(f"crop: {src} is {img.shape[1]}x{img.shape[0]} but audit.csv's trim says "
                           f"{cleaning.size[0]}x{cleaning.size[1]}")
    try:
        det = detect_teeth(img, cfg)
    except Exception as e:  # a detector bug on one image must not stop the batch: fall back, say why
        h, w = img.shape
        det = Detection(_window(cfg.fallback, w, h), 0.0, "fallback", None, f"detector error ({type(e).__name__})")
    cx0, cy0, cx1, cy1 = det.box
    pngio.write_png16(images_dir / f"{image_id}.png", np.ascontiguousarray(img[cy0:cy1, cx0:cx1]),
                      cfg.png_compression)
    atomic.write_bytes(thumbs_dir / f"{image_id}.png", thumbnail(img, det.box, det.method, cfg.thumb_width))
    x0, y0, x1, y1 = cleaning.to_ingested(det.box)
    row.update(x0=int(x0), y0=int(y0), x1=int(x1), y1=int(y1), confidence=f"{det.confidence:.4f}",
               method=det.method, cx0=cx0, cy0=cy0, cx1=cx1, cy1=cy1, reason=det.reason)
    return row


def jobs(audit_dir: Path, ingested_manifest: Path) -> list[tuple[str, Cleaning]]:
    """(image_id, cleaning) of every kept image, sorted by id."""
    kept = {r["image_id"] for r in _read_table(audit_dir / "kept.csv")}
    audit = {r["image_id"]: r for r in _read_table(audit_dir / "audit.csv")}
    sizes = {}
    for r in _read_table(ingested_manifest):
        if r.get("status") == "ok":
            sizes[r["image_id"]] = (int(r["width"]), int(r["height"]))
    out = []
    for iid in sorted(kept):
        if iid not in audit or iid not in sizes:
            raise RuntimeError(f"crop: kept image {iid} is missing from audit.csv or the ingest manifest")
        out.append((iid, Cleaning.from_row(audit[iid], *sizes[iid])))
    return out


def run_crop(cfg: CropConfig, audit_dir: Path, ingested_manifest: Path, out_dir: Path, report: Path,
             workers: int | None = None, progress: bool = True) -> list[dict]:
    """Stage ``crop``: kept cleaned images -> ``out_dir/images/*.png``, ``out_dir/manifest.csv``, ``report``."""
    from .crops_report import write_report

    audit_dir = Path(audit_dir)
    todo = jobs(audit_dir, Path(ingested_manifest))
    n = config.workers(workers)
    Path(out_dir).parent.mkdir(parents=True, exist_ok=True)
    with atomic.directory(out_dir) as tmp, tempfile.TemporaryDirectory(dir=Path(out_dir).parent) as thumbs_tmp:
        thumbs = Path(thumbs_tmp)
        images = tmp / "images"
        images.mkdir()
        args = lambda iid, cl: (iid, audit_dir / "images" / f"{iid}.png", cl, images, thumbs, cfg)  # noqa: E731
        rows = list(workpool.imap(crop_one, [args(iid, cl) for iid, cl in todo], n, "crop", progress))
        rows.sort(key=lambda r: r["image_id"])
        with atomic.open_file(tmp / "manifest.csv", "w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=MANIFEST_COLUMNS)
            w.writeheader()
            w.writerows(rows)
        Path(report).parent.mkdir(parents=True, exist_ok=True)
        write_report(Path(report), rows, thumbs)
    return rows


def summarise(rows: list[dict]) -> str:
    fb = sum(r["method"] == "fallback" for r in rows)
    conf = [float(r["confidence"]) for r in rows]
    return (f"{len(rows)} crops: {len(rows) - fb} detected, {fb} fallback; "
            f"median confidence {np.median(conf) if conf else float('nan'):.2f}")
