"""Letterbox keeps geometry: circles stay circles, boxes map forward and back within 1 px."""
import cv2
import numpy as np
import pytest

from pipeline.core import config
from pipeline.variants import geometry
from pipeline.variants.letterbox import LetterboxConfig, fit

VARIANTS = {
    "16x9": config.Variant("full", "16:9", "letterbox", 72, 128),
    "square": config.Variant("teeth", "square", "letterbox", 64, 64),
    "tall_src_16x9": config.Variant("full", "16:9", "letterbox", 90, 160),
}


def _axis_ratio(mask: np.ndarray) -> float:
    m = cv2.moments(mask.astype(np.uint8), binaryImage=True)
    cov = np.array([[m["mu20"], m["mu11"]], [m["mu11"], m["mu02"]]]) / m["m00"]
    ev = np.linalg.eigvalsh(cov)
    return float(np.sqrt(ev[1] / ev[0]))


@pytest.mark.parametrize("src_hw", [(384, 768), (300, 700), (500, 420)])
@pytest.mark.parametrize("name", list(VARIANTS))
def test_circle_stays_circle(src_hw, name):
    h, w = src_hw
    img = np.zeros((h, w), np.uint16)
    r = min(h, w) // 4
    cv2.circle(img, (w // 2 + 7, h // 2 - 5), r, 65535, -1)
    out, t = fit(img, VARIANTS[name], LetterboxConfig())
    assert out.shape == (VARIANTS[name].height, VARIANTS[name].width)
    ratio = _axis_ratio(out > 0.5)
    assert ratio < 1.06, f"circle became an ellipse with axis ratio {ratio:.3f}"
    assert abs(t.scale_x - t.scale_y) / t.scale_x < 0.03
    # the same circle squashed (the old baseline) is visibly an ellipse whenever the aspect changes
    squash = config.Variant("full", "16:9", "squash", VARIANTS[name].height, VARIANTS[name].width)
    out_sq, _ = fit(img, squash, LetterboxConfig())
    if abs((w / h) / (squash.width / squash.height) - 1) > 0.2:
        assert _axis_ratio(out_sq > 0.5) > 1.15


@pytest.mark.parametrize("mode", ["letterbox", "squash"])
def test_box_forward_and_back(mode):
    rng = np.random.default_rng(0)
    for _ in range(200):
        sw, sh = int(rng.integers(50, 3000)), int(rng.integers(50, 1600))
        ow, oh = int(rng.integers(32, 600)), int(rng.integers(32, 600))
        t = geometry.plan(sw, sh, ow, oh, mode)
        x0, x1 = sorted(rng.uniform(0, sw, 2))
        y0, y1 = sorted(rng.uniform(0, sh, 2))
        fwd = t.forward_box((x0, y0, x1, y1))
        assert 0 <= fwd[0] <= fwd[2] <= ow + 1e-6 and 0 <= fwd[1] <= fwd[3] <= oh + 1e-6
        # rounded to output pixels, as a detection on a generated image would be
        back = t.inverse_box(tuple(np.round(fwd)))
        tol = max(1.0, 0.5 / min(t.scale_x, t.scale_y))  # half an output pixel in source px
        assert np.allclose(back, (x0, y0, x1, y1), atol=tol)
        assert np.allclose(t.inverse_box(fwd), (x0, y0, x1, y1), atol=1e-6)


def test_transform_matches_the_pixels():
    """The content box of the transform is where the image lands; the padding holds pad_value."""
    img = np.full((120, 400), 65535, np.uint16)
    v = config.Variant("full", "square", "letterbox", 64, 64)
    out, t = fit(img, v, LetterboxConfig(pad_value=0.25))
    x0, y0, x1, y1 = t.content_box()
    assert (x0, x1) == (0, 64) and y1 - y0 == round(120 * 64 / 400)
    assert np.allclose(out[y0:y1, x0:x1], 1.0)
    lsb = 1 / 65535  # the letterbox works (and writes) in 16 bits: pad_value is its nearest 16-bit grey
    assert np.allclose(out[:y0], 0.25, atol=lsb) and np.allclose(out[y1:], 0.25, atol=lsb)
    # a point lands where the transform says
    img2 = np.zeros((120, 400), np.uint16)
    img2[60:70, 300:310] = 65535
    out2, t2 = fit(img2, v, LetterboxConfig())
    ys, xs = np.nonzero(out2 > 0.2)
    u, vv = t2.forward_points([305.0, 65.0])
    assert abs(xs.mean() + 0.5 - u) < 1 and abs(ys.mean() + 0.5 - vv) < 1


def test_inverse_image_round_trip():
    rng = np.random.default_rng(1)
    src = cv2.GaussianBlur(rng.random((200, 500)).astype(np.float32), (0, 0), 8)
    v = config.Variant("full", "16:9", "letterbox", 144, 256)
    out, t = fit(src, v, LetterboxConfig())
    back = t.inverse_image(out)
    assert back.shape == src.shape
    assert np.abs(back - src)[5:-5, 5:-5].mean() < 0.01
    row = t.row("abc")
    assert geometry.Transform.from_row(row) == t
