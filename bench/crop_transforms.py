"""Device-like transforms of an annotated OPG, for checking the teeth crop beyond one device's framing.

Each transform maps (image, teeth box) to (image, teeth box) the way another device or another
setting would frame the same jaw: a wider or narrower field of view (zoom 0.7-1.3x, the frame
padded or cropped), another aspect (1.7-2.3, by resampling the width or by cropping/padding the
sides), the jaw off centre (horizontal and vertical offsets), collimator or padding bands at the
border, and another gamma. Padding is either a flat value (a padded export, a collimator) or the
image mirrored (more anatomy in view: spine, skull, shoulders). The teeth box after the transform
is clipped to the new frame: a crop is judged on the teeth the new frame still shows.

Transforms work on float32 [0, 1] images; the box is (x0, y0, x1, y1) in pixels, half-open.
"""
from __future__ import annotations

import cv2
import numpy as np

Box = tuple[float, float, float, float]


def _affine(img: np.ndarray, box: Box, sx: float, sy: float, out_w: int, out_h: int, tx: float, ty: float,
            pad: str) -> tuple[np.ndarray, Box]:
    """x' = sx x + tx, y' = sy y + ty into an out_w x out_h frame; uncovered pixels padded."""
    m = np.array([[sx, 0, tx], [0, sy, ty]], np.float64)
    if pad == "mirror":
        border, value = cv2.BORDER_REFLECT_101, 0.0
    else:
        border, value = cv2.BORDER_CONSTANT, {"black": 0.0, "white": 1.0, "grey": 0.5}[pad]
    interp = cv2.INTER_AREA if sx < 1 and sy < 1 else cv2.INTER_LINEAR
    if interp == cv2.INTER_AREA:  # warpAffine has no area filter: shrink first, then place
        small = cv2.resize(img, (max(1, round(img.shape[1] * sx)), max(1, round(img.shape[0] * sy))),
                           interpolation=cv2.INTER_AREA)
        m2 = np.array([[1, 0, tx], [0, 1, ty]], np.float64)
        out = cv2.warpAffine(small, m2, (out_w, out_h), flags=cv2.INTER_LINEAR, borderMode=border,
                             borderValue=value)
    else:
        out = cv2.warpAffine(img, m, (out_w, out_h), flags=interp, borderMode=border, borderValue=value)
    x0, y0, x1, y1 = box
    nb = (sx * x0 + tx, sy * y0 + ty, sx * x1 + tx, sy * y1 + ty)
    nb = (max(0.0, nb[0]), max(0.0, nb[1]), min(float(out_w), nb[2]), min(float(out_h), nb[3]))
    return out.astype(np.float32, copy=False), nb


def zoom(img, box, f: float, pad: str = "black"):
    """Content scaled by ``f`` about the frame centre, same frame: f < 1 pads the border, f > 1 crops it."""
    h, w = img.shape
    return _affine(img, box, f, f, w, h, (1 - f) * w / 2, (1 - f) * h / 2, pad)


def aspect_stretch(img, box, a: float):
    """The width resampled so that width / height = ``a`` (another horizontal magnification)."""
    h, w = img.shape
    nw = round(a * h)
    return _affine(img, box, nw / w, 1.0, nw, h, 0.0, 0.0, "black")


def aspect_frame(img, box, a: float, pad: str = "mirror"):
    """The sides cropped or padded so that width / height = ``a`` (another horizontal field of view)."""
    h, w = img.shape
    nw = round(a * h)
    return _affine(img, box, 1.0, 1.0, nw, h, (nw - w) / 2, 0.0, pad)


def shift(img, box, dx: float, dy: float, pad: str = "mirror"):
    """The content moved by (dx, dy) shares of the frame; what leaves is cropped, what enters padded."""
    h, w = img.shape
    return _affine(img, box, 1.0, 1.0, w, h, dx * w, dy * h, pad)


def bands(img, box, left: float, top: float, right: float, bottom: float, value: float):
    """Flat bands (a collimator or a padded export) over the border, each a share of the frame;
    the frame keeps its size and the teeth box is not changed (bands are kept off the teeth by
    the callers' choice of widths)."""
    h, w = img.shape
    out = img.copy()
    rng = np.random.default_rng(0)
    for sl in (np.s_[:, :round(left * w)], np.s_[:round(top * h), :], np.s_[:, w - round(right * w):],
               np.s_[h - round(bottom * h):, :]):
        region = out[sl]
        if region.size:
            out[sl] = np.clip(value + rng.normal(0, 0.01, region.shape), 0, 1)
    x0, y0, x1, y1 = box
    # a band over the teeth hides them: the box shrinks to what is still visible
    nb = (max(x0, left * w), max(y0, top * h), min(x1, w - right * w), min(y1, h - bottom * h))
    return out.astype(np.float32), nb


def gamma(img, box, g: float):
    return cv2.pow(np.clip(img, 0, 1), g).astype(np.float32), box


