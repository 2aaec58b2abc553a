"""Teeth crop: coverage of the annotated teeth box and crop size, on real OPGs and the demo archive;
the stage's manifest, crops, frames and report."""
from __future__ import annotations

import csv
import dataclasses
import html
import re
from pathlib import Path

import numpy as np
import pytest

from pipeline.core import config, pngio
from pipeline.demo import phantoms
from bench import crop_transforms
from pipeline.crop import detector
from pipeline.crop.boxes import coverage_and_ratio, detect_teeth, detection
from pipeline.crop.config import CropConfig
from pipeline.crop.crop import MANIFEST_COLUMNS, run_crop
from pipeline.crop.landmarks import Landmarks, measure
from pipeline.ingest.decode import decode_file
from pipeline.core.frames import Cleaning
from tests.builders import make_stage_inputs


def _report(name: str, results: list[tuple[str, float, float, str]]) -> tuple[np.ndarray, np.ndarray]:
    cov = np.array([r[1] for r in results])
    ratio = np.array([r[2] for r in results])
    print(f"\n{name}: {len(results)} images; coverage min {cov.min():.4f} mean {cov.mean():.4f}; "
          f"crop area / teeth box area mean {ratio.mean():.3f} (min {ratio.min():.2f}, max {ratio.max():.2f}); "
          f"fallback {sum(r[3] == 'fallback' for r in results)}")
    for r in results:
        print(f"  {r[0]:32s} coverage {r[1]:.4f}  area ratio {r[2]:.2f}  {r[3]}")
    return cov, ratio


def _check_coverage(results) -> None:
    bad = [r[0] for r in results if r[1] < 0.99]
    assert not bad, f"teeth box not covered (>= 0.99) on {bad}"


def _check_area(results) -> None:
    ratio = np.array([r[2] for r in results])
    assert ratio.mean() <= 1.5, f"mean crop area is {ratio.mean():.3f}x the teeth box (> 1.5)"


def pipeline_config() -> CropConfig:
    """The crop settings the pipeline runs with (params.yaml), which the acceptance numbers are about."""
    return CropConfig(**config.load_params(Path(__file__).resolve().parents[2] / "params.yaml")["crop"])


def test_params_yaml_and_defaults_agree():
    assert pipeline_config() == CropConfig()


@pytest.fixture(scope="module")
def real_results(opg_dev):
    cfg = pipeline_config()
    results = []
    with open(opg_dev / "teeth_boxes.csv", newline="") as f:
        for r in csv.DictReader(f):
            img = decode_file(opg_dev / "images" / r["file"], "test").pixels
            box = [float(r[k]) for k in ("x0", "y0", "x1", "y1")]
            det = detect_teeth(img, cfg)
            results.append((r["file"], *coverage_and_ratio(det.box, box), det.method))
    assert len(results) == 21
    _report("opg-dev (21 annotated real OPGs)", results)
    return results


def test_real_opgs_crop_covers_every_teeth_box(real_results):
    _check_coverage(real_results)


@pytest.mark.xfail(strict=True, reason="not reached: the crown profile runs on past the last molar into "
                   "the bone on some jaws and the offsets hold under leave-one-out, so the box is generous; "
                   "measured mean area 2.12x the teeth box on these 21 (bench/crop_fit.py, reports/bench/crop_fit.md, docs/crop.md)")
def test_real_opgs_crop_is_tight(real_results):
    _check_area(real_results)


@pytest.fixture(scope="module")
def demo_archive(tmp_path_factory) -> Path:
    raw = tmp_path_factory.mktemp("demo") / "raw"
    phantoms.build_archive(raw, phantoms.PhantomsConfig(n_clean=16, n_per_defect=1, width=768, height=384), seed=11,
                           progress=False)
    return raw


