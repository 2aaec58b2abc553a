"""The detector's measurements on one OPG, in work pixels: where the teeth are, and how sure.

Every length is a multiple of the jaw scale J (rows from the occlusal gap down to the mandible's
inferior border), measured on each image, never one device's framing. The steps (figures and the
alternatives measured: docs/crop.md):

0. field: flat border bands left out, the rest shrunk to ``work_width`` and stretched;
1. occlusal gap: a parabola through the darkest rows between upper and lower teeth, refitted over
   the gap's own run; its middle is the midline;
2. jaw scale: the gap-to-mandible distance and ``lobe_scale`` x the lower teeth's lobe; their mean
   where they agree, else the larger (or the lower teeth alone where the mandible is out of view);
3. left/right: the crown profile followed out from the gap, lone crowns beyond a short arch, within
   ``half_width`` x J of the midline and of the image's mirror axis;
3b. a side edge that lands on tooth structure moves out past it;
4. top/bottom inputs (the curve's rows, the lobes' extents) and the confidence scores.

:mod:`pipeline.crop.boxes` turns these into a box.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from pipeline.crop import detector
from pipeline.crop.config import CropConfig


@dataclass(frozen=True)
class Landmarks:
    """What the detector measured, in work pixels (the image shrunk by ``scale``), before the box."""

    scale: float            # work pixels per source pixel
    size: tuple[int, int]   # work image (width, height)
    field: tuple[int, int, int, int]  # the exposed field (flat border bands left out)
    jaw: float              # the jaw's scale as a frame height (rows)
    left: float             # teeth columns
    right: float
    gap_top: float          # highest / lowest row of the occlusal curve over the teeth columns
    gap_bottom: float
    mandible: float         # rows from the gap down to the mandible's inferior border
    root_edge: float        # rows from the gap down to where the lower roots' lobe fades
    midline: float          # the jaw's symmetry column
    scores: dict            # confidence factors
    notes: tuple = ()       # where the box was widened, and why
    cues: dict = field(default_factory=dict)  # the jaw-scale cues (rows)
    upper_edge: float = 0.0  # rows from the gap up to where the upper roots' lobe fades
    axis: float = -1.0      # the image's mirror axis (column; the midline where none is clear)
    gap_mid: float = 0.0    # the occlusal curve's mean row over the jaw's middle (the front teeth)
    one_cue: bool = False   # the mandible lies below the field: the scale rests on the lower teeth alone


def _soft(x: float, lo: float, hi: float) -> float:
    """0 at or below lo, 1 at or above hi, linear between."""
    return float(np.clip((x - lo) / (hi - lo), 0.0, 1.0))


class _Straightener:
    """The work image's rows bent along the occlusal curve: row ``reach`` of the straightened
    image lies on the curve, ``reach`` rows either side."""

    def __init__(self, g: np.ndarray):
        self.g = g
        self.hh, self.ww = g.shape
        self.u = np.arange(self.ww, dtype=np.float32) / self.ww - 0.5
        self.reach = int(0.6 * self.hh)
        self.ts = np.arange(-self.reach, self.reach + 1, dtype=np.float32)

    def bend(self, coef) -> None:
        self.curve = (coef[0] * self.u * self.u + coef[1] * self.u + coef[2]).astype(np.float32)
        self.mapy = self.curve[None, :] + self.ts[:, None]
        self.mapx = np.broadcast_to(np.arange(self.ww, dtype=np.float32), self.mapy.shape).copy()

    def __call__(self, a: np.ndarray) -> np.ndarray:
        return cv2.remap(a, self.mapx, self.mapy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)


@dataclass
class _Gap:
    inliers: float          # share of the gap points the curve fits
    contrast: float         # the inliers' depth over the image's spread
    gl: int                 # the gap's run (columns)
    gr: int
    mid: int                # the midline: the run's middle
    core: int               # the run's width (at least a fifth of the field)
    c0: int                 # the central columns (the front teeth)
    c1: int


@dataclass
class _Scale:
    jaw: float
    mandible: float
    cues: dict
    spread: float
    room: float             # rows from the gap to the field's bottom under the premolars
    hidden: bool            # the mandible's border lies below the field


def _work_image(img: np.ndarray, cfg: CropConfig) -> tuple[np.ndarray, float, tuple[float, float, float, float]]:
    """Step 0: (the exposed field shrunk to ``work_width`` and stretched, work pixels per source
    pixel, the field in work pixels of the whole frame)."""
    small, s0 = detector.shrink(img, cfg.work_width)
    f0 = detector.field(small)
    # the exposed field, in full resolution, shrunk to work_width: a padded frame is measured as the unpadded one
    h, w = img.shape
    fx0, fy0 = int(np.floor(f0[0] / s0)), int(np.floor(f0[1] / s0))
    fx1, fy1 = min(w, int(np.ceil(f0[2] / s0))), min(h, int(np.ceil(f0[3] / s0)))
    if (f0[2] - f0[0]) >= 0.9 * small.shape[1] and (f0[3] - f0[1]) >= 0.9 * small.shape[0]:
        # a thin band or none: the shrunk copy will do (shrinking the full image again costs more)
        g, s = small[f0[1]:f0[3], f0[0]:f0[2]], s0
        fx0, fy0, fx1, fy1 = (v / s0 for v in f0)
    else:
        g, s = detector.shrink(img[fy0:fy1, fx0:fx1], cfg.work_width)
    return detector.stretch(g), s, (fx0 * s, fy0 * s, fx1 * s, fy1 * s)


def _occlusal_gap(st: _Straightener, score: np.ndarray, valley: np.ndarray, cfg: CropConfig) -> _Gap:
    """Step 1: a first fit over the field's middle, then again over the gap's own run; bends ``st``."""
    ww = st.ww
    step = max(1, ww // 128)
    coef, inliers, depth = detector.fit_curve(score, valley, np.arange(int(0.28 * ww), int(0.72 * ww), step),
                                              cfg.gap_band)
    st.bend(coef)
    gl, gr = detector.gap_extent(st(valley * (score > 0)), st.reach, int(0.35 * ww), int(0.65 * ww),
                                 cfg.gap_fraction, ww // 2)
    if gr - gl > 0.2 * ww:
        a, b = gl + (gr - gl) // 10, gr - (gr - gl) // 10
        coef2, inl2, depth2 = detector.fit_curve(score, valley, np.arange(a, b, step), cfg.gap_band)
        if inl2 >= 0.8 * inliers:
            coef, inliers, depth = coef2, inl2, depth2
            st.bend(coef)
    contrast = float(np.median(depth) / (st.g.std() + 1e-6))
    mid = int(np.clip((gl + gr) // 2, 0.25 * ww, 0.75 * ww))
    core = max(gr - gl, int(0.2 * ww))
    return _Gap(inliers, contrast, gl, gr, mid, core, max(0, mid - core // 3), min(ww, mid + core // 3))


def _jaw_scale(st: _Straightener, straight: np.ndarray, gap: _Gap, cfg: CropConfig, notes: list) -> _Scale:
    """Step 2: the jaw's own scale from two cues, the gap-to-mandible distance and the lower teeth's lobe."""
    hh, ww, reach, mid, core = st.hh, st.ww, st.reach, gap.mid, gap.core
    lower0 = detector.lobe_extent(straight[reach:, gap.c0:gap.c1].mean(1), 0.35, max(1, int(0.04 * hh)))
    q0, q1 = max(2, int(0.12 * core)), max(3, int(0.3 * core))
    cols = np.r_[max(0, mid - q1):max(1, mid - q0), min(ww - 1, mid + q0):min(ww, mid + q1)]
    mand, _ = detector.mandible_distance(st.g, st.mapx, st.mapy, reach, cols, int(0.15 * hh), int(0.6 * hh))
    cues = {"lower teeth": cfg.lobe_scale * lower0, "mandible": mand}
    # the two cues agree: their mean. They do not (the mandible's border cut off by the frame, or a
    # mirrored one below it; the lobe merged with the bone): the larger, a wider box, and say so
    jaw, agreed = detector.consensus(cues, cfg.scale_spread)
    spread = max(cues.values()) / max(min(cues.values()), 1e-6) if np.isfinite(mand) else cfg.scale_spread ** 2
    # the mandible's border may lie below the field (a zoomed-in or collimated device): the field
    # ends less than ``mandible_room`` x the lower-teeth cue below the gap and that cue is the
    # larger. The lower teeth's cue alone sets the scale (the box's top grows by ``one_cue_top``)
    room = hh - float(st.curve[cols].mean()) if len(cols) else float(hh)
    hidden = (not agreed and np.isfinite(mand) and cues["lower teeth"] > mand
              and room < cfg.mandible_room * cues["lower teeth"])
    if hidden:
        notes.append(f"the mandible's border lies below the field ({room / hh:.2f} of the field height below the "
                     f"gap, the lower teeth's cue {cues['lower teeth'] / hh:.2f}): the scale from the lower teeth "
                     "alone, the top raised")
    elif not agreed:
        notes.append("jaw scale cues disagree (" + ", ".join(f"{k} {x / hh:.2f}" for k, x in cues.items())
                     + " of the field height): the larger used")
    if not np.isfinite(mand):
        mand = jaw
    return _Scale(jaw, mand, cues, spread, room, hidden)


def _sides(st: _Straightener, gap: _Gap, jaw: float, cfg: CropConfig, notes: list) -> dict:
    """Step 3: the teeth columns from the crown profile, within the widest arch allowed about the
    gap's centre and the mirror axis."""
    g, ww, reach, mid, c0, c1 = st.g, st.ww, st.reach, gap.mid, gap.c0, gap.c1
    # crowns (small bright things: a white top-hat) in a band either side of the gap
    k = max(3, int(cfg.crown_band * 0.5 * jaw) | 1)
    tophat = st(cv2.morphologyEx(g, cv2.MORPH_TOPHAT, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))))
    band = max(1, int(cfg.crown_band * jaw))
    crowns = np.percentile(tophat[reach - band:reach + band], 90, axis=0).astype(np.float32)
    crowns = cv2.GaussianBlur(crowns[:, None], (0, 0), 2.0).ravel()
    outer = cfg.half_width[1] * jaw
    # the arch's bounds are taken about the gap's centre *and* the image's mirror axis: either may be
    # off (a gap running off the frame moves the first; asymmetric anatomy in view the second)
    axis, sym_r = detector.symmetry_axis(g)
    if sym_r < cfg.min_symmetry:
        axis = float(mid)
    a0, a1 = min(mid, axis), max(mid, axis)
    if a1 - a0 > 0.3 * jaw:
        notes.append(f"the mirror axis and the occlusal gap's centre differ by {(a1 - a0) / jaw:.2f} jaw: "
                     "the arch allowed spans both")
    lo, hi = max(0, int(a0 - outer)), min(ww, int(np.ceil(a1 + outer)))
    core_l, core_r = max(lo, gap.gl), min(hi - 1, gap.gr - 1)
    # metal (implants, bridges) must not set the level natural crowns are judged by
    ref = float(np.percentile(crowns[c0:c1], 40)) if c1 > c0 else float(np.median(crowns))
    thr = cfg.crown_fraction * ref
    run = max(1, int(round(cfg.crown_run * jaw)))
    left = detector.crown_extent(crowns[lo:hi], max(0, min(core_l, hi - 1) - lo), -1, thr, run) + lo
    right = detector.crown_extent(crowns[lo:hi], max(0, min(core_r, hi - 1) - lo), +1, thr, run) + lo
    left, right = detector.far_crowns(crowns, left, right, lo, hi, cfg.far_fraction * ref,
                                      max(2, int(cfg.far_width * jaw)), (a0, a1), cfg.far_within * jaw)
    inner = cfg.half_width[0] * jaw
    left = float(np.clip(left - cfg.side_margin * jaw, a0 - outer, a0 - inner))
    right = float(np.clip(right + 1 + cfg.side_margin * jaw, a1 + inner, a1 + outer))
    return {"left": left, "right": right, "axis": axis, "sym_r": sym_r, "a0": a0, "a1": a1, "outer": outer,
            "lo": lo, "hi": hi}


