"""The built-in demo archive: generated OPG-like panoramic radiographs, no real patient in them.

:func:`render_opg` draws one phantom (float32 in [0, 1], bright = bone): a wide frame, maxilla and
a smile-shaped mandible with rami, upper and lower rows of teeth (enamel crowns, dentine, tapering
roots, pulp canals; a few missing, a few metal fillings) either side of a dark occlusal gap, trabecular
bone texture, zygomatic arches, nasal cavity, hard palate, cervical-spine ghosts at both sides,
soft-tissue and airway shadows, sinuses, noise. The smooth anatomy is drawn on a small grid and
scaled up, so a full-size (2900x1400) image takes a fraction of a second. :func:`build_archive` writes an archive
as a real one looks: DICOM (MONOCHROME1/2; 8, 12-in-16 with junk high bits and 16 bits; rescale,
window and VOI LUT tags; JPEG 2000 lossless and RLE), PNG 8/16, JPEG, TIFF 8/16, grey stored as
RGB; planted defects; identifying DICOM tags carrying unique marker strings; and
``ground_truth.csv`` saying what is what.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from pipeline.core import atomic
from pipeline.core.config import param
from pipeline.core.tables import write_csv
from pipeline.demo.encode import IDENTIFYING_FIELDS, dicom_bytes, encode_raster, marker_strings, to_u8  # noqa: F401  (IDENTIFYING_FIELDS, marker_strings: re-exported)

DEFECTS = ("zero_byte", "truncated", "not_image", "exact_duplicate", "near_duplicate", "underexposed",
           "overexposed", "blur", "rotated180", "not_panoramic", "burned_in_text")
REJECTED_AT_INGEST = ("zero_byte", "truncated", "not_image")
CLEAN_FORMATS = ("dicom_mono2_16", "dicom_mono1_12", "png8", "jpeg", "dicom_8bit", "tiff16",
                 "dicom_voi_lut", "png16", "png_rgb", "dicom_j2k", "tiff8", "jpeg_rgb",
                 "dicom_rle_mono1", "tiff_rgb")
GT_COLUMNS = ["file", "defect", "source", "format", "expected_status", "patient",
              "teeth_x0", "teeth_y0", "teeth_x1", "teeth_y1", "width", "height"]


@dataclass(frozen=True)
class PhantomsConfig:
    n_clean: int = param(96, ge=1)
    n_per_defect: int = param(3, ge=0)
    width: int = param(768, ge=128)    # smaller is too small to draw an OPG
    height: int = param(384, ge=64)


# ---------------------------------------------------------------------------------------- rendering
# From the midline out: central and lateral incisor, canine, two premolars, three molars.
_TOOTH_WIDTH = np.array([0.80, 0.66, 0.80, 0.76, 0.76, 1.15, 1.08, 0.98], np.float32)
_LOWRES_WIDTH = 480  # the smooth anatomy is drawn on a grid this wide, then scaled up


def _g(v: np.ndarray, c: float, s: float) -> np.ndarray:
    """A Gaussian bump exp(-((v - c) / s)^2)."""
    return np.exp(-(((v - c) / s) ** 2))


def _ramp(v: np.ndarray, soft: float) -> np.ndarray:
    """0 below 0, 1 above ``soft``: a soft step."""
    return np.clip(v / soft, 0.0, 1.0)


def _anatomy(rng: np.random.Generator, hl: int, wl: int, cx: float, half: float, occ0: float, smile: float,
             neck_up: float, neck_dn: float) -> np.ndarray:
    """The smooth attenuation map (skull, maxilla, mandible, spine, soft tissue) on a small grid.
    Coordinates are frame fractions; ``neck_up``/``neck_dn`` are the distances from the occlusal
    plane to the alveolar bone of the upper and lower jaw (the crowns stand in soft tissue)."""
    y = (np.arange(hl, dtype=np.float32)[:, None] + 0.5) / hl
    x = (np.arange(wl, dtype=np.float32)[None, :] + 0.5) / wl
    u = (x - cx) / half  # arch coordinate: 0 at the midline, +-1 at the last molars
    u2 = np.minimum(u * u, 3.0)
    occ = occ0 - smile * np.minimum(u2, 1.6)  # the occlusal plane: a smile rising to the sides
    ax = np.abs(x - cx)
    att = np.full((hl, wl), 0.05, np.float32)
    # soft tissue of the face, the tongue a little denser
    att += 0.10 * _g(x, cx, 0.42) * _g(y, 0.62, 0.5)
    att += 0.05 * _g(x, cx, 0.2) * _g(y, occ0 - 0.02, 0.08)
    att += 0.04 * _g(y, occ0, 0.06) * _ramp(1.2 - np.abs((x - cx) / half), 0.3)  # lips and cheeks
    # skull base and cheek bones above, brighter to the sides; zygomatic arches; nasal cavity
    att += 0.10 * _ramp(0.34 - y, 0.2) * (0.35 + np.minimum(ax / 0.35, 1.0))
    for side in (-1, 1):
        zx = cx + side * rng.uniform(0.27, 0.31)
        zy = occ0 - rng.uniform(0.27, 0.31) + 0.8 * (x - zx) ** 2
        att += 0.10 * _g(y, zy, 0.014) * _ramp(0.16 - np.abs(x - zx), 0.06)
    att -= 0.08 * _g(x, cx, 0.055) * _g(y, occ0 - 0.40, 0.12)
    att += 0.04 * _g(x, cx, 0.004) * _ramp(occ0 - 0.27 - y, 0.03)  # nasal septum
    # maxilla (alveolar bone down to the crown necks), hard palate, maxillary sinuses
    up_edge = occ - neck_up
    maxilla = _ramp(y - (occ0 - 0.30), 0.05) * _ramp(up_edge - y, 0.012) * _ramp(1.25 - np.abs(u), 0.15)
    att += 0.17 * maxilla
    att += 0.11 * _g(y, occ0 - 0.265 + 0.03 * u2, 0.010) * _ramp(1.05 - np.abs(u), 0.15)
    for side in (-1, 1):
        sx, sy = cx + side * rng.uniform(0.13, 0.17), occ0 - rng.uniform(0.32, 0.36)
        sinus = _g(x, sx, 0.085) * _g(y, sy, 0.07)
        att -= 0.09 * sinus
        att += 0.05 * _g(y, sy + 0.07, 0.008) * _ramp(0.09 - np.abs(x - sx), 0.03)  # sinus floor
    # the palatoglossal air space: a dark band over the upper roots
    att -= 0.06 * _g(y, occ - neck_up - rng.uniform(0.11, 0.14), 0.02) * _ramp(1.3 - np.abs(u), 0.2)
    # mandible: a U-shaped body, lowest at the chin, with a bright cortical lower border
    low = occ0 + rng.uniform(0.33, 0.37) - 0.125 * np.minimum(u2, 1.7)
    dn_edge = occ + neck_dn
    reach = _ramp(1.3 - np.abs(u), 0.1)
    body = _ramp(y - dn_edge, 0.012) * _ramp(low - y, 0.01) * reach
    att += 0.22 * body + 0.06 * _g(x, cx, 0.08) * body
    att += 0.13 * _g(y, low - 0.012, 0.009) * reach
    # rami rising from the angles to the condyles, leaning outwards; the pharyngeal airway across them
    for side in (-1, 1):
        top, bottom = occ0 - rng.uniform(0.25, 0.29), occ0 + rng.uniform(0.15, 0.18)
        t = np.clip((bottom - y) / (bottom - top), 0, 1)  # 0 at the angle, 1 at the condyle
        rx = cx + side * half * (1.17 + 0.18 * t)
        width = 0.036 - 0.014 * t
        along = _ramp(y - top, 0.03) * _ramp(bottom + 0.02 - y, 0.04)
        att += 0.18 * _ramp(width - np.abs(x - rx), 0.02) * along
        att += 0.06 * _g(np.abs(x - rx), width, 0.007) * along  # cortical edges
        att += 0.06 * _g(x, rx + side * 0.01, 0.04) * _g(y, bottom, 0.04)  # the angle
        att += 0.14 * _g(x, rx, 0.024) * _g(y, top, 0.025)  # condyle
        airway_x = cx + side * half * (1.18 + 0.25 * (y - occ0))
        att -= 0.05 * _g(x, airway_x, 0.018) * _ramp(y - (occ0 - 0.2), 0.1) * _ramp(occ0 + 0.32 - y, 0.1)
    # cervical-spine ghosts: blurred bright vertical bands at both edges, vertebrae stacked in them
    period, phase = rng.uniform(0.10, 0.13), rng.uniform(0, 1)
    vertebrae = 0.65 + 0.35 * np.cos(np.pi * (y / period + phase)) ** 2
    for side in (-1, 1):
        sx = cx + side * rng.uniform(0.42, 0.46)
        att += 0.20 * _g(x, sx, 0.035) * _ramp(y - 0.18, 0.2) * vertebrae
    # trabecular texture in the bone
    bone = np.clip(maxilla + body + 0.5 * _ramp(0.3 - y, 0.3), 0, 1)
    noise = rng.standard_normal((hl, wl), dtype=np.float32)
    fine = cv2.GaussianBlur(noise, (0, 0), 0.8)
    texture = fine - cv2.GaussianBlur(fine, (0, 0), 3.0)
    att += 0.10 * bone * texture
    return cv2.GaussianBlur(att, (0, 0), 0.8)


def render_opg(rng: np.random.Generator, height: int, width: int,
               drop: frozenset = frozenset()) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """One phantom OPG: (float32 image in [0, 1], bright = dense; teeth box (x0, y0, x1, y1), half-open
    pixels, around every drawn tooth, crowns and roots). Positions, sizes, missing teeth, fillings
    and contrast are drawn from ``rng``. ``drop``: teeth (jaw -1 upper / +1 lower, side -1 / +1,
    k 0 central incisor .. 7 third molar) left out as well (tests: a lone tooth far out); with none
    dropped the drawing is exactly as before (the demo archive does not change)."""
    h, w = height, width
    cx = 0.5 + rng.uniform(-0.02, 0.02)
    half = rng.uniform(0.245, 0.275)  # half-width of the dental arch (frame fraction)
    occ0 = rng.uniform(0.53, 0.58)  # occlusal plane height at the midline
    smile = rng.uniform(0.035, 0.065)
    gap = rng.uniform(0.015, 0.03)  # the dark occlusal gap
    # real OPGs: the lower root apices lie ~60 % of the way from the occlusal gap to the mandible's border
    crown_h, root_h = rng.uniform(0.068, 0.08), rng.uniform(0.105, 0.13)
    neck_up, neck_dn = gap / 2 + crown_h * 0.82, gap / 2 + crown_h * 0.78  # alveolar crests

    f = max(1.0, w / _LOWRES_WIDTH)
    hl, wl = max(8, round(h / f)), max(8, round(w / f))
    att = cv2.resize(_anatomy(rng, hl, wl, cx, half, occ0, smile, neck_up, neck_dn), (w, h),
                     interpolation=cv2.INTER_LINEAR)

    teeth = np.zeros((h, w), np.float32)
    box = [float(w), float(h), 0.0, 0.0]
    widths = _TOOTH_WIDTH * rng.uniform(0.95, 1.05, 8).astype(np.float32)
    edges = np.concatenate([[0.0], np.cumsum(widths)]) / widths.sum()
    for jaw in (-1, 1):  # -1 upper, +1 lower
        for side in (-1, 1):
            for k in range(8):
                if (k == 7 and rng.random() < 0.3) or (k >= 3 and rng.random() < 0.06):
                    continue  # a missing tooth (wisdom teeth more often)
                if (jaw, side, k) in drop:
                    continue
                a, b = edges[k] * 0.985 + 0.004, edges[k + 1] * 0.985 - 0.004
                xa, xb = sorted(((cx + side * a * half) * w, (cx + side * b * half) * w))
                um = side * (a + b) / 2
                base_y = (occ0 - smile * min(um * um, 1.6)) * h + jaw * gap * h / 2
                tilt = side * jaw * 0.15 * abs(um) + rng.normal(0, 0.04)
                ch = crown_h * h * (1.0 if k < 5 else 0.9) * rng.uniform(0.93, 1.07)
                rh = root_h * h * (1.15 if k == 2 else 1.0) * rng.uniform(0.9, 1.1) * (0.95 if jaw < 0 else 1.0)
                polys = _tooth_polygons(xa, xb, base_y, jaw, ch, rh, tilt, k >= 5)
                if k >= 3 and rng.random() < 0.12:  # a metal filling in the crown
                    fy = base_y + jaw * ch * rng.uniform(0.1, 0.25)
                    fw = (xb - xa) * rng.uniform(0.2, 0.35)
                    mid = (xa + xb) / 2 + (xb - xa) * rng.uniform(-0.1, 0.1)
                    polys.append((np.array([(mid - fw, fy), (mid + fw, fy), (mid + fw * 0.8, fy + jaw * ch * 0.35),
                                            (mid - fw * 0.8, fy + jaw * ch * 0.35)], np.float32), 1.1))
                for poly, value in polys:
                    cv2.fillPoly(teeth, [np.round(poly * 16).astype(np.int32)], float(value), cv2.LINE_AA, shift=4)
                pts = np.concatenate([p for p, _ in polys])
                box = [min(box[0], pts[:, 0].min()), min(box[1], pts[:, 1].min()),
                       max(box[2], pts[:, 0].max()), max(box[3], pts[:, 1].max())]
    s = min(h / 384.0, w / 768.0)
    teeth = cv2.GaussianBlur(teeth, (0, 0), 0.9 * s)
    img = att + teeth  # attenuation adds up: roots show through the bone
    img += rng.standard_normal((h, w), dtype=np.float32) * np.float32(0.016)  # quantum noise
    img = cv2.GaussianBlur(img, (0, 0), 0.6 * s)  # detector blur
    xv = (np.arange(w, dtype=np.float32) / w - 0.5) ** 2
    yv = (np.arange(h, dtype=np.float32)[:, None] / h - 0.5) ** 2
    img *= 1.0 - 0.35 * xv - 0.2 * yv  # a soft vignette
    # exposure and contrast of this image: a gain, an offset and a gamma
    gain, offset, gamma = rng.uniform(1.05, 1.3), rng.uniform(-0.02, 0.04), rng.uniform(0.85, 1.15)
    img = np.clip(img * np.float32(gain) + np.float32(offset), 0, 1)
    img = cv2.pow(img, gamma)
    x0, y0 = int(np.floor(max(box[0], 0))), int(np.floor(max(box[1], 0)))
    x1, y1 = int(np.ceil(min(box[2], w))), int(np.ceil(min(box[3], h)))
    return img.astype(np.float32, copy=False), (x0, y0, x1, y1)


def _tooth_polygons(xl: float, xr: float, base_y: float, jaw: int, crown_h: float, root_h: float, tilt: float,
                    molar: bool) -> list[tuple[np.ndarray, float]]:
    """Polygons (N x 2, float px) with their attenuation, drawn in order, for one tooth growing
    away from the occlusal plane (``jaw`` -1: upward, +1: downward): roots, dentine crown, enamel
    cap, pulp canal."""
    wdt = xr - xl
    mid = (xl + xr) / 2
    d = jaw  # direction away from the occlusal plane in image rows: upper teeth go up (-y)
    t = np.linspace(0, np.pi, 11)
    bulge = 0.14 if molar else 0.08
    edge = [(mid - wdt / 2 * np.cos(a), base_y + d * bulge * crown_h * (1 - np.sin(a))) for a in t]
    neck_y = base_y + d * crown_h
    crown = np.array(edge + [(xr - 0.02 * wdt, base_y + d * 0.6 * crown_h), (xr - 0.10 * wdt, neck_y),
                             (xl + 0.10 * wdt, neck_y), (xl + 0.02 * wdt, base_y + d * 0.6 * crown_h)], np.float32)
    enamel = np.array(edge + [(xr - 0.03 * wdt, base_y + d * 0.5 * crown_h),
                              (xl + 0.03 * wdt, base_y + d * 0.5 * crown_h)], np.float32)
    apex = tilt * root_h
    polys = []
    roots = ((xl + 0.10 * wdt, mid - 0.03 * wdt), (mid + 0.03 * wdt, xr - 0.10 * wdt)) if molar else \
        ((xl + 0.12 * wdt, xr - 0.12 * wdt),)
    for rx0, rx1 in roots:
        c, rw = (rx0 + rx1) / 2, rx1 - rx0
        polys.append((np.array([(rx0, neck_y - d * 0.05 * crown_h), (rx1, neck_y - d * 0.05 * crown_h),
                                (c + 0.30 * rw + apex, neck_y + d * 0.7 * root_h),
                                (c + 0.08 * rw + apex, neck_y + d * root_h),
                                (c - 0.08 * rw + apex, neck_y + d * root_h),
                                (c - 0.30 * rw + apex, neck_y + d * 0.7 * root_h)], np.float32), 0.21))
    polys.append((crown, 0.40))
    polys.append((enamel, 0.56))
    canal = np.array([(mid - 0.07 * wdt, base_y + d * 0.5 * crown_h), (mid + 0.07 * wdt, base_y + d * 0.5 * crown_h),
                      (mid + 0.015 * wdt + apex, neck_y + d * 0.85 * root_h),
                      (mid - 0.015 * wdt + apex, neck_y + d * 0.85 * root_h)], np.float32)
    polys.append((canal, 0.18))
    return polys


def render_periapical(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A non-panoramic intra-oral view: two or three big vertical teeth filling a portrait frame."""
    img = np.full((height, width), 0.15, np.float32)
    n = int(rng.integers(2, 4))
    for i in range(n):
        xl = width * (0.08 + i * 0.84 / n)
        xr = xl + width * 0.84 / n * 0.85
        for poly, v in _tooth_polygons(xl, xr, height * 0.45, -1, height * 0.3, height * 0.12, 0.0, False):
            cv2.fillPoly(img, [np.round(poly * 16).astype(np.int32)], float(v), cv2.LINE_AA, shift=4)
        for poly, v in _tooth_polygons(xl, xr, height * 0.52, 1, height * 0.25, height * 0.2, 0.0, i == 0):
            cv2.fillPoly(img, [np.round(poly * 16).astype(np.int32)], float(v), cv2.LINE_AA, shift=4)
    img = cv2.GaussianBlur(img, (0, 0), 2.0) + rng.normal(0, 0.02, img.shape).astype(np.float32)
    return np.clip(img, 0, 1)