@pytest.fixture(scope="module")
def demo_results(demo_archive):
    cfg = pipeline_config()
    results = []
    with open(demo_archive / "ground_truth.csv", newline="") as f:
        for r in csv.DictReader(f):
            if r["expected_status"] != "ok" or r["defect"] not in ("", "exact_duplicate") or not r["teeth_x0"]:
                continue  # planted defects (blur, exposure, rotation, non-panoramic) are the audit's business
            img = decode_file(demo_archive / r["file"], "test").pixels
            box = [float(r[k]) for k in ("teeth_x0", "teeth_y0", "teeth_x1", "teeth_y1")]
            det = detect_teeth(img, cfg)
            results.append((r["file"], *coverage_and_ratio(det.box, box), det.method))
    assert len(results) >= 16
    _report("demo archive ground truth", results)
    return results


def test_demo_archive_crop_covers_every_teeth_box(demo_results):
    _check_coverage(demo_results)


@pytest.mark.xfail(strict=True, reason="not reached since the box's offsets hold under leave-one-out on the "
                   "real OPGs (issue 16): the top's offset is set by the real jaws' upper roots (mean + 2.5 sd of "
                   "their spread; 0.27 of the box height above the demo's teeth); measured 1.62x the teeth box on "
                   "the demo archive (bench/crop_fit.py)")
def test_demo_archive_crop_is_tight(demo_results):
    _check_area(demo_results)


def test_coverage_and_ratio():
    assert coverage_and_ratio((0, 0, 20, 10), (0, 0, 10, 10)) == (1.0, 2.0)
    assert coverage_and_ratio((5, 0, 20, 10), (0, 0, 10, 10)) == (0.5, 1.5)


def test_crown_extent_bridges_a_missing_tooth_but_not_an_empty_jaw():
    profile = np.zeros(100)
    profile[40:60] = 1.0   # front teeth
    profile[30:38] = 1.0   # a premolar after a 2-column gap (a missing tooth)
    profile[10:20] = 1.0   # a molar after a 10-column gap
    assert detector.crown_extent(profile, 45, -1, 0.5, run=3) == 30
    assert detector.crown_extent(profile, 45, -1, 0.5, run=12) == 10
    assert detector.crown_extent(profile, 55, +1, 0.5, run=3) == 59


def test_lone_crowns_are_sought_beyond_a_short_arch_but_not_beyond_a_complete_one():
    # midline at column 200, jaw scale 50: far_within 1.4 -> a side is "short" if it stops within 70 columns
    thr, width, centre, within = 0.5, 5, (200.0, 200.0), 70.0
    short = np.zeros(400)
    short[160:240] = 1.0          # incisors to canines: 40 columns a side
    short[60:75] = 1.0            # a lone molar 125-140 columns out on the left
    short[330:345] = 1.0          # and on the right
    assert detector.far_crowns(short, 160, 239, 0, 400, thr, width, centre, within) == (60, 344)
    full = np.zeros(400)
    full[110:290] = 1.0           # a complete arch: 90 columns a side
    full[40:60] = 1.0             # bright bone beyond it (the ramus)
    full[340:360] = 1.0
    assert detector.far_crowns(full, 110, 289, 0, 400, thr, width, centre, within) == (110, 289)
    # one side short, the other complete: each side is judged on its own
    mixed = full.copy()
    mixed[110:160] = 0.0
    assert detector.far_crowns(mixed, 160, 289, 0, 400, thr, width, centre, within) == (40, 289)
    # with no bound every lone stretch counts (the rule before far_within)
    assert detector.far_crowns(full, 110, 289, 0, 400, thr, width, centre, np.inf) == (40, 359)
    # a stretch narrower than the width is noise, not a crown
    noise = short.copy()
    noise[60:75] = 0.0
    noise[70:73] = 1.0
    assert detector.far_crowns(noise, 160, 239, 0, 400, thr, width, centre, within)[0] == 160


