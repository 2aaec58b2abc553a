"""The box rules: landmarks -> the crop box, or the fallback, with its confidence and reason.

Teeth box: the landmarks' columns; top = the occlusal curve's row over the front teeth - ``up`` x J,
bottom = the lowest gap row + ``down`` x J (coefficients fitted by ``python -m bench.crop_fit``).
Then ``margin`` x J each side, edges near the exposed field's edge snapped to it (``edge_snap``),
clipped to the field. Where the jaw's evidence (``JAW_SCORES``) reaches ``min_confidence`` the box
is the detector's however unsure the rest (widened, and the reason says so); otherwise a fallback:
the widest arch allowed over the field's rows where an occlusal gap was found, else the ``fallback``
window of the field. Why, and the figures: docs/crop.md.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.crop.config import CropConfig
from pipeline.crop.landmarks import Landmarks, measure

# the scores that say whether there is a jaw at all (an occlusal gap between two lobes of teeth, in
# rows where one can be); the others (the curve's fit, the scale cues' agreement, the edges) say how
# sure its box is, and widen it instead of discarding it
JAW_SCORES = ("gap_depth", "lobes", "width", "height", "gap_row", "symmetry")


@dataclass(frozen=True)
class Detection:
    """A teeth box (half-open ints, in the frame of the image given) and how it was found."""

    box: tuple[int, int, int, int]
    confidence: float
    method: str  # detected | fallback
    detected: tuple[int, int, int, int] | None = None  # the detector's box even when not used
    reason: str = ""


def fallback_window(frac, w: int, h: int) -> tuple[int, int, int, int]:
    """The window ``frac`` (x0 y0 x1 y1 fractions) of a ``w`` x ``h`` frame, in whole pixels."""
    x0, y0, x1, y1 = frac
    return int(np.floor(x0 * w)), int(np.floor(y0 * h)), int(np.ceil(x1 * w)), int(np.ceil(y1 * h))


def landmark_box(lm: Landmarks, cfg: CropConfig) -> tuple[float, float, float, float]:
    """The teeth box in work pixels, before the margin: top and bottom from the landmarks' rows."""
    hh = lm.jaw
    top = lm.gap_mid - cfg.up[0] * lm.upper_edge - cfg.up[1] * hh
    bottom = lm.gap_bottom + cfg.down[0] * lm.root_edge + cfg.down[1] * lm.mandible + cfg.down[2] * hh
    return lm.left, top, lm.right, bottom


def detect_teeth(img: np.ndarray, cfg: CropConfig = CropConfig()) -> Detection:
    """The teeth box of one OPG (2-D grey array, any dtype), in that image's pixel frame."""
    return detection(measure(img, cfg), img.shape[:2], cfg)


def framed(lm: Landmarks, cfg: CropConfig, shape: tuple[int, int], box) -> tuple[int, int, int, int]:
    """``box`` (work pixels) plus the margin, snapped to the exposed field's edge when near, clipped
    to the field, back in the pixels of an image of ``shape`` (height, width)."""
    h, w = shape
    s = lm.scale
    fx0, fy0, fx1, fy1 = lm.field
    x0, y0, x1, y1 = box
    mx, my = cfg.margin * lm.jaw, cfg.margin * lm.jaw
    x0, x1, y0, y1 = x0 - mx, x1 + mx, y0 - my - cfg.top_margin * lm.jaw, y1 + my
    nx, nt, nb = (v * lm.jaw for v in cfg.edge_snap)
    x0, y0 = (fx0 if x0 < fx0 + nx else x0), (fy0 if y0 < fy0 + nt else y0)
    x1, y1 = (fx1 if x1 > fx1 - nx else x1), (fy1 if y1 > fy1 - nb else y1)
    x0, x1 = max(x0, fx0), min(x1, fx1)
    y0, y1 = max(y0, fy0), min(y1, fy1)
    return (int(np.clip(np.floor(x0 / s), 0, w - 1)), int(np.clip(np.floor(y0 / s), 0, h - 1)),
            int(np.clip(np.ceil(x1 / s), 1, w)), int(np.clip(np.ceil(y1 / s), 1, h)))


