"""Audit: per ingested image, measurements and a verdict (keep | reject, with reasons), and the
cleaned copy of every kept image.

Measurements (one column each in ``audit.csv``), on the image's *content* (blank borders trimmed):
- size and type: ``width, height`` (content), ``aspect``; ``template_corr``: correlation with the
  archive's own mean OPG (a low value: not a panoramic);
- exposure: ``mean``, ``p01``, ``p99``, ``dark_fraction`` (below ``dark_level``),
  ``bright_fraction`` (clipped, above ``bright_level``); contrast: ``dynamic_range`` (p99 - p01);
- ``sharpness``: std of the Laplacian at a fixed working height, over the dynamic range (blur);
- ``noise``: Immerkaer's noise sigma at full resolution, over the dynamic range;
- ``orientation``: how much better the image matches the archive's mean OPG upright than turned
  180 degrees (negative: upside down). The mean OPG is built from the archive itself, each image
  turned the way it fits best, so it needs no outside reference and most images being upright;
- burned-in text or markers: ``text_components`` and the region ``text_x0..text_y1`` (ingested
  pixels): small, sharp, high-contrast marks near the frame edges;
- duplicates: ``n_files`` (raw files carrying these exact pixels), ``dup_similarity`` (best
  near-duplicate match); see :mod:`pipeline.audit.duplicates`.

Cleaning (each step a param, recorded per image): trim blank borders (uniform rows/columns at the
edges: black, white or collimation fill), undo a confident 180-degree rotation, optionally inpaint
the burned-in marks. No intensity change.

Two passes over the images (process pool, streaming): measure, then decide (duplicates and
orientation need every image's fingerprint), then write the cleaned kept images.
"""
from __future__ import annotations

import collections
import csv
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from pipeline.core import atomic, config, pngio
from pipeline.audit import duplicates
from pipeline.core.frames import Cleaning

log = logging.getLogger(__name__)

REASONS = ("unreadable", "too_small", "not_panoramic", "underexposed", "overexposed", "low_contrast",
           "blur", "noisy", "rotated180", "duplicate")
FLAGS = ("burned_in_text", "colour", "rot180_uncertain", "flipped_copy")
MEASUREMENTS = ["width", "height", "aspect", "template_corr", "orientation", "mean", "p01", "p99",
                "dynamic_range", "dark_fraction", "bright_fraction", "sharpness", "noise",
                "text_components", "text_x0", "text_y0", "text_x1", "text_y1", "n_files",
                "dup_similarity"]
AUDIT_COLUMNS = ["image_id", "verdict", "reasons", "flags", "dup_group", "rot180",
                 "trim_x0", "trim_y0", "trim_x1", "trim_y1", *MEASUREMENTS]
KEPT_COLUMNS = ["image_id", "dup_group", "patient_key"]
# the measurement each reason is decided on, with the threshold's config field and its side
THRESHOLDS = {
    "dark_fraction": ("max_dark_fraction", "max"), "bright_fraction": ("max_bright_fraction", "max"),
    "dynamic_range": ("min_dynamic_range", "min"), "sharpness": ("min_sharpness", "min"),
    "noise": ("max_noise", "max"), "aspect": ("min_aspect", "min"),
    "template_corr": ("min_template_corr", "min"), "orientation": ("rot180_margin", "abs"),
    "dup_similarity": ("dup_threshold", "min"),
}

WORK_HEIGHT = 256   # height of the working copy for sharpness and orientation
TEXT_HEIGHT = 1024  # at most this height for the burned-in text search
DESC = (64, 32)     # orientation descriptor (width, height)