# name -> function(img, box) -> (img, box); every range the issue names, at its ends and between
TRANSFORMS = {
    "identity": lambda im, b: (im, b),
    "zoom 0.7 pad black": lambda im, b: zoom(im, b, 0.7, "black"),
    "zoom 0.7 pad mirror": lambda im, b: zoom(im, b, 0.7, "mirror"),
    "zoom 0.85 pad white": lambda im, b: zoom(im, b, 0.85, "white"),
    "zoom 1.15 crop": lambda im, b: zoom(im, b, 1.15),
    "zoom 1.3 crop": lambda im, b: zoom(im, b, 1.3),
    "aspect 1.7 stretch": lambda im, b: aspect_stretch(im, b, 1.7),
    "aspect 2.3 stretch": lambda im, b: aspect_stretch(im, b, 2.3),
    "aspect 1.7 crop sides": lambda im, b: aspect_frame(im, b, 1.7),
    "aspect 2.3 pad mirror": lambda im, b: aspect_frame(im, b, 2.3, "mirror"),
    "aspect 2.3 pad black": lambda im, b: aspect_frame(im, b, 2.3, "black"),
    "shift left 0.12": lambda im, b: shift(im, b, -0.12, 0.0),
    "shift right 0.12": lambda im, b: shift(im, b, 0.12, 0.0),
    "shift up 0.1": lambda im, b: shift(im, b, 0.0, -0.1),
    "shift down 0.1": lambda im, b: shift(im, b, 0.0, 0.1),
    "shift left 0.2 pad black": lambda im, b: shift(im, b, -0.2, 0.0, "black"),
    "bands black 0.08": lambda im, b: bands(im, b, 0.08, 0.08, 0.08, 0.08, 0.0),
    "bands white 0.06 + left 0.15": lambda im, b: bands(im, b, 0.15, 0.06, 0.06, 0.06, 1.0),
    "bands grey top 0.15 bottom 0.05": lambda im, b: bands(im, b, 0.0, 0.15, 0.0, 0.05, 0.5),
    "gamma 0.6": lambda im, b: gamma(im, b, 0.6),
    "gamma 1.6": lambda im, b: gamma(im, b, 1.6),
}


def random_device(img, box, rng: np.random.Generator):
    """One draw of everything at once, within the issue's ranges: zoom, aspect, offsets, bands, gamma."""
    pad = str(rng.choice(["black", "white", "mirror", "grey"]))
    img, box = zoom(img, box, float(rng.uniform(0.7, 1.3)), pad)
    a = float(rng.uniform(1.7, 2.3))
    img, box = (aspect_stretch(img, box, a) if rng.random() < 0.5 else aspect_frame(img, box, a, pad))
    img, box = shift(img, box, float(rng.uniform(-0.1, 0.1)), float(rng.uniform(-0.08, 0.08)), pad)
    if rng.random() < 0.5:
        img, box = bands(img, box, *(float(v) for v in rng.uniform(0, 0.07, 4)), float(rng.choice([0.0, 1.0])))
    return gamma(img, box, float(np.exp(rng.uniform(np.log(0.6), np.log(1.6)))))


def resolution(img, box, f: float):
    """A detector with ``f`` times the resolution (a blurred picture, same frame)."""
    h, w = img.shape
    small = cv2.resize(img, (max(8, round(w * f)), max(8, round(h * f))), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR).astype(np.float32), box


def noise(img, box, sd: float):
    """Sensor noise: Gaussian, ``sd`` of the grey range (a fixed draw: the bench is repeatable)."""
    rng = np.random.default_rng(0)
    return np.clip(img + rng.normal(0, sd, img.shape), 0, 1).astype(np.float32), box


def mirror(img, box):
    """Left and right swapped (a device that stores the other side on the left)."""
    w = img.shape[1]
    return np.ascontiguousarray(img[:, ::-1]), (w - box[2], box[1], w - box[0], box[3])


def contrast(img, box, lo: float, hi: float):
    """The grey range squeezed into [lo, hi] (a flat, foggy exposure)."""
    return (lo + (hi - lo) * np.clip(img, 0, 1)).astype(np.float32), box


# beyond the ranges, to see where the crop stops holding (a device may frame more tightly than
# zoom 1.3) and what the ranges leave out (resolution, noise, a mirrored store, contrast)
BEYOND = {
    "zoom 1.45 crop": lambda im, b: zoom(im, b, 1.45),
    "zoom 1.6 crop": lambda im, b: zoom(im, b, 1.6),
    "zoom 0.55 pad black": lambda im, b: zoom(im, b, 0.55, "black"),
    "aspect 1.5 stretch": lambda im, b: aspect_stretch(im, b, 1.5),
    "aspect 2.6 stretch": lambda im, b: aspect_stretch(im, b, 2.6),
    "shift left 0.25": lambda im, b: shift(im, b, -0.25, 0.0),
    "shift up 0.15": lambda im, b: shift(im, b, 0.0, -0.15),
    "shift down 0.15": lambda im, b: shift(im, b, 0.0, 0.15),
    "resolution 0.3": lambda im, b: resolution(im, b, 0.3),
    "noise 0.1": lambda im, b: noise(im, b, 0.1),
    "mirrored": mirror,
    "contrast 0.3-0.7": lambda im, b: contrast(im, b, 0.3, 0.7),
    "gamma 0.45": lambda im, b: gamma(im, b, 0.45),
    "gamma 2.2": lambda im, b: gamma(im, b, 2.2),
}