def _edges_on_teeth(st: _Straightener, gap: _Gap, jaw: float, arch: dict, cfg: CropConfig,
                    notes: list) -> tuple[float, float, dict]:
    """Step 3b: (left, right, edges): a side edge on tooth structure moves out past it. The crown run
    can stop at a dark stretch (a gap wider than crown_run, a curve that leaves the crowns at the
    arch's ends) with a molar under the margin; judged on a top-hat as wide as a molar may be (the
    ramus is wider), unstraightened, over the box's rows, so a wrong curve at the sides does not hide it."""
    hh, ww, left, right = st.hh, st.ww, arch["left"], arch["right"]
    rows = st.curve[max(0, int(left)):int(np.ceil(right))]
    r0 = int(max(0.0, float(rows.min()) - cfg.crown_band * jaw))
    r1 = int(min(float(hh), float(rows.max()) + cfg.crown_band * jaw)) + 1
    kw = max(3, int(cfg.edge_tooth * jaw) | 1)   # kept: bright things narrower than the widest molar allowed
    wide = cv2.morphologyEx(st.g[r0:r1], cv2.MORPH_TOPHAT, cv2.getStructuringElement(cv2.MORPH_RECT, (kw, kw)))
    left, right, edges = detector.edges_off_teeth(wide, left, right, (gap.c0, gap.c1), cfg.crown_fraction,
                                                  cfg.side_margin * jaw, (max(0, arch["lo"]), min(ww, arch["hi"])),
                                                  max(1, int(round(cfg.edge_probe * jaw))),
                                                  max(2, int(round(cfg.edge_tooth * jaw))))
    for side, (moved, unsure) in edges.items():
        if moved > 0:
            notes.append(f"the {side} edge lay on tooth structure: moved out {moved / jaw:.2f} jaw")
        if unsure:
            notes.append(f"the {side} edge lies on bright structure that runs on beyond a molar's width: "
                         "left there, unsure")
    if left <= arch["a0"] - arch["outer"] + 1 or right >= arch["a1"] + arch["outer"] - 1:
        notes.append("crowns reach the widest arch allowed")
    return left, right, edges