_EXT = {"png": ".png", "jpeg": ".jpg", "tiff": ".tif", "dicom": ".dcm"}


def _family(kind: str) -> str:
    return "dicom" if kind.startswith("dicom") else "png" if kind.startswith("png") else \
        "jpeg" if kind.startswith("jpeg") else "tiff"


def _box(box, scale_x=1.0, scale_y=1.0, dx=0.0, dy=0.0, size=None, rot180=False):
    x0, y0, x1, y1 = box
    x0, x1 = x0 * scale_x - dx, x1 * scale_x - dx
    y0, y1 = y0 * scale_y - dy, y1 * scale_y - dy
    if rot180:
        w, h = size
        x0, x1, y0, y1 = w - x1, w - x0, h - y1, h - y0
    return [int(np.floor(x0)), int(np.floor(y0)), int(np.ceil(x1)), int(np.ceil(y1))]


def _burn_text(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    h, w = img.shape
    mask = np.zeros((h, w), np.uint8)
    scale = h / 260.0
    texts = [("L", (int(w * 0.93), int(h * 0.93))), ("SE:1 IM:1", (int(w * 0.02), int(h * 0.07))),
             ("R", (int(w * 0.03), int(h * 0.93)))]
    for text, org in texts[: int(rng.integers(2, 4))]:
        cv2.putText(mask, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, 255, max(1, int(2 * scale)), cv2.LINE_AA)
    return np.maximum(img, mask.astype(np.float32) / 255.0)


def _clean_name(i: int, kind: str) -> str:
    fam = _family(kind)
    sub = {"dicom": f"dicom/{2020 + i % 5}", "png": "png", "jpeg": "jpeg/export", "tiff": "tiff"}[fam]
    return f"{sub}/opg_{i:04d}{_EXT[fam]}"


# the formats each defect is written in, cycled over its instances (truncation hits DICOM first)
_DEFECT_KINDS = {"truncated": ("dicom_mono2_16", "png8", "jpeg", "tiff16")}
_DEFAULT_DEFECT_KINDS = ("png8", "jpeg", "dicom_mono2_16", "tiff16", "png16")
# lossless re-saves that decode to the same pixels (8-bit grey scaled x257 is 16-bit grey)
_RESAVE = {"png8": "tiff8", "tiff8": "png16", "png_rgb": "png8", "tiff_rgb": "tiff8", "dicom_8bit": "png8",
           "png16": "tiff16", "tiff16": "png16"}
_NOT_IMAGE = (b"Referral letter\nPlease see the attached radiograph.\n",
              b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n%%EOF\n",
              b"<html><body>Export failed: disk full</body></html>\n")


def _near_copy(img: np.ndarray, box, rng: np.random.Generator, cfg: PhantomsConfig) -> tuple[np.ndarray, list]:
    """(image, teeth box): ``img`` smaller and slightly cropped (a re-export)."""
    f = float(rng.uniform(0.8, 0.95))
    sw, sh = round(cfg.width * f), round(cfg.height * f)
    small = cv2.resize(img, (sw, sh), interpolation=cv2.INTER_AREA)
    cx_, cy_ = int(sw * rng.uniform(0, 0.03)), int(sh * rng.uniform(0, 0.03))
    small = small[cy_:, cx_:]
    b = _box(box, sw / cfg.width, sh / cfg.height, cx_, cy_)
    return small, [max(b[0], 0), max(b[1], 0), min(b[2], small.shape[1]), min(b[3], small.shape[0])]


def _degraded(d: str, img: np.ndarray | None, box, rng: np.random.Generator, seed: int, j: int,
              cfg: PhantomsConfig) -> tuple[np.ndarray, list]:
    """(image, teeth box) of image defect ``d`` planted in ``img`` (not_panoramic: an intra-oral view instead)."""
    b = list(box)
    if d == "underexposed":  # 65-85% of the frame below 0.05
        q = float(np.quantile(img, rng.uniform(0.65, 0.85))) ** 2.2
        bad = np.power(img, 2.2) * np.float32(min(0.3, 0.05 / max(q, 1e-6)))
    elif d == "overexposed":  # 65-85% of the frame clipped to white
        q, g = float(np.quantile(img, rng.uniform(0.15, 0.35))), rng.uniform(1.5, 2.0)
        bad = np.clip(img * np.float32(g) + np.float32(0.97 - g * q), 0, 1)
    elif d == "blur":
        bad = cv2.GaussianBlur(img, (0, 0), 0.012 * cfg.width)
    elif d == "rotated180":
        bad = np.ascontiguousarray(img[::-1, ::-1])
        b = _box(box, size=(cfg.width, cfg.height), rot180=True)
    elif d == "burned_in_text":
        bad = _burn_text(img, rng)
    else:  # not_panoramic: a square or portrait intra-oral view
        side = cfg.height
        bad = render_periapical(np.random.default_rng([seed, 999, j]), side, int(side * (0.8 if j % 2 else 1.0)))
        b = ["", "", "", ""]
    return bad, b


def build_archive(out_dir: str | os.PathLike, cfg: PhantomsConfig, seed: int, progress: bool = True) -> Path:
    """Write the demo archive and its ground_truth.csv into ``out_dir`` (replaced atomically).

    One image in memory at a time: a defect's source is rendered again from its own seed."""
    from tqdm import tqdm

    out_dir = Path(out_dir)
    rng = np.random.default_rng([seed, 0xD3A0])
    gt: list[dict] = []

    def render(i: int) -> tuple[np.ndarray, tuple[int, int, int, int]]:
        return render_opg(np.random.default_rng([seed, i]), cfg.height, cfg.width)

    def encode(img, kind, patient, study):
        if kind.startswith("dicom"):
            return dicom_bytes(img, kind, rng, seed, patient, study)
        return encode_raster(img, kind)

    with atomic.directory(out_dir) as tmp:
        def put(rel: str, data: bytes, box=("", "", "", ""), size=("", ""), **row) -> None:
            p = tmp / rel
            if p.exists():
                raise FileExistsError(f"phantoms: {rel} written twice")
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(data)
            where = dict(zip(GT_COLUMNS[6:], [*box, *size]))  # teeth box, width, height
            gt.append({c: row.get(c, "") for c in GT_COLUMNS} | {"file": rel} | where)

        clean = []  # (index, rel, kind, box, patient): images are rendered again when needed
        n_patients = max(1, int(np.ceil(cfg.n_clean * 0.8)))
        for i in tqdm(range(cfg.n_clean), desc="phantoms", unit="img", disable=not progress):
            img, box = render(i)
            kind = CLEAN_FORMATS[i % len(CLEAN_FORMATS)]
            # DICOM images past n_patients are second studies (a later visit, a new image) of earlier patients
            second = kind.startswith("dicom") and i >= n_patients
            patient = f"P{(i - n_patients if second else i) + 1:03d}"
            rel = _clean_name(i, kind)
            put(rel, encode(img, kind, patient, 2 if second else 1), box, (cfg.width, cfg.height), format=kind,
                expected_status="ok", patient=patient)
            clean.append((i, rel, kind, box, patient))

        n_defects = cfg.n_per_defect * len(DEFECTS)
        bar = tqdm(total=n_defects, desc="defects", unit="file", disable=not progress or not n_defects)
        for d in DEFECTS:
            kinds = _DEFECT_KINDS.get(d, _DEFAULT_DEFECT_KINDS)
            for j in range(cfg.n_per_defect):
                bar.update()
                pick = clean[int(rng.integers(len(clean)))]
                if d == "exact_duplicate" and j % 2 == 1:  # the same pixels re-saved in another lossless format
                    lossless = [c for c in clean if c[2] in _RESAVE]
                    pick = lossless[int(rng.integers(len(lossless)))] if lossless else pick
                i, src_rel, src_kind, box, patient = pick
                kind = kinds[j % len(kinds)]
                fam = _family(kind)
                base = f"defects/{d}_{j}"
                common = dict(defect=d, source=src_rel, patient=patient)
                full = (cfg.width, cfg.height)
                if d == "zero_byte":
                    put(f"{base}{_EXT[fam]}", b"", format=kind, expected_status="rejected", **common)
                elif d == "truncated":  # cut inside the pixel data (past the headers, before the end)
                    data = encode(render(i)[0], kind, patient, 9)
                    put(f"{base}{_EXT[fam]}", data[: int(len(data) * rng.uniform(0.5, 0.8))], format=kind,
                        expected_status="rejected", **common)
                elif d == "not_image":
                    put(f"{base}{_EXT[fam]}", _NOT_IMAGE[j % len(_NOT_IMAGE)], format="unknown",
                        expected_status="rejected", **common)
                elif d == "exact_duplicate":
                    stem, suffix = Path(src_rel).stem, Path(src_rel).suffix
                    if src_kind in _RESAVE and j % 2 == 1:
                        to = _RESAVE[src_kind]
                        img = render(i)[0]
                        if src_kind in ("png16", "tiff16"):
                            data = encode_raster(img, to)
                        else:  # exactly the 8-bit values the source holds
                            img = to_u8(img).astype(np.float32) / 255.0
                            data = encode_raster(img, to)
                        put(f"copies/{stem}_resaved_{j}{_EXT[_family(to)]}", data, box, full, format=to,
                            expected_status="ok", **common)
                    else:  # a byte copy elsewhere in the archive
                        put(f"copies/{stem}_copy_{j}{suffix}", (tmp / src_rel).read_bytes(), box, full,
                            format=src_kind, expected_status="ok", **common)
                elif d == "near_duplicate":  # smaller, slightly cropped, re-encoded as JPEG
                    small, b = _near_copy(render(i)[0], box, rng, cfg)
                    put(f"{base}.jpg", encode_raster(small, "jpeg"), b, (small.shape[1], small.shape[0]),
                        format="jpeg", expected_status="ok", **common)
                else:
                    img = render(i)[0] if d != "not_panoramic" else None
                    bad, b = _degraded(d, img, box, rng, seed, j, cfg)
                    put(f"{base}{_EXT[fam]}", encode(bad.astype(np.float32), kind, patient, 3 + j), b,
                        (bad.shape[1], bad.shape[0]), format=kind, expected_status="ok", **common)
        bar.close()
        write_csv(tmp / "ground_truth.csv", GT_COLUMNS, sorted(gt, key=lambda r: r["file"]))
    return out_dir