def test_not_an_opg_falls_back_to_the_documented_window():
    rng = np.random.default_rng(0)
    flat = (rng.random((200, 400)) * 0.05 + 0.5).astype(np.float32)
    cfg = CropConfig()
    det = detect_teeth(flat, cfg)
    assert det.method == "fallback" and det.confidence < cfg.min_confidence
    assert det.box == (0, 0, 400, 200)  # fallback [0, 0, 1, 1]: the whole field (all of 400x200)
    inset = detect_teeth(flat, dataclasses.replace(cfg, fallback=[0.05, 0.05, 0.95, 0.95]))
    assert inset.box == (20, 10, 380, 190)  # fractions of the field
    assert det.reason.startswith("low confidence")
    with pytest.raises(ValueError):
        detect_teeth(np.zeros((5, 5)), cfg)




# ------------------------------------------------------------------ behaviour on tiny generated OPGs
def _phantom(seed: int, drop=frozenset()):
    return phantoms.render_opg(np.random.default_rng([7, seed]), 256, 512, drop)


@pytest.mark.parametrize("dx", [-0.15, 0.15])
def test_a_jaw_shifted_to_one_side_is_still_found(dx):
    img, box = _phantom(1)
    moved, mbox = crop_transforms.shift(img, box, dx, 0.0, "mirror")
    det = detect_teeth(moved)
    cov, ratio = coverage_and_ratio(det.box, mbox)
    assert det.method == "detected" and cov >= 0.99, (det, mbox)
    # and it is the jaw that was found, not the frame: the box moved with it
    centre = (det.box[0] + det.box[2]) / 2 / img.shape[1]
    assert abs(centre - (0.5 + dx)) < 0.06, centre


@pytest.mark.parametrize("pad", ["mirror", "black"])
def test_a_frame_zoomed_out_still_covers_both_outer_molars(pad):
    img, box = _phantom(2)
    small, sbox = crop_transforms.zoom(img, box, 0.7, pad)
    det = detect_teeth(small)
    assert det.box[0] <= sbox[0] + 1 and det.box[2] >= sbox[2] - 1, (det.box, sbox)  # both outer molars
    cov, ratio = coverage_and_ratio(det.box, sbox)
    assert cov >= 0.99
    if pad == "black":  # a flat pad is not anatomy: the box is as tight as on the unpadded frame
        assert ratio < 1.1 * coverage_and_ratio(detect_teeth(img).box, box)[1]


def test_a_lone_far_out_tooth_beside_central_teeth_is_kept():
    # one side keeps its incisors and canine (k 0-2) and a second molar (k 6), nothing between
    drop = frozenset((jaw, -1, k) for jaw in (-1, 1) for k in (3, 4, 5, 7))
    for seed in range(20):  # a seed where the second molar is drawn on that side
        img, box = _phantom(seed, drop)
        _, without = _phantom(seed, drop | {(jaw, -1, 6) for jaw in (-1, 1)})
        if without[0] - box[0] > 0.05 * img.shape[1]:
            break
    else:
        pytest.fail("no phantom with a lone molar")
    det = detect_teeth(img)
    assert det.box[0] <= box[0] + 1, f"the lone molar at x {box[0]} is cut: box {det.box}"
    assert coverage_and_ratio(det.box, box)[0] >= 0.99


@pytest.mark.parametrize("seed", [2, 5])
def test_a_zoomed_in_frame_that_cuts_off_the_mandible_is_still_detected(seed):
    # zoom 1.3 with the frame cropped: the mandible's border leaves the field, so its cue measures
    # some other edge and disagrees with the lower teeth's. The lower teeth set the scale alone: a
    # detected box that covers the teeth, no wider and surer than the disagreement alone gives (the
    # larger cue, an unsure scale; mandible_room ~0 switches the rule off)
    img, box = _phantom(seed)
    zoomed, zbox = crop_transforms.zoom(img, box, 1.3, "black")
    det = detect_teeth(zoomed)
    assert det.method == "detected" and "mandible's border lies below the field" in det.reason, det
    cov, ratio = coverage_and_ratio(det.box, zbox)
    assert cov >= 0.99, (det.box, zbox)
    old = detect_teeth(zoomed, CropConfig(mandible_room=0.01))
    assert old.method == "detected" and "jaw scale cues disagree" in old.reason, old
    assert ratio <= coverage_and_ratio(old.box, zbox)[1] and det.confidence > old.confidence, (old, det)


