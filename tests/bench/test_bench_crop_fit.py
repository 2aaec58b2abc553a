"""bench/crop_fit.py and bench/crop_transforms.py: the fit of the crop's box coefficients covers
every sample; the device-like transforms move the teeth box with the pixels."""
from __future__ import annotations

import numpy as np
import pytest

from bench import crop_fit, crop_transforms
from pipeline.crop.boxes import landmark_box
from pipeline.crop.config import CropConfig
from pipeline.crop.landmarks import Landmarks
from pipeline.ingest.probe import DecodeError


def _samples(n: int, seed: int = 0, outliers: bool = False) -> list[dict]:
    """Landmarks whose teeth box follows top = gap (its middle row) - 0.6 J, bottom = gap + 0.5 root + 0.3 mandible
    + 0.2 J, plus noise (in work pixels, scale 1, jaw scale J = 80). With ``outliers`` two jaws have long
    roots (120 px against 20-40) and two a far mandible (250 px against 60-100)."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        jaw = 80.0
        gap_top, gap_bottom = rng.uniform(80, 100), rng.uniform(105, 120)
        mand, root, upper = rng.uniform(60, 100), rng.uniform(20, 40), rng.uniform(20, 40)
        if outliers and k in (0, 1):
            root = 120.0
        if outliers and k in (2, 3):
            mand = 250.0
        lm = Landmarks(1.0, (400, 200), (0, 0, 400, 200), jaw, 80.0, 320.0, gap_top, gap_bottom, mand, root,
                       200.0, {}, (), {}, upper, gap_mid=gap_top)
        top = gap_top - 0.6 * jaw + rng.normal(0, 2)
        bottom = gap_bottom + 0.5 * root + 0.3 * mand + 0.2 * jaw + rng.normal(0, 2)
        out.append({"name": f"s{k}", "real": k < n - 5, "lm": lm, "shape": (200, 400),
                    "box": [90.0, top, 310.0, bottom]})
    return out


def _covers_every_sample(samples, up, down) -> None:
    cfg = CropConfig(up=up, down=down)
    for s in samples:  # every box inside, phantoms ("real": False) included
        x0, y0, x1, y1 = landmark_box(s["lm"], cfg)
        assert y0 <= s["box"][1] + 1e-9 and y1 >= s["box"][3] - 1e-9


def test_fit_recovers_the_law_and_covers_every_sample():
    # jaws whose roots or mandible lie far out: the offset alone falls short of them under
    # leave-one-out, so the slopes are chosen, and recovered
    samples = _samples(40, outliers=True)
    up, down = crop_fit.fit(samples, [i for i, s in enumerate(samples) if s["real"]])
    # the top does not follow the upper lobe here; its offset is raised to cover the noisiest sample
    # and the safety quantile (mean + 2.5 sd of noise 2 px: 0.0625 J above 0.6)
    assert up[0] < 0.05 and 0.6 <= up[1] < 0.7
    assert abs(down[0] - 0.5) < 0.05 and abs(down[1] - 0.3) < 0.03, down
    assert abs(down[2] - (0.2 + 2.5 * 2 / 80)) < 0.03, down     # 0.2 J + the safety quantile of the noise
    _covers_every_sample(samples, up, down)


def test_fit_keeps_the_offset_alone_where_slopes_add_no_coverage():
    # the same law without far-out jaws: under leave-one-out neither form falls short, and the offset
    # alone leaves the larger worst-case margin, so no slope is used; the offset is about the residuals'
    # mean + 2.5 sd: 0.5 x 30 / 80 + 0.3 x 80 / 80 + 0.2 = 0.6875, sd sqrt(0.036^2 + 0.043^2 + 0.025^2) = 0.062
    samples = _samples(40)
    up, down = crop_fit.fit(samples, [i for i, s in enumerate(samples) if s["real"]])
    assert down[:2] == [0.0, 0.0] and 0.8 < down[2] < 0.95, down
    _covers_every_sample(samples, up, down)


def _square(h=200, w=400, box=(120.0, 60.0, 280.0, 140.0)):
    img = np.zeros((h, w), np.float32)
    img[int(box[1]):int(box[3]), int(box[0]):int(box[2])] = 1.0
    return img, box


def _bbox(img: np.ndarray, thr: float = 0.5):
    ys, xs = np.nonzero(img > thr)
    return xs.min(), ys.min(), xs.max() + 1, ys.max() + 1


@pytest.mark.parametrize("name", ["zoom 0.7 pad black", "zoom 1.15 crop", "aspect 1.7 stretch",
                                  "aspect 2.3 pad black", "shift left 0.12", "shift down 0.1", "gamma 1.6"])
def test_transforms_move_the_box_with_the_pixels(name):
    img, box = _square()
    out, nbox = crop_transforms.TRANSFORMS[name](img, box)
    assert out.dtype == np.float32 and out.ndim == 2
    assert max(abs(a - b) for a, b in zip(_bbox(out), nbox)) <= 2, (name, _bbox(out), nbox)


@pytest.mark.parametrize("name", ["zoom 1.6 crop", "zoom 0.55 pad black", "aspect 2.6 stretch", "shift left 0.25",
                                  "resolution 0.3", "noise 0.1", "mirrored", "contrast 0.3-0.7"])
def test_beyond_transforms_move_the_box_with_the_pixels(name):
    img, box = _square(box=(40.0, 60.0, 200.0, 140.0))  # off centre: a mirrored store moves it
    out, nbox = crop_transforms.BEYOND[name](img, box)
    assert out.dtype == np.float32 and out.shape[0] == 200
    thr = 0.5 if name != "contrast 0.3-0.7" else 0.6
    assert max(abs(a - b) for a, b in zip(_bbox(out, thr), nbox)) <= 2, (name, _bbox(out, thr), nbox)


def test_the_area_of_full_dentitions_is_reported_apart():
    rows = [{"coverage": 1.0, "area_ratio": 2.0, "method": "detected", "n_teeth": 30},
            {"coverage": 1.0, "area_ratio": 4.0, "method": "fallback", "n_teeth": 13},
            {"coverage": 0.9, "area_ratio": 1.0, "method": "detected"}]   # no count: a full dentition
    agg = crop_fit._aggregate("x", rows)
    assert agg["area_ratio_mean"] == pytest.approx(7 / 3) and agg["area_ratio_mean_20"] == pytest.approx(1.5)
    assert agg["covered_share"] == pytest.approx(2 / 3) and agg["fallback_share"] == pytest.approx(1 / 3)
    assert not agg["meets_target"]


def test_a_band_over_the_teeth_shrinks_the_box_to_what_is_visible():
    img, box = _square()
    out, nbox = crop_transforms.bands(img, box, 0.35, 0.0, 0.0, 0.0, 0.0)
    assert nbox == (140.0, 60.0, 280.0, 140.0)
    assert (out[:, :140] < 0.1).all()


def test_random_device_stays_in_the_ranges():
    img, box = _square()
    rng = np.random.default_rng(0)
    for _ in range(5):
        out, nbox = crop_transforms.random_device(img, box, rng)
        aspect = out.shape[1] / out.shape[0]
        assert 1.69 <= aspect <= 2.31 and out.shape[0] == 200
        assert 0 <= nbox[0] < nbox[2] <= out.shape[1] and 0 <= nbox[1] < nbox[3] <= out.shape[0]


def test_opgs_without_a_teeth_box_are_reported_per_source(tmp_path):
    import cv2
    from pipeline.demo import phantoms
    (tmp_path / "images").mkdir()
    rows = ["file,width,height,n_teeth,x0,y0,x1,y1"]
    for k, name in enumerate(["aku-1.png", "kul-1.png", "kul-2.png", "mlua-1.png"]):
        img, box = phantoms.render_opg(np.random.default_rng([5, k]), 192, 384)
        cv2.imwrite(str(tmp_path / "images" / name), np.round(img * 255).astype(np.uint8))
        if name.startswith("aku"):
            rows.append(f"{name},384,192,32," + ",".join(f"{v:.1f}" for v in box))
    (tmp_path / "images" / "kul-3.png").write_bytes(b"not an image")  # a bad file is an error, not a row
    (tmp_path / "teeth_boxes.csv").write_text("\n".join(rows) + "\n")
    with pytest.raises(DecodeError, match="kul-3.png|not an image"):
        crop_fit._unannotated(tmp_path, CropConfig())
    (tmp_path / "images" / "kul-3.png").unlink()
    flat = (np.random.default_rng(0).random((192, 384)) * 12 + 120).astype(np.uint8)  # no jaw in it
    cv2.imwrite(str(tmp_path / "images" / "flat-1.png"), flat)
    out = {r["source"]: r for r in crop_fit._unannotated(tmp_path, CropConfig())}
    # the annotated one is not here
    assert set(out) == {"kul-* (no teeth boxes)", "mlua-* (no teeth boxes)", "flat-* (no teeth boxes)"}
    assert out["kul-* (no teeth boxes)"]["images"] == 2 and out["mlua-* (no teeth boxes)"]["images"] == 1
    for src in ("kul-* (no teeth boxes)", "mlua-* (no teeth boxes)"):   # jaws: detected, a box inside the frame
        assert out[src]["fallback_share"] == 0 and 0.2 < out[src]["crop_share_of_frame_mean"] < 0.7, out[src]
    # no jaw: the fallback window, all of the frame
    assert out["flat-* (no teeth boxes)"]["fallback_share"] == 1
    assert out["flat-* (no teeth boxes)"]["crop_share_of_frame_mean"] == 1


def test_cut_sides_and_sure_cuts_are_counted_per_transform_and_per_source():
    box = (100.0, 50.0, 300.0, 150.0)                        # 200 x 100
    # the right side cut by 5 % at confidence 1.0; the top by 0.5 % (within the 1 % tolerance)
    assert crop_fit.cuts((100, 50, 290, 150), box) == {"cut_left": False, "cut_top": False, "cut_right": True,
                                                       "cut_bottom": False}
    assert not any(crop_fit.cuts((100, 50.5, 300, 150), box).values())
    rows = [{"image": "aku-1.jpg", "coverage": 0.95, "area_ratio": 1.2, "method": "detected", "confidence": 1.0,
             **crop_fit.cuts((100, 50, 290, 150), box)},
            {"image": "aku-2.jpg", "coverage": 0.97, "area_ratio": 1.3, "method": "detected", "confidence": 0.4,
             **crop_fit.cuts((100, 50, 300, 145), box)},
            {"image": "akudual-1.png", "coverage": 1.0, "area_ratio": 3.0, "method": "fallback", "confidence": 0.1,
             **crop_fit.cuts((0, 0, 400, 200), box)}]
    agg = crop_fit._aggregate("x", rows)
    assert (agg["cut_left"], agg["cut_top"], agg["cut_right"], agg["cut_bottom"]) == (0.0, 0.0, 1 / 3, 1 / 3)
    assert agg["cut_at_confidence_1"] == 1 and agg["fallback_share"] == pytest.approx(1 / 3)
    per = crop_fit._per_source({"identity": rows[:2], "gamma 0.6": rows[2:]}, "real")
    assert [r["set"] for r in per] == ["real: aku-* (all transforms)", "real: akudual-* (all transforms)"]
    assert per[0]["images"] == 2 and per[0]["cut_right"] == 0.5 and per[0]["fallback_share"] == 0
    assert per[1]["images"] == 1 and per[1]["fallback_share"] == 1


def test_opg_more_beside_opg_dev_is_reported_as_its_own_source(tmp_path):
    import cv2
    from pipeline.demo import phantoms
    dev, more = tmp_path / "opg-dev", tmp_path / "opg-more" / "images"
    (dev / "images").mkdir(parents=True)
    more.mkdir(parents=True)
    (dev / "teeth_boxes.csv").write_text("file,width,height,n_teeth,x0,y0,x1,y1\n")
    for k, folder in enumerate((dev / "images", more, more)):
        img, _ = phantoms.render_opg(np.random.default_rng([6, k]), 192, 384)
        cv2.imwrite(str(folder / f"mlua-{k}.png"), np.round(img * 255).astype(np.uint8))
    out = {r["source"]: r for r in crop_fit._unannotated(dev, CropConfig())}
    assert set(out) == {"mlua-* (no teeth boxes)", "opg-more mlua-* (no teeth boxes)"}
    assert out["mlua-* (no teeth boxes)"]["images"] == 1 and out["opg-more mlua-* (no teeth boxes)"]["images"] == 2
    assert out["opg-more mlua-* (no teeth boxes)"]["fallback_share"] == 0
