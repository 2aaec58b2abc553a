import cv2
import numpy as np
import pytest

from pipeline.audit import duplicates
from pipeline.demo import phantoms
from pipeline.core import pngio
from pipeline.ingest.decode import decode_file


def _opg(i, h=256, w=512):
    return phantoms.render_opg(np.random.default_rng([7, i]), h, w)[0]


def _jpeg(img, quality=80):
    ok, buf = cv2.imencode(".jpg", np.round(img * 255).astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, quality])
    return cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE).astype(np.float32) / 255


def _near_copy(img, f=0.85, crop=(0.03, 0.02)):
    h, w = img.shape
    small = cv2.resize(img, (round(w * f), round(h * f)), interpolation=cv2.INTER_AREA)
    cy, cx = int(small.shape[0] * crop[1]), int(small.shape[1] * crop[0])
    return _jpeg(small[cy:, cx:])


def test_resized_cropped_reencoded_copy_is_grouped_and_others_are_not():
    imgs = [_opg(i) for i in range(8)]
    copies = [_near_copy(imgs[2]), _near_copy(imgs[5], 0.7, (0.0, 0.03))]
    fps = [duplicates.fingerprint(x) for x in imgs + copies]
    labels, pairs = duplicates.group(fps, 0.8, 0.92)
    assert labels[8] == labels[2] == 2 and labels[9] == labels[5] == 5
    assert len(set(labels)) == 8  # every other image alone
    assert all(s >= 0.92 for _, _, s in pairs)


def test_fine_checks_over_two_workers_give_the_same_groups():
    imgs = [_opg(i) for i in range(6)]
    fps = [duplicates.fingerprint(x) for x in imgs + [_near_copy(imgs[3])]]
    one = duplicates.group(fps, 0.8, 0.92, workers=1)
    two = duplicates.group(fps, 0.8, 0.92, workers=2)
    assert one == two
    assert one[0][6] == 3


def test_turned_copy_matches_once_turned_back():
    img = _opg(1)
    a, b = duplicates.fingerprint(img), duplicates.fingerprint(img[::-1, ::-1].copy())
    assert duplicates.fine_similarity(a, b.rotated180()) > 0.99
    assert duplicates.fine_similarity(a, b) < 0.92


def test_candidate_pairs_are_capped_per_image():
    rng = np.random.default_rng(0)
    v = rng.standard_normal(16).astype(np.float32)
    coarse = np.stack([v + 0.01 * rng.standard_normal(16).astype(np.float32) for _ in range(20)])
    coarse /= np.linalg.norm(coarse, axis=1, keepdims=True)
    pairs = duplicates.candidate_pairs(coarse, 0.5, max_per_image=3)
    assert pairs and all(i < j for i, j, _ in pairs)
    assert len(pairs) <= 20 * 3
    assert duplicates.candidate_pairs(coarse[:1], 0.5) == []


def test_real_opg_resized_reencoded_copy_is_grouped(opg_dev):
    paths = sorted((opg_dev / "images").iterdir())[::6]
    imgs = [pngio.to_float01(decode_file(p, "test").pixels) for p in paths]
    copy = _jpeg(cv2.resize(imgs[1], None, fx=0.6, fy=0.6, interpolation=cv2.INTER_AREA), 75)
    fps = [duplicates.fingerprint(x) for x in imgs + [copy]]
    labels, _ = duplicates.group(fps, 0.8, 0.92)
    assert labels[-1] == labels[1]
    assert len(set(labels)) == len(imgs)
