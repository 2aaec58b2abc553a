"""The detector's image measurements and profile walks, each on a work-size grey image or a 1-D
profile (the method, step by step: :mod:`pipeline.crop.landmarks`)."""
from __future__ import annotations

import cv2
import numpy as np

from pipeline.core import pngio


def stretch(a: np.ndarray) -> np.ndarray:
    lo, hi = np.percentile(a, (1.0, 99.5))
    return np.clip((a - lo) / max(hi - lo, 1e-6), 0, 1).astype(np.float32)


def shrink(img: np.ndarray, work_width: int) -> tuple[np.ndarray, float]:
    h, w = img.shape
    s = min(1.0, work_width / w)
    src = img if img.dtype in (np.uint8, np.uint16) else pngio.to_float01(img)  # 8/16-bit resized as they are
    small = cv2.resize(np.ascontiguousarray(src), (max(8, round(w * s)), max(8, round(h * s))),
                       interpolation=cv2.INTER_AREA)
    return pngio.to_float01(small), s


def _flat_ends(spread: np.ndarray, thr: float, run: int = 3) -> tuple[int, int]:
    """First and last index (half-open end) of the stretch where ``spread`` stays above ``thr``
    for ``run`` indices in a row: what lies outside is a flat band."""
    live = spread > thr
    n = len(live)
    ok = np.convolve(live.astype(np.int32), np.ones(run, np.int32), "valid") == run
    idx = np.flatnonzero(ok)
    if not len(idx):
        return 0, n
    return int(idx[0]), int(idx[-1] + run)