def test_teeth_running_off_the_frame_keep_the_frame_edge():
    # the jaw moved so far left that the outer molars leave the frame: the box must reach the frame's
    # edge there (what is still visible of the teeth), not stop a crown short of it
    img, box = _phantom(5)
    moved, mbox = crop_transforms.shift(img, box, -0.3, 0.0, "black")
    assert mbox[0] == 0.0  # the transform did cut teeth off
    det = detect_teeth(moved)
    assert det.box[0] == 0, (det.box, mbox)
    assert coverage_and_ratio(det.box, mbox)[0] >= 0.99


def test_box_edges_snap_to_the_field_per_side():
    # landmarks on a 400x200 field, jaw scale 100: teeth box 100..300 x 40..160 before the snap
    lm = Landmarks(scale=1.0, size=(400, 200), field=(0, 0, 400, 200), jaw=100.0, left=100.0, right=300.0,
                   gap_top=100.0, gap_bottom=100.0, mandible=100.0, root_edge=40.0, midline=200.0,
                   scores={"all": 1.0}, gap_mid=100.0)
    cfg = CropConfig(up=[0.0, 0.6], down=[0.0, 0.0, 0.6], edge_snap=[0.15, 0.3, 0.15])

    def box(**kw):
        return detection(dataclasses.replace(lm, **kw), (200, 400), cfg).box

    assert box() == (100, 40, 300, 160)                  # 0.4 J from every edge: nothing moves
    assert box(left=20.0, right=390.0) == (20, 40, 400, 160)    # the sides: within 0.15 J only
    assert box(gap_mid=85.0) == (100, 0, 300, 160)       # the top (25 rows from the edge): within 0.3 J
    assert box(gap_bottom=120.0) == (100, 40, 300, 180)  # the bottom (20 rows): not within 0.15 J
    assert box(gap_bottom=130.0) == (100, 40, 300, 200)  # 10 rows: it goes to the edge


@pytest.mark.parametrize("aspect", [1.6, 3.0])
def test_another_horizontal_magnification_still_covers_both_outer_molars(aspect):
    # a device that draws the arch wider (3.0 from 2.0: 1.5x) or narrower for the same jaw height: no
    # bound in units of the jaw's height may cut the outer molars (the bound of 2 jaw scales did at 3.0)
    img, box = _phantom(6)
    wide, wbox = crop_transforms.aspect_stretch(img, box, aspect)
    det = detect_teeth(wide)
    assert det.box[0] <= wbox[0] + 1 and det.box[2] >= wbox[2] - 1, (det.box, wbox)
    assert coverage_and_ratio(det.box, wbox)[0] >= 0.99


@pytest.mark.parametrize("bands", [(0.15, 0.06, 0.06, 0.06, 1.0), (0.0, 0.15, 0.0, 0.05, 0.5)])
def test_a_banded_border_keeps_the_teeth(bands):
    # collimator / padding bands (white on the left, grey above) over the frame's border
    img, box = _phantom(8)
    banded, bbox = crop_transforms.bands(img, box, *bands)
    det = detect_teeth(banded)
    assert coverage_and_ratio(det.box, bbox)[0] >= 0.99, (det, bbox)


@pytest.mark.parametrize("value", [0.0, 1.0])
def test_a_padded_border_does_not_pull_the_box(value):
    img, box = _phantom(3)
    h, w = img.shape
    padded = np.full((h + 60, w + 160), value, np.float32)  # a wide flat band left, a band on top
    padded[60:, 160:] = img
    det0, det = detect_teeth(img), detect_teeth(padded)
    moved = (det.box[0] - 160, det.box[1] - 60, det.box[2] - 160, det.box[3] - 60)
    assert max(abs(a - b) for a, b in zip(moved, det0.box)) <= 0.02 * w, (moved, det0.box)
    assert coverage_and_ratio(moved, box)[0] >= 0.99