@dataclass(frozen=True)
class AuditConfig:
    # size and type
    min_width: int = config.param(400, ge=1)
    min_height: int = config.param(200, ge=1)
    min_aspect: float = config.param(1.5, gt=0)   # panoramic: about 2:1; periapical, bitewing, ceph, photos are not
    max_aspect: float = config.param(3.2, gt=0)
    min_template_corr: float = config.param(0.1, ge=-1, le=1)   # correlation with the archive's mean OPG
    # exposure and contrast (intensities in [0, 1])
    dark_level: float = config.param(0.05, ge=0, le=1)
    max_dark_fraction: float = config.param(0.4, ge=0, le=1)
    bright_level: float = config.param(0.98, ge=0, le=1)
    max_bright_fraction: float = config.param(0.3, ge=0, le=1)
    min_dynamic_range: float = config.param(0.35, ge=0, le=1)
    # blur and noise
    min_sharpness: float = config.param(0.06, ge=0)
    max_noise: float = config.param(0.08, ge=0)
    # orientation: reject or undo when the upside-down fit is better by this margin
    rot180_margin: float = config.param(0.1, ge=0, le=2)
    # burned-in text
    text_min_contrast: float = config.param(0.3, ge=0, le=1)   # of the full range
    text_border: float = config.param(0.15, gt=0, le=0.5)      # search band at each edge (fraction of the frame)
    # near duplicates (pipeline.audit.duplicates)
    dup_max_candidates: int = config.param(8, ge=1)          # candidates per image and query (upright, mirrored) at most
    dup_max_postings: int = config.param(64, ge=1)           # keypoint words in more images than this are stop words
    dup_threshold: float = config.param(0.55, ge=-1, le=1)   # similarity of the registered copies that makes a duplicate
    # cleaning
    trim_borders: bool = True
    trim_tolerance: float = config.param(0.005, ge=0, le=1)  # a border row/column: 95 % of it within this of its median
    max_trim_fraction: float = config.param(0.2, ge=0, lt=0.5)   # at most this much of the frame trimmed from each side
    undo_rot180: bool = True         # turn a confidently upside-down image instead of rejecting it
    inpaint_text: bool = False       # paint over burned-in marks in the cleaned image
    png_compression: int = config.param(1, ge=0, le=9)
    # report
    gallery_per_reason: int = config.param(24, ge=0)

    def __post_init__(self) -> None:
        if self.min_aspect >= self.max_aspect:
            raise config.ConfigError("audit.min_aspect must be below audit.max_aspect")


# ------------------------------------------------------------------------------------ measurements
def trim_box(img: np.ndarray, tolerance: float, max_fraction: float) -> tuple[int, int, int, int]:
    """Half-open box ``(x0, y0, x1, y1)`` without the blank rows/columns at the edges: a row is blank
    when 95 % of it lies within ``tolerance`` (of the full range) of its median."""
    f = pngio.to_float01(img) if img.dtype != np.float32 else img
    h, w = f.shape

    def blank(lines: np.ndarray) -> np.ndarray:  # lines: (n, length)
        med = np.median(lines, axis=1, keepdims=True)
        return (np.abs(lines - med) <= tolerance).mean(axis=1) >= 0.95

    def count(lines: np.ndarray) -> int:
        b = blank(lines)
        return int(np.argmin(b)) if not b.all() else len(b)

    my, mx = int(h * max_fraction), int(w * max_fraction)
    y0 = count(f[:my]) if my else 0
    y1 = h - (count(f[::-1][:my]) if my else 0)
    x0 = count(f[:, :mx].T) if mx else 0
    x1 = w - (count(f[:, ::-1][:, :mx].T) if mx else 0)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return 0, 0, w, h
    return x0, y0, x1, y1


def _work(f: np.ndarray, height: int) -> np.ndarray:
    h, w = f.shape
    width = max(8, round(w * height / h))
    interp = cv2.INTER_AREA if height < h else cv2.INTER_LINEAR
    return cv2.resize(f, (width, height), interpolation=interp)


def sharpness(f: np.ndarray, dyn: float) -> float:
    """Std of the Laplacian at height WORK_HEIGHT, over the dynamic range (low: blurred)."""
    w = _work(f, WORK_HEIGHT)
    return float(cv2.Laplacian(w, cv2.CV_32F, ksize=3).std()) / max(dyn, 1e-3)


def noise_sigma(f: np.ndarray, dyn: float) -> float:
    """Immerkaer (1996) fast noise estimate, at full resolution, over the dynamic range."""
    k = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)
    h, w = f.shape
    if h < 3 or w < 3:
        return 0.0
    r = np.abs(cv2.filter2D(f, cv2.CV_32F, k, borderType=cv2.BORDER_REFLECT))[1:-1, 1:-1]
    sigma = math.sqrt(math.pi / 2) * float(r.mean()) / 6.0
    return sigma / max(dyn, 1e-3)