def _scores(st: _Straightener, straight: np.ndarray, gap: _Gap, scale: _Scale, sym_r: float, edges: dict,
            cfg: CropConfig) -> dict:
    """The confidence factors: the raw lobes and gap extent (not the box) must look like an OPG's."""
    hh, ww, reach, curve, jaw = st.hh, st.ww, st.reach, st.curve, scale.jaw
    rows = straight[:, gap.c0:gap.c1].mean(1)
    kr = max(3, int(0.04 * hh) | 1)
    rows = cv2.morphologyEx(rows[:, None], cv2.MORPH_CLOSE, np.ones((kr, 1), np.uint8)).ravel()
    rows = cv2.GaussianBlur(rows[:, None], (0, 0), 1.5).ravel()
    upper, lower = rows[:reach], rows[reach + 1:]
    pu, pl = int(upper.argmax()), int(lower.argmax())
    top = detector.extent(upper, pu, -1, cfg.edge_fraction) - reach
    bottom = detector.extent(lower, pl, +1, cfg.edge_fraction) + 1
    gxs = slice(max(gap.gl, 0), min(gap.gr, ww))
    raw_h = float(curve[gxs].max()) + bottom - float(curve[gxs].min()) - top
    midrow = float(curve[gap.c0:gap.c1].mean())
    background = float(np.median(rows)) + 1e-9
    lobes = min(upper[pu], lower[pl]) / background
    return {
        "gap_fit": _soft(gap.inliers, 0.3, 0.7),
        "gap_depth": _soft(gap.contrast, 0.05, 0.25),
        "lobes": _soft(lobes, 1.1, 1.6),
        "width": _soft((gap.gr - gap.gl) / jaw, 0.5, 1.0),   # the gap's run: a jaw missing its back teeth on one side still has ~1.3
        "height": _soft(raw_h / jaw, 0.3, 0.7),
        "gap_row": _soft(midrow / hh, cfg.gap_band[0], cfg.gap_band[0] + 0.03) * _soft(-midrow / hh, -cfg.gap_band[1], -cfg.gap_band[1] + 0.03),
        # an OPG is its own mirror image about the jaw's midline (teeth, rami, condyles, spine): a
        # picture that is not (noise, a flat field) holds no jaw whatever its gap-like rows say
        "symmetry": _soft(sym_r, 0.5 * cfg.min_symmetry, cfg.min_symmetry),
        # a side edge left on or near tooth structure (the widest arch allowed stopped it there)
        "edges": 1.0 - cfg.edge_doubt * sum(v[1] for v in edges.values()),
        # one cue where the mandible lies below the field: as sure as the lower teeth's lobe is inside
        # it (the lobe's extent is the cue / lobe_scale rows below the gap)
        "scale": (_soft(scale.room * cfg.lobe_scale / scale.cues["lower teeth"], 1.0, 1.5) if scale.hidden
                  else _soft(-scale.spread, -cfg.scale_spread ** 2, -cfg.scale_spread)),
    }