def test_field_leaves_out_flat_bands_only():
    rng = np.random.default_rng(0)
    img = rng.random((100, 200)).astype(np.float32)
    img[:, :30] = 0.0          # a padded export
    img[:12] = 1.0             # a collimator's shadow
    img[:, 180:] = 0.5 + rng.normal(0, 0.005, (100, 20))
    x0, y0, x1, y1 = detector.field(img)
    # the bands go (a pixel of blur may stay: never a column of the image itself)
    assert 28 <= x0 <= 30 and 10 <= y0 <= 12 and 180 <= x1 <= 182 and y1 == 100
    assert detector.field(rng.random((100, 200)).astype(np.float32)) == (0, 0, 200, 100)


@pytest.mark.parametrize("dx", [-0.12, 0.0, 0.12])
def test_the_mirror_axis_follows_the_jaw_not_the_frame(dx):
    img, box = _phantom(3)
    moved, mbox = crop_transforms.shift(img, box, dx, 0.0, "black")
    zoomed, zbox = crop_transforms.zoom(moved, mbox, 1.3)   # and zoomed in: the teeth run off one side
    for im, b in ((moved, mbox), (zoomed, zbox)):
        axis, r = detector.symmetry_axis(pngio.to_float01(im))
        centre = (0.5 + dx) * im.shape[1] if b is mbox else (0.5 + 1.3 * dx) * im.shape[1]
        assert abs(axis - centre) < 0.03 * im.shape[1], (dx, axis, centre, r)
        assert r > 0.5
    # a picture with no mirror symmetry has no clear axis
    _, r = detector.symmetry_axis(np.tile(np.linspace(0, 1, 200, dtype=np.float32), (100, 1)))
    assert r < 0.3


def test_a_fallback_keeps_the_teeth_of_a_jaw_that_fills_a_zoomed_in_frame():
    # zoomed in 1.6x: the outer molars run to the frame's sides; the middle blanked: no occlusal
    # gap is found, so the box is the fallback window, which must not cut what fills the frame
    img, box = _phantom(3)
    im, b = crop_transforms.zoom(img, box, 1.6)
    w = im.shape[1]
    im = im.copy()
    im[:, int(0.3 * w):int(0.7 * w)] = im[:, int(0.3 * w):int(0.7 * w)].mean()
    assert b[0] < 0.1 * w and b[2] > 0.95 * w          # the teeth reach within 5 % of the right side
    det = detect_teeth(im)
    assert det.method == "fallback" and "fallback window" in det.reason, det
    assert coverage_and_ratio(det.box, b)[0] == 1.0, (det.box, b)
    inset = detect_teeth(im, CropConfig(fallback=[0.05, 0.05, 0.95, 0.95]))  # the earlier default
    assert coverage_and_ratio(inset.box, b)[0] < 0.99, (inset.box, b)


def test_the_widest_arch_spans_both_the_gap_centre_and_the_mirror_axis():
    # a gap centre (midline) 60 px right of the mirror axis: the arch allowed reaches outer x jaw
    # beyond *both*, so neither a wrong gap centre nor a wrong axis cuts the outer molars
    lm = Landmarks(scale=1.0, size=(800, 300), field=(0, 0, 800, 300), jaw=100.0, left=250.0, right=550.0,
                   gap_top=150.0, gap_bottom=150.0, mandible=100.0, root_edge=40.0, midline=460.0,
                   scores={"gap_fit": 0.5, "gap_depth": 1.0, "lobes": 0.3, "gap_row": 1.0, "scale": 1.0},
                   gap_mid=150.0, axis=400.0)
    cfg = CropConfig(up=[0.0, 0.6], down=[0.0, 0.0, 0.6], half_width=[0.8, 2.0], edge_snap=[0, 0, 0])
    det = detection(lm, (300, 800), cfg)
    assert det.method == "fallback"                  # the teeth's lobes barely stand out: the widest arch
    assert det.box[0] == 400 - 200 and det.box[2] == 460 + 200, det.box
    # the rows are the field's: the landmark rows (150 - 60, 150 + 60) rest on the scale it distrusts
    assert det.box[1] == 0 and det.box[3] == 300, det.box
    inner = detection(dataclasses.replace(lm, field=(0, 40, 800, 260)), (300, 800), cfg)
    assert inner.box[1] == 40 and inner.box[3] == 260, inner.box  # a padded border stays out
    assert detection(dataclasses.replace(lm, axis=-1.0), (300, 800), cfg).box[0] == 460 - 200  # no axis: the midline