def orientation_descriptor(f: np.ndarray, lo: float, hi: float) -> np.ndarray:
    d = cv2.resize(f, DESC, interpolation=cv2.INTER_AREA)
    d = np.clip((d - lo) / max(hi - lo, 1e-6), 0, 1)
    d = d - d.mean()
    n = float(np.linalg.norm(d))
    return (d / n if n > 0 else d).astype(np.float32)


def text_marks(f: np.ndarray, min_contrast: float, border: float) -> tuple[list[tuple[int, int, int, int]], np.ndarray]:
    """Burned-in text or markers: small, sharp-edged, high-contrast marks (bright on dark or dark on
    bright) in the band ``border`` wide along the frame edges. Returns the boxes of the marks
    (ingested pixels of ``f``) and a mask of them at ``f``'s size."""
    h, w = f.shape
    scale = min(1.0, TEXT_HEIGHT / h)
    g = cv2.resize(f, (max(8, round(w * scale)), max(8, round(h * scale))), interpolation=cv2.INTER_AREA) \
        if scale < 1 else f
    gh, gw = g.shape
    k = max(5, int(round(gh * 0.03)) | 1)
    se = cv2.getStructuringElement(cv2.MORPH_RECT, (k, k))
    g3 = cv2.medianBlur(g, 3)
    white = g3 - cv2.morphologyEx(g3, cv2.MORPH_OPEN, se)
    black = cv2.morphologyEx(g3, cv2.MORPH_CLOSE, se) - g3
    mask = ((white > min_contrast) | (black > min_contrast)).astype(np.uint8)
    bx, by = int(gw * border), int(gh * border)
    mask[by:gh - by, bx:gw - bx] = 0
    n, lab, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    # sharp edges: text is drawn, anatomy is smooth
    gy, gx = np.gradient(g3)
    grad = np.hypot(gx, gy)
    keep = np.zeros(n, bool)
    for i in range(1, n):
        x, y, bw, bh, area = stats[i]
        if not (gh * 0.008 <= bh <= gh * 0.12 and bw <= gw * 0.45 and area >= 6):
            continue
        ex, ey = gw * 0.008, gh * 0.008  # a sliver along the frame edge: a detector or collimator edge
        if x + bw <= ex or x >= gw - ex or y + bh <= ey or y >= gh - ey:
            continue
        if area > 0.8 * bw * bh and min(bw, bh) > 4:  # a solid block, not a stroke
            continue
        comp = lab[y:y + bh, x:x + bw] == i
        if float(grad[y:y + bh, x:x + bw][comp].max()) < min_contrast / 3:
            continue
        keep[i] = True
    boxes = []
    full_mask = np.zeros((h, w), np.uint8)
    if keep.any():
        sel = keep[lab].astype(np.uint8)
        sel = cv2.dilate(sel, cv2.getStructuringElement(cv2.MORPH_RECT, (3, 3)))
        full_mask = cv2.resize(sel, (w, h), interpolation=cv2.INTER_NEAREST) if scale < 1 else sel
        for i in np.nonzero(keep)[0]:
            x, y, bw, bh, _ = stats[i]
            boxes.append((int(x / scale), int(y / scale), int(math.ceil((x + bw) / scale)),
                          int(math.ceil((y + bh) / scale))))
    return boxes, full_mask


def _union(boxes: list[tuple[int, int, int, int]]) -> tuple[int, int, int, int] | None:
    if not boxes:
        return None
    return (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes),
            max(b[3] for b in boxes))


@dataclass
class Measured:
    """What pass 1 sends back for one image (small: no pixels)."""

    image_id: str
    ingested_w: int
    ingested_h: int
    trim: tuple[int, int, int, int]  # ingested frame
    values: dict
    descriptor: np.ndarray | None
    fingerprint: duplicates.Fingerprint | None
    error: str = ""