def detection(lm: Landmarks, shape: tuple[int, int], cfg: CropConfig) -> Detection:
    """The box (or fallback) for landmarks measured on an image of ``shape`` (height, width)."""
    h, w = shape
    s, scores = lm.scale, lm.scores
    bx0, by0, bx1, by1 = landmark_box(lm, cfg)
    confidence = float(np.prod(list(scores.values())))
    fx0, fy0, fx1, fy1 = lm.field

    notes = list(lm.notes)
    # a curve through few of the gap points: its rows are unsure, the box grows above and below
    loose = cfg.fit_room * (1.0 - scores.get("gap_fit", 1.0)) * lm.jaw
    if loose > 0:
        notes.append(f"the occlusal curve fits few gap points (gap_fit={scores['gap_fit']:.2f}): "
                     f"{loose / lm.jaw:.2f} jaw added above and below")
    by0, by1 = by0 - loose, by1 + loose
    detected = framed(lm, cfg, shape, (bx0, by0 - cfg.one_cue_top * lm.jaw if lm.one_cue else by0, bx1, by1))
    ok = detected[2] - detected[0] >= 8 and detected[3] - detected[1] >= 8
    note = "; ".join(notes)
    jaw = float(np.prod([scores[k] for k in JAW_SCORES if k in scores]))
    if ok and jaw >= cfg.min_confidence:
        # a jaw is there: its box, however unsure the scale, the curve or an edge (the confidence
        # says so, the box was widened for it, the reason names it)
        if confidence < cfg.min_confidence:
            weak = sorted(scores, key=scores.get)[:2]
            note = "unsure (" + ", ".join(f"{n}={scores[n]:.2f}" for n in weak) + ")" + (f"; {note}" if note else "")
        return Detection(detected, confidence, "detected", detected, note)
    weak = sorted(scores, key=scores.get)[:2]
    reason = "low confidence (" + ", ".join(f"{n}={scores[n]:.2f}" for n in weak) + ")" + (f"; {note}" if note else "")
    if ok and scores["gap_row"] > 0 and scores["gap_fit"] > 0 and scores["gap_depth"] > 0.5 and scores["lobes"] > 0:
        # the occlusal gap was found where it can be: the widest plausible columns about both the
        # gap's centre and the mirror axis, and the exposed field's rows (the landmark rows rest on
        # the scale and the curve this box distrusts)
        outer = cfg.half_width[1] * lm.jaw
        ax = lm.midline if lm.axis < 0 else lm.axis
        box = framed(lm, cfg, shape, (min(lm.midline, ax) - outer, fy0, max(lm.midline, ax) + outer, fy1))
        return Detection(box, confidence, "fallback", detected, reason + "; widest arch around the occlusal gap")
    # no occlusal gap where one can be: the documented window, as fractions of the exposed field
    fw = fallback_window(cfg.fallback, fx1 - fx0, fy1 - fy0)
    win = (int(np.clip(np.floor((fx0 + fw[0]) / s), 0, w - 1)), int(np.clip(np.floor((fy0 + fw[1]) / s), 0, h - 1)),
           int(np.clip(np.ceil((fx0 + fw[2]) / s), 1, w)), int(np.clip(np.ceil((fy0 + fw[3]) / s), 1, h)))
    return Detection(win, confidence, "fallback", detected if ok else None, reason + "; the fallback window of the field")


def coverage_and_ratio(crop, box) -> tuple[float, float]:
    """(share of ``box`` inside ``crop``, area of ``crop`` / area of ``box``): how a crop is judged
    against an annotated teeth box."""
    iw = max(0.0, min(box[2], crop[2]) - max(box[0], crop[0]))
    ih = max(0.0, min(box[3], crop[3]) - max(box[1], crop[1]))
    area = (box[2] - box[0]) * (box[3] - box[1])
    return iw * ih / area, (crop[2] - crop[0]) * (crop[3] - crop[1]) / area