def test_a_jaw_with_an_unsure_scale_or_curve_gets_a_detected_box_that_says_so():
    # the occlusal gap is clear (deep, between two lobes, where one can be): a jaw is there. The
    # scale cues disagree and the curve fits half the gap points: the box is the detector's (not the
    # widest arch over the whole field), grown above and below for the loose curve, and its
    # confidence and reason say how unsure it is
    scores = {"gap_fit": 0.5, "gap_depth": 1.0, "lobes": 1.0, "width": 1.0, "height": 1.0, "gap_row": 1.0,
              "edges": 1.0, "scale": 0.0}
    lm = Landmarks(scale=1.0, size=(800, 300), field=(0, 0, 800, 300), jaw=100.0, left=250.0, right=550.0,
                   gap_top=150.0, gap_bottom=150.0, mandible=100.0, root_edge=40.0, midline=400.0,
                   scores=scores, gap_mid=150.0, axis=400.0)
    cfg = CropConfig(up=[0.0, 0.6], down=[0.0, 0.0, 0.6], edge_snap=[0, 0, 0], fit_room=0.2)
    det = detection(lm, (300, 800), cfg)
    assert det.method == "detected" and det.confidence == 0.0, det
    # rows: 150 -/+ 60, and 0.2 x (1 - 0.5) x 100 = 10 more each way for the loose curve
    assert det.box == (250, 80, 550, 220), det.box
    assert det.reason.startswith("unsure (scale=0.00, gap_fit=0.50)") and "fits few gap points" in det.reason
    sure = detection(dataclasses.replace(lm, scores={**scores, "gap_fit": 1.0, "scale": 1.0}), (300, 800), cfg)
    assert sure.box == (250, 90, 550, 210) and sure.confidence == 1.0 and sure.reason == "", sure
    # no occlusal gap worth the name: the fallback stays
    none = detection(dataclasses.replace(lm, scores={**scores, "gap_depth": 0.1}), (300, 800), cfg)
    assert none.method == "fallback", none


def test_a_side_edge_on_a_molar_moves_out_past_it_but_not_along_the_ramus():
    # a top-hat over the box's rows: central teeth (columns 100-300), a dark stretch, then a molar
    # (columns 330-350) under the right edge at 335; on the left a long bright band (the ramus,
    # columns 0-95) reaches the left edge at 90
    th = np.zeros((40, 400), np.float32)
    th[:, 100:300] = 1.0
    th[:, 330:350] = 0.9
    th[:, 0:96] = 0.8
    left, right, moved = detector.edges_off_teeth(th, 90.0, 335.0, (150, 250), 0.5, 10.0, (0, 400), 3, 40)
    assert 350 + 10 <= right <= 350 + 10 + 2, right          # past the molar, plus the margin
    assert moved["right"][0] > 0 and not moved["right"][1]
    assert left == 90.0 and moved["left"] == (0.0, True)     # bone runs on beyond a molar's width: unsure, kept
    # an edge in the dark, or only touching a flank (fewer than ``probe`` columns), stays put
    l2, r2, m2 = detector.edges_off_teeth(th, 98.0, 320.0, (150, 250), 0.5, 10.0, (0, 400), 3, 40)
    assert (l2, r2) == (98.0, 320.0) and m2 == {"left": (0.0, False), "right": (0.0, False)}
    # the widest arch allowed bounds the move
    _, r3, _ = detector.edges_off_teeth(th, 90.0, 335.0, (150, 250), 0.5, 10.0, (0, 352), 3, 40)
    assert r3 <= 352