def measure(img: np.ndarray, cfg: AuditConfig) -> tuple[dict, tuple[int, int, int, int], np.ndarray, duplicates.Fingerprint]:
    """Measurements of one ingested image (uint16 or float [0, 1]): (values, trim box, orientation
    descriptor, duplicate fingerprint). Independent of every other image."""
    f = pngio.to_float01(img)
    H, W = f.shape
    trim = trim_box(f, cfg.trim_tolerance, cfg.max_trim_fraction) if cfg.trim_borders else (0, 0, W, H)
    x0, y0, x1, y1 = trim
    c = f[y0:y1, x0:x1]
    h, w = c.shape
    sub = c[:: max(1, h // 512), :: max(1, w // 1024)]
    p01, p99 = (float(v) for v in np.percentile(sub, [1, 99]))
    dyn = p99 - p01
    boxes, _ = text_marks(f, cfg.text_min_contrast, cfg.text_border)
    tb = _union(boxes)
    values = {
        "width": w, "height": h, "aspect": w / h, "mean": float(sub.mean()), "p01": p01, "p99": p99,
        "dynamic_range": dyn, "dark_fraction": float((sub < cfg.dark_level).mean()),
        "bright_fraction": float((sub > cfg.bright_level).mean()),
        "sharpness": sharpness(c, dyn), "noise": noise_sigma(c, dyn),
        "text_components": len(boxes),
        "text_x0": tb[0] if tb else "", "text_y0": tb[1] if tb else "",
        "text_x1": tb[2] if tb else "", "text_y1": tb[3] if tb else "",
    }
    return values, trim, orientation_descriptor(c, p01, p99), duplicates.fingerprint(c)


def _measure_one(image_id: str, path: Path, cfg: AuditConfig) -> Measured:
    """Pass 1 for one image; a bad file is a recorded rejection, never a crash of the batch."""
    try:
        img = pngio.read_png16(path)
        if min(img.shape[:2]) < 2:  # no gradient, no measure: too small, not unreadable
            return Measured(image_id, int(img.shape[1]), int(img.shape[0]), (0, 0, 0, 0), {}, None, None, "too_small")
        values, trim, desc, fp = measure(img, cfg)
        return Measured(image_id, int(img.shape[1]), int(img.shape[0]), trim, values, desc, fp)
    except Exception as e:  # noqa: BLE001 - recorded as the reason
        return Measured(image_id, 0, 0, (0, 0, 0, 0), {}, None, None, f"{type(e).__name__}: {e}")


def _clean_one(image_id: str, src: Path, dst: Path, cleaning: Cleaning, inpaint: bool, cfg: AuditConfig) -> str:
    """Pass 2 for one kept image: write its cleaned copy; returns an error message or ''."""
    try:
        if not inpaint and not cleaning.rot180 and cleaning.size == (cleaning.width, cleaning.height):
            atomic.write_bytes(dst, Path(src).read_bytes())  # nothing to clean: the same PNG, no re-encode
            return ""
        img = pngio.read_png16(src)
        out = np.ascontiguousarray(cleaning.apply(img))
        if inpaint:
            _, mask = text_marks(pngio.to_float01(img), cfg.text_min_contrast, cfg.text_border)
            mask = np.ascontiguousarray(cleaning.apply(mask))
            if mask.any():
                out = cv2.inpaint(out, mask, 5, cv2.INPAINT_TELEA)
        pngio.write_png16(dst, out, cfg.png_compression)
        return ""
    except Exception as e:  # noqa: BLE001
        return f"{type(e).__name__}: {e}"


# -------------------------------------------------------------------------------------- decisions
def orientation_scores(descriptors: list[np.ndarray | None], iterations: int = 3) -> tuple[list[float], list[float]]:
    """(orientation, template_corr) per image against the archive's own mean OPG.

    The template starts as the pixelwise median of all descriptors, then is rebuilt from the images
    each turned the way it fits best. ``orientation`` = corr(upright) - corr(turned 180); the
    template correlation is that of the better way round."""
    valid = [d for d in descriptors if d is not None]
    if not valid:
        return [math.nan] * len(descriptors), [math.nan] * len(descriptors)
    stack = np.stack(valid)
    template = np.median(stack, axis=0)
    for _ in range(iterations):
        up = (stack * template).sum(axis=(1, 2))
        down = (stack[:, ::-1, ::-1] * template).sum(axis=(1, 2))
        template = np.where((up >= down)[:, None, None], stack, stack[:, ::-1, ::-1]).mean(axis=0)
        template = template - template.mean()
        template /= max(float(np.linalg.norm(template)), 1e-9)
    up = (stack * template).sum(axis=(1, 2))
    down = (stack[:, ::-1, ::-1] * template).sum(axis=(1, 2))
    it = iter(zip(up - down, np.maximum(up, down)))
    orient, corr = [], []
    for d in descriptors:
        if d is None:
            orient.append(math.nan)
            corr.append(math.nan)
        else:
            o, c = next(it)
            orient.append(float(o))
            corr.append(float(c))
    return orient, corr


def quality_reasons(v: dict, cfg: AuditConfig) -> list[str]:
    """Reasons from one image's own measurements (not duplicates, not orientation)."""
    r = []
    if v["width"] < cfg.min_width or v["height"] < cfg.min_height:
        r.append("too_small")
    if not cfg.min_aspect <= v["aspect"] <= cfg.max_aspect or \
            (not math.isnan(v.get("template_corr", math.nan)) and v["template_corr"] < cfg.min_template_corr):
        r.append("not_panoramic")
    if v["dark_fraction"] > cfg.max_dark_fraction:
        r.append("underexposed")
    if v["bright_fraction"] > cfg.max_bright_fraction:
        r.append("overexposed")
    if v["dynamic_range"] < cfg.min_dynamic_range:
        r.append("low_contrast")
    if v["sharpness"] < cfg.min_sharpness:
        r.append("blur")
    if v["noise"] > cfg.max_noise:
        r.append("noisy")
    return r


def fmt_cell(v) -> str:
    """A value as audit.csv writes it: floats to 6 significant digits, NaN as an empty cell."""
    if isinstance(v, float):
        return "" if math.isnan(v) else f"{v:.6g}"
    return str(v)


def decide(measured: list[Measured], n_files: dict[str, int], cfg: AuditConfig, workers: int = 1) -> list[dict]:
    """audit.csv rows (sorted by image id) from pass 1's results: verdicts, reasons, flags, rotation,
    trim (in the rotated frame) and duplicate groups (their pairwise checks over ``workers`` processes)."""
    orient, corr = orientation_scores([m.descriptor for m in measured])
    rows = []
    for m, o, c in zip(measured, orient, corr):
        row = {k: "" for k in AUDIT_COLUMNS}
        row["image_id"] = m.image_id
        reasons, flags = [], []
        rot = False
        if m.error:
            reasons.append("too_small" if m.error == "too_small" else "unreadable")
            row.update(rot180=0, trim_x0=0, trim_y0=0, trim_x1=m.ingested_w, trim_y1=m.ingested_h)
        else:
            v = dict(m.values, orientation=o, template_corr=c)
            reasons += quality_reasons(v, cfg)
            if "not_panoramic" not in reasons and o <= -cfg.rot180_margin:
                if cfg.undo_rot180:
                    rot = True
                else:
                    reasons.append("rotated180")
            elif "not_panoramic" not in reasons and o < 0:
                flags.append("rot180_uncertain")
            if v["text_components"]:
                flags.append("burned_in_text")
            x0, y0, x1, y1 = m.trim
            if rot:  # the trim box in the rotated frame
                W, H = m.ingested_w, m.ingested_h
                x0, y0, x1, y1 = W - x1, H - y1, W - x0, H - y0
            row.update(v)
            row.update(rot180=int(rot), trim_x0=x0, trim_y0=y0, trim_x1=x1, trim_y1=y1)
        row["n_files"] = n_files.get(m.image_id, 1)
        row["_reasons"], row["_flags"], row["_rot"] = reasons, flags, rot
        rows.append(row)

    # near duplicates, compared upright
    idx = [i for i, m in enumerate(measured) if m.fingerprint is not None]
    fps = [measured[i].fingerprint.rotated180() if rows[i]["_rot"] else measured[i].fingerprint for i in idx]
    labels, pairs = duplicates.group(fps, cfg.dup_threshold, cfg.dup_max_candidates,
                                     cfg.dup_max_postings, workers)
    best = collections.defaultdict(float)
    links = collections.defaultdict(list)  # confirmed pairs: (other, mirrored?)
    for a, b, m in pairs:
        a, b = idx[a], idx[b]
        best[a] = max(best[a], m.similarity)
        best[b] = max(best[b], m.similarity)
        links[a].append((b, m.kind == "flipped"))
        links[b].append((a, m.kind == "flipped"))
    members = collections.defaultdict(list)
    for k, lab in enumerate(labels):
        members[idx[lab]].append(idx[k])
    for group in members.values():
        if len(group) == 1 and rows[group[0]]["n_files"] <= 1:
            continue

        def rank(i: int):  # the one to keep: usable, unflagged, upright, largest, then by id
            r = rows[i]
            return (bool(r["_reasons"]), bool(r["_flags"]), r["_rot"],
                    -(measured[i].ingested_w * measured[i].ingested_h), r["image_id"])

        ordered = sorted(group, key=rank)
        keeper = rows[ordered[0]]["image_id"]
        for i in ordered:
            rows[i]["dup_group"] = keeper
        for i in ordered[1:]:
            rows[i]["_reasons"].append("duplicate")
        # mirrored against the kept member: along the confirmed pairs from it
        mirrored, todo = {ordered[0]: False}, [ordered[0]]
        while todo:
            i = todo.pop()
            for j, flip in links[i]:
                if j not in mirrored:
                    mirrored[j] = mirrored[i] != flip
                    todo.append(j)
        for i in ordered[1:]:
            if mirrored.get(i):
                rows[i]["_flags"].append("flipped_copy")
    for i, row in enumerate(rows):
        row["dup_similarity"] = best.get(i, "")
        row["verdict"] = "reject" if row["_reasons"] else "keep"
        row["reasons"] = ";".join(row.pop("_reasons"))
        row["flags"] = ";".join(row.pop("_flags"))
        row.pop("_rot")
    return sorted(rows, key=lambda r: r["image_id"])


# ------------------------------------------------------------------------------------------- stage
def read_ingest_manifest(path: Path) -> tuple[list[str], dict[str, int], dict[str, str], set[str]]:
    """(distinct ok image ids, sorted; raw files per id; patient key per id; ids converted from
    true colour) from the ingest manifest."""
    ids: list[str] = []
    n_files: dict[str, int] = collections.Counter()
    patient: dict[str, str] = {}
    colour: set[str] = set()
    with open(path, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            if row.get("status") != "ok":
                continue
            iid = row["image_id"]
            if iid not in n_files:
                ids.append(iid)
            n_files[iid] += 1
            if row.get("patient_key") and not patient.get(iid):
                patient[iid] = row["patient_key"]
            if str(row.get("colour", "")).strip() == "1":
                colour.add(iid)
    return sorted(ids), dict(n_files), patient, colour


def summary(rows: list[dict], cfg: AuditConfig) -> dict:
    """The numbers for reports/audit.json (``dvc metrics show``)."""
    reasons = collections.Counter(x for r in rows for x in r["reasons"].split(";") if x)
    flags = collections.Counter(x for r in rows for x in r["flags"].split(";") if x)
    kept = sum(r["verdict"] == "keep" for r in rows)
    return {
        "images": len(rows), "kept": kept, "rejected": len(rows) - kept,
        "kept_fraction": kept / len(rows) if rows else 0.0,
        "rot180_undone": sum(int(r["rot180"] or 0) for r in rows),
        "duplicate_groups": len({r["dup_group"] for r in rows if r["dup_group"]}),
        "reasons": {k: reasons.get(k, 0) for k in REASONS},
        "flags": {k: flags.get(k, 0) for k in FLAGS},
    }


def summarise(rows: list[dict]) -> str:
    kept = sum(r["verdict"] == "keep" for r in rows)
    reasons = collections.Counter(x for r in rows for x in r["reasons"].split(";") if x)
    lines = [f"{len(rows)} images: {kept} kept, {len(rows) - kept} rejected"]
    lines += [f"  {reason}: {n}" for reason, n in reasons.most_common()]
    return "\n".join(lines)