def field(small: np.ndarray) -> tuple[int, int, int, int]:
    """The exposed field (x0, y0, x1, y1, half-open) of a shrunk OPG: the border bands where the
    image is flat (a padded export, a collimator's shadow: one value plus noise) are left out.
    A column is flat when the spread of its values (90th - 10th percentile) is under a fifth of
    the typical spread of the image's columns; rows are judged over the field's columns."""
    h, w = small.shape
    f = max(1, w // 192)  # bands are broad: judged on a copy about 192 px wide (a few ms, not tens)
    b = cv2.blur(cv2.resize(small, (max(8, w // f), max(8, h // f)), interpolation=cv2.INTER_AREA) if f > 1
                 else small, (3, 3))
    x0, x1 = 0, w
    y0, y1 = 0, h
    for _ in range(2):
        sub = b[y0:y1]
        p = np.percentile(sub, (10, 90), axis=0)
        spread = p[1] - p[0]
        thr = 0.2 * float(np.percentile(spread, 80))
        x0, x1 = _flat_ends(spread, thr)
        sub = b[:, x0:x1]
        p = np.percentile(sub, (10, 90), axis=1)
        spread = p[1] - p[0]
        thr = 0.2 * float(np.percentile(spread, 80))
        y0, y1 = _flat_ends(spread, thr)
    x0, y0, x1, y1 = x0 * f, y0 * f, min(w, x1 * f), min(h, y1 * f)
    if x1 == b.shape[1] * f:
        x1 = w
    if y1 == b.shape[0] * f:
        y1 = h
    if x1 - x0 < 0.25 * w or y1 - y0 < 0.25 * h:
        return 0, 0, w, h
    return x0, y0, x1, y1


def vertical_structure(g: np.ndarray) -> np.ndarray:
    b = cv2.GaussianBlur(g, (0, 0), 1.0)
    gx = cv2.Sobel(b, cv2.CV_32F, 1, 0)
    gy = cv2.Sobel(b, cv2.CV_32F, 0, 1)
    jxx = cv2.GaussianBlur(gx * gx, (0, 0), 3)
    jyy = cv2.GaussianBlur(gy * gy, (0, 0), 3)
    v = np.sqrt(np.maximum(jxx - jyy, 0))
    return np.minimum(v, np.percentile(v, 98) + 1e-9)


def gap_score(g: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(score, valley): valley = how much darker a pixel is than the rows 3.5 % of the height above
    and below; score = valley where there is vertical structure (teeth) a crown height above *and* below."""
    hh, ww = g.shape
    sm = cv2.GaussianBlur(g, (0, 0), sigmaX=6, sigmaY=1.5)
    t = max(2, int(round(0.035 * hh)))
    pad = cv2.copyMakeBorder(sm, t, t, 0, 0, cv2.BORDER_REPLICATE)
    valley = np.minimum(pad[:hh], pad[2 * t:]) - sm
    t2 = max(2, int(round(0.08 * hh)))
    vs = cv2.GaussianBlur(v, (0, 0), 3)
    vp = cv2.copyMakeBorder(vs, t2, t2, 0, 0, cv2.BORDER_CONSTANT, value=0)
    both = np.sqrt(np.maximum(vp[:hh] * vp[2 * t2:], 0)) / (float(vs.max()) + 1e-9)
    return np.maximum(valley, 0) * both, valley


def fit_curve(score: np.ndarray, valley: np.ndarray, xs: np.ndarray, band: tuple[float, float]):
    """Parabola (a, b, c), row = a u^2 + b u + c with u = x / W - 0.5, through the deepest gap
    point of each column in ``xs`` (rows ``band`` of the height), by re-weighted least squares;
    (coef, inlier share, depth of the inliers)."""
    hh, ww = score.shape
    lo, hi = int(band[0] * hh), max(int(band[0] * hh) + 1, int(band[1] * hh))
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
        coef[0] = float(np.clip(coef[0], -1.5 * hh, 0.3 * hh))
        coef[2] = float(np.median(ys[keep] - X[keep, :2] @ coef[:2]))
        res = np.abs(X @ coef - ys)
        keep = (depth > 0) & (res < max(2.0, 0.02 * hh))
    return coef, float(keep.mean()), (depth[keep] if keep.any() else np.zeros(1))


def extent(profile: np.ndarray, start: int, step: int, frac: float) -> int:
    """From ``start`` by ``step``: the last index where ``profile`` stays above ``frac`` of its value at ``start``."""
    thr = frac * profile[start]
    i = start
    while 0 <= i + step < len(profile) and profile[i + step] > thr:
        i += step
    return i


def crown_extent(profile: np.ndarray, start: int, step: int, thr: float, run: int) -> int:
    """From ``start`` outwards by ``step``: the last index above ``thr`` before ``run`` indices in a row below it."""
    last, miss, i = start, 0, start
    while 0 <= i < len(profile):
        if profile[i] > thr:
            last, miss = i, 0
        else:
            miss += 1
            if miss > run:
                break
        i += step
    return last


def gap_extent(vstraight: np.ndarray, reach: int, c0: int, c1: int, frac: float, mid: int) -> tuple[int, int]:
    """Columns over which the occlusal gap (dark between bright crowns) runs, from the middle out."""
    ww = vstraight.shape[1]
    near = max(2, int(0.04 * vstraight.shape[0]))
    cols = vstraight[reach - near:reach + near + 1].max(0)
    kc = max(3, int(0.06 * ww) | 1)
    cols = cv2.morphologyEx(cols[:, None], cv2.MORPH_CLOSE, np.ones((kc, 1), np.uint8)).ravel()
    cols = cv2.GaussianBlur(cols[:, None], (0, 0), 2.0).ravel()
    thr = frac * float(np.median(cols[c0:c1]))
    centre = c0 + int(np.argmax(cols[c0:c1] > thr)) if (cols[c0:c1] > thr).any() else mid
    left = right = max(centre, mid) if cols[mid] > thr else centre
    while left > 0 and cols[left - 1] > thr:
        left -= 1
    while right < ww - 1 and cols[right + 1] > thr:
        right += 1
    return left, right + 2


def lobe_extent(profile: np.ndarray, frac: float, close: int) -> float:
    """Rows from the start of ``profile`` (the gap) to where its lobe, closed over ``close`` rows,
    falls below ``frac`` of its peak for good."""
    if len(profile) < 3:
        return float(len(profile))
    p = cv2.morphologyEx(profile.astype(np.float32)[:, None], cv2.MORPH_CLOSE,
                         np.ones((max(1, close) | 1, 1), np.uint8)).ravel()
    pk = int(np.argmax(p))
    thr = frac * float(p[pk])
    i = pk
    while i + 1 < len(p) and p[i + 1] > thr:
        i += 1
    return float(i + 1)


def mandible_distance(g: np.ndarray, mapx: np.ndarray, mapy: np.ndarray, reach: int, cols: np.ndarray,
                      lo: int, hi: int) -> tuple[float, float]:
    """(rows from the occlusal curve down to the mandible's inferior border, strength): the lowest
    strong bright-above / dark-below step of the image straightened along the curve, ``lo``..``hi``
    rows below it, averaged over ``cols`` (under the premolars and canines). Strength is that
    step over the largest step seen (1: the border is the strongest edge there)."""
    hh = g.shape[0]
    sg = cv2.remap(cv2.GaussianBlur(g, (0, 0), 3, sigmaY=1.5), mapx, mapy, cv2.INTER_LINEAR,
                   borderMode=cv2.BORDER_CONSTANT, borderValue=-1)
    k = max(2, int(0.015 * hh))
    sub = sg[:, cols]
    inside = sub >= 0   # rows of the straightened map that lie inside the frame
    valid = inside.mean(1) > 0.8
    prof = np.where(valid, (sub * inside).sum(1) / np.maximum(inside.sum(1), 1), np.nan)
    step = np.zeros_like(prof)
    step[k:-k] = prof[2 * k:] - prof[:-2 * k]
    step = np.nan_to_num(step, nan=0.0)  # no step is measured across the frame's edge
    lo, hi = reach + lo, min(len(step) - k, reach + hi)
    if hi - lo < 3:
        return float("nan"), 0.0
    drop = np.maximum(-step[lo:hi], 0)
    if drop.max() <= 0:
        return float("nan"), 0.0
    peaks = [i for i in range(1, len(drop) - 1) if drop[i] >= drop[i - 1] and drop[i] >= drop[i + 1]
             and drop[i] >= 0.5 * drop.max()]
    i = peaks[-1] if peaks else int(np.argmax(drop))
    return float(i + lo - reach), float(drop[i] / drop.max())


def symmetry_axis(g: np.ndarray, width: int = 160, span: tuple[float, float] = (0.3, 0.7)) -> tuple[float, float]:
    """(column, correlation): the vertical axis about which the image is most nearly its own mirror
    image (an OPG is left-right symmetric about the jaw's midline: teeth, rami, condyles, spine),
    searched over ``span`` of the width on a copy ``width`` px wide. The correlation is that of the
    two mirrored halves where they overlap. It is judged on the whole picture, not on the occlusal
    gap's run, so a gap that runs off one side of the frame (a zoomed-in or shifted device) does
    not move it."""
    hh, ww = g.shape
    f = width / ww
    a = cv2.resize(g, (width, max(8, round(hh * f))), interpolation=cv2.INTER_AREA).astype(np.float32)
    xs = np.arange(width)
    best = (-2.0, ww / 2.0)
    for c2 in range(int(2 * span[0] * width), int(2 * span[1] * width) + 1):  # the axis at c2 / 2
        xm = c2 - xs
        ok = (xm >= 0) & (xm < width) & (2 * xs < c2)
        if ok.sum() < width // 4:
            continue
        p, q = a[:, xs[ok]], a[:, xm[ok]]
        p, q = p - p.mean(), q - q.mean()
        r = float((p * q).sum() / np.sqrt((p * p).sum() * (q * q).sum() + 1e-12))
        if r > best[0]:
            best = (r, (c2 / 2 + 0.5) / f - 0.5)
    return best[1], best[0]


def far_crowns(profile: np.ndarray, left: int, right: int, lo: int, hi: int, thr: float, min_width: int,
               centre: tuple[float, float], within: float) -> tuple[int, int]:
    """Isolated crowns beyond the arch [left, right] but inside [lo, hi): every stretch of at least
    ``min_width`` columns above ``thr`` (a tooth standing alone, far from the others: a molar
    beside central implants) moves the edge out to its far end.

    A side is searched only where its arch stops short, within ``within`` columns of ``centre`` =
    (c0, c1), the midline's span: beyond a complete arch the lone bright stretches are the ramus
    and the bone behind the last molar, not teeth."""
    if centre[0] - left >= within:
        lo = left
    if right - centre[1] >= within:
        hi = right + 1
    above = profile > thr
    for i in range(left - 1, lo - 1, -1):
        if above[i] and above[i:i + min_width].all() and i + min_width <= left:
            j = i
            while j - 1 >= lo and above[j - 1]:
                j -= 1
            left = j
    for i in range(right + 1, hi):
        if above[i] and i - min_width + 1 >= right and above[i - min_width + 1:i + 1].all():
            j = i
            while j + 1 < hi and above[j + 1]:
                j += 1
            right = j
    return left, right


def consensus(cues: dict[str, float], spread: float) -> tuple[float, bool]:
    """(scale, agreed): the mean of the cues where they lie within ``spread`` (a ratio) of one
    another; otherwise the largest (the box is widened rather than trusted)."""
    vals = [v for v in cues.values() if np.isfinite(v)]
    if len(vals) > 1 and max(vals) <= spread * min(vals):
        return float(np.mean(vals)), True
    return float(max(vals)), False


def edges_off_teeth(tophat: np.ndarray, left: float, right: float, core: tuple[int, int], frac: float,
                    margin: float, bounds: tuple[int, int], probe: int, longest: int) -> tuple[float, float, dict]:
    """(left, right, {side: (columns moved, unsure)}): a side edge of the box that lands on tooth
    structure moves outward past it, plus ``margin``, within ``bounds`` (the widest arch allowed).

    ``tophat`` is a white top-hat over the box's rows; its column profile (95th percentile: a crown
    or a root in any row counts) is judged against ``frac`` x its level over the ``core`` columns
    (40th percentile: metal does not set it). An edge lies on teeth where the profile stays above
    that threshold from the edge outward for at least ``probe`` columns (less: the edge only
    touches a tooth's flank or a bright line); it moves out to where the profile falls below and
    ``margin`` beyond. Where the structure runs on for ``longest`` columns or more it is no tooth
    under the edge (a molar is narrower) but bone (the ramus, the spine): the edge stays, and is
    marked unsure."""
    ww = tophat.shape[1]
    prof = np.percentile(tophat, 95, axis=0).astype(np.float32)
    prof = cv2.GaussianBlur(prof[:, None], (0, 0), 1.5).ravel()
    c0, c1 = core
    ref = float(np.percentile(prof[c0:c1], 40)) if c1 > c0 else float(np.median(prof))
    thr = frac * ref
    lo, hi = max(0, bounds[0]), min(ww, bounds[1])

    def walk(edge: float, step: int) -> tuple[float, bool]:
        e = int(np.clip(round(edge), lo, hi - 1))
        i = e
        while lo <= i + step < hi and prof[i + step] > thr and abs(i + step - e) <= longest:
            i += step
        run = abs(i - e) + (prof[e] > thr)
        if run < probe or prof[e] <= thr:
            return edge, False
        if run > longest:
            return edge, True
        return (float(max(lo, i - margin)) if step < 0 else float(min(hi, i + 1 + margin))), False

    (new_l, unsure_l), (new_r, unsure_r) = walk(left, -1), walk(right, +1)
    new_l, new_r = min(new_l, left), max(new_r, right)
    return new_l, new_r, {"left": (left - new_l, unsure_l), "right": (new_r - right, unsure_r)}