def _with_lone_molar(seed: int, gap: float):
    """A generated jaw with no molars on its right (both jaws: k 6, 7 left out) and a lower molar
    drawn beyond the last tooth, ``gap`` x jaw past it: a dark stretch wider than ``crown_run``
    bridges, so the crown run stops before it. (image, teeth box with the molar, molar's columns)."""
    import cv2
    img, box = _phantom(seed, frozenset((jaw, 1, k) for jaw in (-1, 1) for k in (6, 7)))
    lm = measure(img)
    jaw = lm.jaw / lm.scale
    occ = lm.gap_top / lm.scale                      # the occlusal row at the arch's ends
    x0, x1 = box[2] + gap * jaw, box[2] + (gap + 0.3) * jaw
    mol = np.zeros_like(img)
    cv2.rectangle(mol, (int(x0), int(occ + 0.03 * jaw)), (int(x1), int(occ + 0.3 * jaw)), 1.0, -1)     # crown
    for a, b in ((0.05, 0.12), (0.18, 0.25)):                                                            # roots
        cv2.rectangle(mol, (int(x0 + a * jaw), int(occ + 0.3 * jaw)), (int(x0 + b * jaw), int(occ + 0.75 * jaw)), 0.6, -1)
    crown = float(np.percentile(img[box[1]:box[3], box[0]:box[2]], 97))
    out = np.maximum(img, cv2.GaussianBlur(mol, (0, 0), 1.0) * crown)
    return out, (box[0], box[1], max(box[2], int(np.ceil(x1)) + 1), max(box[3], int(occ + 0.75 * jaw) + 1)), (x0, x1)


@pytest.mark.parametrize("seed,gap", [(0, 0.22), (2, 0.26), (4, 0.3)])
def test_a_molar_beyond_a_dark_stretch_is_inside_the_box(seed, gap):
    # the crown run stops at the dark stretch and the side margin lands on the molar: that edge
    # moves out past it (before: the box ended on the molar, cutting 6-9 % of the teeth box at
    # confidence 1.0)
    img, box, (x0, x1) = _with_lone_molar(seed, gap)
    det = detect_teeth(img)
    assert det.method == "detected", det
    assert det.box[2] >= x1, f"the molar at columns {x0:.0f}-{x1:.0f} is cut: box {det.box}"
    assert coverage_and_ratio(det.box, box)[0] >= 0.99, (det.box, box)
    assert "the right edge lay on tooth structure" in det.reason, det.reason


def test_scale_consensus_widens_where_the_cues_disagree():
    assert detector.consensus({"a": 100.0, "b": 110.0}, 1.25) == (105.0, True)
    assert detector.consensus({"a": 100.0, "b": 160.0}, 1.25) == (160.0, False)
    assert detector.consensus({"a": 100.0, "b": float("nan")}, 1.25) == (100.0, False)