def measure(img: np.ndarray, cfg: CropConfig = CropConfig()) -> Landmarks:
    """The detector's measurements on one OPG (2-D grey array, any dtype); :func:`pipeline.crop.boxes.detect_teeth`
    turns them into a box, ``bench/crop_fit.py`` fits the box coefficients on them."""
    if img.ndim != 2 or min(img.shape) < 16:
        raise ValueError(f"expected a 2-D grey image of at least 16x16, got shape {img.shape}")
    h, w = img.shape
    g, s, (fx0, fy0, fx1, fy1) = _work_image(img, cfg)
    st = _Straightener(g)
    v = detector.vertical_structure(g)
    score, valley = detector.gap_score(g, v)
    gap = _occlusal_gap(st, score, valley, cfg)
    straight = st(v)
    notes: list[str] = []
    scale = _jaw_scale(st, straight, gap, cfg, notes)
    jaw = scale.jaw
    arch = _sides(st, gap, jaw, cfg, notes)
    left, right, edges = _edges_on_teeth(st, gap, jaw, arch, cfg, notes)
    xs_t = slice(max(0, int(left)), min(st.ww, int(np.ceil(right))))
    # 4. top/bottom: the jaw's scale and the lower roots' own lobe
    reach, curve = st.reach, st.curve
    root_edge = float(detector.lobe_extent(straight[reach + 1:, xs_t].mean(1), cfg.root_fraction, 0))
    upper_edge = float(detector.lobe_extent(straight[:reach][::-1, xs_t].mean(1), cfg.root_fraction, 0))
    scores = _scores(st, straight, gap, scale, arch["sym_r"], edges, cfg)
    # back to the whole frame (work pixels)
    return Landmarks(s, (round(w * s), round(h * s)), (fx0, fy0, fx1, fy1), jaw, left + fx0, right + fx0,
                     float(curve[xs_t].min()) + fy0, float(curve[xs_t].max()) + fy0, float(scale.mandible),
                     root_edge, gap.mid + fx0, scores, tuple(notes), scale.cues, upper_edge, arch["axis"] + fx0,
                     float(curve[gap.c0:gap.c1].mean()) + fy0, scale.hidden)