def test_a_low_confidence_box_says_why_in_the_manifest_reason(tmp_path):
    """The crop stage on a phantom whose jaw has no occlusal gap in the middle (40 % of the columns
    flattened to their mean grey): its manifest row is a fallback, below ``min_confidence``, and the
    reason names the two weakest scores; the untouched phantom beside it is detected."""
    truth = make_stage_inputs(tmp_path, n=2)
    clean_id, weak_id = sorted(truth)          # the second one is turned and trimmed by the "audit"
    path = tmp_path / "audit/images" / f"{weak_id}.png"
    img = pngio.read_png16(path)
    w = img.shape[1]
    middle = img[:, int(0.3 * w):int(0.7 * w)]
    middle[:] = int(middle.mean())
    pngio.write_png16(path, img)
    run_crop(CropConfig(), tmp_path / "audit", tmp_path / "ingested/manifest.csv", tmp_path / "crops",
             tmp_path / "reports/crops.html", workers=1, progress=False)
    with open(tmp_path / "crops/manifest.csv", newline="") as f:
        rows = {r["image_id"]: r for r in csv.DictReader(f)}
    weak = rows[weak_id]
    assert weak["method"] == "fallback" and float(weak["confidence"]) < 0.35, weak   # params.yaml min_confidence
    m = re.match(r"low confidence \((\w+)=(\d\.\d\d), (\w+)=(\d\.\d\d)\)", weak["reason"])
    assert m, weak["reason"]
    scores = {"gap_fit", "gap_depth", "lobes", "width", "height", "gap_row", "scale", "symmetry", "edges"}
    assert {m[1], m[3]} <= scores and m[1] != m[3], weak["reason"]
    # the confidence is the product of scores in [0, 1]: never above the weakest one named
    assert float(weak["confidence"]) <= float(m[2]) + 0.005 and float(m[2]) <= float(m[4]), weak
    assert weak["reason"].endswith(("; widest arch around the occlusal gap", "; the fallback window of the field"))
    assert rows[clean_id]["method"] == "detected" and "low confidence" not in rows[clean_id]["reason"]
    page = (tmp_path / "reports/crops.html").read_text()
    assert page.index(f"id='{weak_id}'") < page.index(f"id='{clean_id}'")   # lowest confidence first
    assert html.escape(weak["reason"]) in page


def test_crop_stage_outputs(tmp_path):
    truth = make_stage_inputs(tmp_path)
    rows = run_crop(CropConfig(), tmp_path / "audit", tmp_path / "ingested/manifest.csv", tmp_path / "crops",
                    tmp_path / "reports/crops.html", workers=2, progress=False)
    with open(tmp_path / "crops/manifest.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert list(table[0]) == MANIFEST_COLUMNS and len(table) == len(truth) == len(rows)
    for r in table:
        cl, gt = truth[r["image_id"]]
        cbox = tuple(int(r[k]) for k in ("cx0", "cy0", "cx1", "cy1"))
        ibox = tuple(int(r[k]) for k in ("x0", "y0", "x1", "y1"))
        assert cl.to_ingested(cbox) == ibox and cl.to_cleaned(ibox) == cbox
        crop = pngio.read_png16(tmp_path / "crops/images" / f"{r['image_id']}.png")
        assert crop.shape == (cbox[3] - cbox[1], cbox[2] - cbox[0])
        cleaned = pngio.read_png16(tmp_path / "audit/images" / f"{r['image_id']}.png")
        assert np.array_equal(crop, cleaned[cbox[1]:cbox[3], cbox[0]:cbox[2]])
        # the teeth (in the ingested frame, as ground truth says) are inside the crop
        gt_clipped = cl.to_ingested(tuple(np.clip(cl.to_cleaned(gt), 0, [*cl.size, *cl.size])))
        assert coverage_and_ratio(ibox, gt_clipped)[0] >= 0.99, r
        # a clean phantom is detected, and its row carries that image's own detection
        det = detect_teeth(cleaned)
        assert (r["method"], r["confidence"], r["reason"]) == ("detected", f"{det.confidence:.4f}", det.reason), r
        assert cbox == det.box
    page = (tmp_path / "reports/crops.html").read_text()
    ids = re.findall(r"<figure class='\w+' id='([0-9a-f]+)'", page)
    assert sorted(ids) == sorted(truth)
    conf = {r["image_id"]: float(r["confidence"]) for r in table}
    assert [conf[i] for i in ids] == sorted(conf.values()), "lowest confidence first"
    assert page.count("data:image/png;base64,") == len(truth)
    assert not list(tmp_path.glob("*.tmp-*")) and not list((tmp_path / "crops").parent.glob("tmp*"))
