import math

import cv2
import numpy as np
import pytest

from pipeline.audit import duplicates
from pipeline.core import pngio
from pipeline.demo import phantoms
from pipeline.ingest.decode import decode_file

THRESHOLD = 0.55  # the audit's default (params.yaml audit.dup_threshold)


def _opg(i, h=240, w=480):
    return phantoms.render_opg(np.random.default_rng([7, i]), h, w)[0]


def _jpeg(img, quality=60):
    ok, buf = cv2.imencode(".jpg", np.round(np.clip(img, 0, 1) * 255).astype(np.uint8),
                           [cv2.IMWRITE_JPEG_QUALITY, quality])
    return cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE).astype(np.float32) / 255


def _crop(img, l, t, r, b):
    h, w = img.shape
    return img[round(h * t):h - round(h * b), round(w * l):w - round(w * r)]


def _scale(img, f):
    h, w = img.shape
    return cv2.resize(img, (round(w * f), round(h * f)), interpolation=cv2.INTER_AREA if f < 1 else cv2.INTER_CUBIC)


def _rotate(img, deg):
    h, w = img.shape
    m = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), deg, 1.0)
    return cv2.warpAffine(img, m, (w, h), borderValue=0)


def _marks(img):
    h, w = img.shape
    ink = np.zeros((h, w), np.uint8)
    for text, x, y in (("L", 0.92, 0.93), ("SE:1 IM:1", 0.02, 0.08), ("2019-03-14", 0.75, 0.08)):
        cv2.putText(ink, text, (int(w * x), int(h * y)), cv2.FONT_HERSHEY_SIMPLEX, h / 400, 255, 1, cv2.LINE_AA)
    return np.maximum(img, ink.astype(np.float32) / 255)


def _to16_windowed(img):  # an 8-bit export re-windowed and stored as 16 bit
    u16 = np.round(np.clip((img - 0.08) / 0.85, 0, 1) * 65535).astype(np.uint16)
    return pngio.to_float01(u16)


TRANSFORMS = {
    "crop": lambda x: _crop(x, 0.10, 0.07, 0.04, 0.10),
    "scale_down": lambda x: _scale(x, 0.5),
    "scale_up": lambda x: _scale(x, 2.0),
    "jpeg": lambda x: _jpeg(x, 50),
    "bit_depth": lambda x: _to16_windowed(np.round(x * 255) / 255),
    "gamma": lambda x: np.power(x, 1.8),
    "brightness_contrast": lambda x: np.clip((x - 0.5) * 0.7 + 0.6, 0, 1),
    "rotation": lambda x: _rotate(x, -3.0),
    "marks_added": _marks,
    "flip": lambda x: np.ascontiguousarray(x[:, ::-1]),
    "combined": lambda x: _jpeg(np.power(_scale(_rotate(_crop(x, 0.06, 0.1, 0.1, 0.03), 2.5), 0.6), 0.7), 55),
    "combined_flip": lambda x: _jpeg(np.power(np.clip(_scale(_rotate(_crop(x, 0.1, 0.04, 0.05, 0.08), -2.0), 1.6), 0, 1), 1.4)[:, ::-1], 60),
}


@pytest.fixture(scope="module")
def sources():
    imgs = [_opg(i) for i in range(6)]
    return imgs, [duplicates.fingerprint(x) for x in imgs]


@pytest.mark.parametrize("kind", list(TRANSFORMS))
def test_planted_copy_is_grouped_with_its_source_only(sources, kind):
    imgs, fps = sources
    copy = TRANSFORMS[kind](imgs[2]).astype(np.float32)
    labels, pairs = duplicates.group(fps + [duplicates.fingerprint(copy)], THRESHOLD)
    assert labels[6] == labels[2] == 2, (kind, pairs)
    assert len(set(labels)) == 6  # every other image alone
    (i, j, m), = pairs
    assert (i, j) == (2, 6) and m.similarity >= THRESHOLD
    assert m.kind == ("flipped" if kind in ("flip", "combined_flip") else "copy")


def test_burned_in_marks_on_the_source_removed_from_the_copy(sources):
    imgs, fps = sources
    marked = duplicates.fingerprint(_marks(imgs[4]))
    clean = duplicates.fingerprint(_jpeg(_scale(imgs[4], 0.8), 70))
    labels, _ = duplicates.group([marked, clean] + fps[:4], THRESHOLD)
    assert labels[:2] == [0, 0] and len(set(labels)) == 5


def test_distinct_look_alike_phantoms_stay_far_below_the_threshold(sources):
    # phantoms are drawn from one anatomy model: many pairs register (same layout, tooth outlines);
    # their fine detail agrees in few blocks, so the similarity stays far from the threshold
    _, fps = sources
    more = fps + [duplicates.fingerprint(_opg(i)) for i in range(6, 12)]
    sims = [duplicates.confirm(more[i], more[j]) for i in range(len(more)) for j in range(i + 1, len(more))]
    assert max(m.similarity for m in sims) < THRESHOLD - 0.15
    labels, pairs = duplicates.group(more, THRESHOLD)
    assert pairs == [] and labels == list(range(len(more)))


def test_turned_copy_matches_once_turned_back(sources):
    imgs, fps = sources
    turned = duplicates.fingerprint(np.ascontiguousarray(imgs[1][::-1, ::-1]))
    m = duplicates.confirm(fps[1], turned.rotated180())
    assert m.similarity > THRESHOLD + 0.25 and m.kind == "copy" and abs(m.rotation) < 1


def _descriptors(n, seed, k=100):
    """``n`` synthetic descriptor sets of ``k`` descriptors: image 2i+1 shares 60 % of image 2i's
    descriptors, each bit flipped with p = 0.1 (a planted copy); 30 % of every set from 64 common
    descriptors (stop-word material)."""
    rng = np.random.default_rng(seed)
    common = rng.integers(0, 256, (64, 32), dtype=np.uint8)
    des = []
    for i in range(n):
        d = rng.integers(0, 256, (k, 32), dtype=np.uint8)
        d[: int(0.3 * k)] = common[rng.integers(0, 64, int(0.3 * k))]
        if i % 2:
            keep = int(0.6 * k)
            d[-keep:] = des[-1][:keep] ^ np.packbits(rng.random((keep, 256)) < 0.1, axis=1)
        des.append(d)
    mirrored = [rng.integers(0, 256, (k, 32), dtype=np.uint8) for _ in range(n)]
    return des, mirrored


def test_candidates_are_capped_per_image_and_find_the_planted_copies():
    des, mirrored = _descriptors(60, 0)
    pairs, st = duplicates.candidates(des, mirrored, max_per_image=3, max_postings=8)
    assert pairs and all(i < j for i, j, _ in pairs) and len({(i, j) for i, j, _ in pairs}) == len(pairs)
    assert len(pairs) <= 60 * 3 * 2  # each image keeps at most 3 per query (upright, mirrored)
    keys = {(i, j) for i, j, _ in pairs}
    assert all((i, i + 1) in keys for i in range(0, 60, 2))
    assert st.stop_words > 0  # the common descriptors' words are in more than 8 images: dropped
    # a flipped copy: found through the mirrored query only
    pairs, _ = duplicates.candidates(des[:1] + [mirrored[1]] + des[2:], [mirrored[0], des[1]] + mirrored[2:],
                                     max_per_image=1)
    assert (0, 1) in {(i, j) for i, j, _ in pairs}
    assert duplicates.candidates(des[:1], mirrored[:1]) == ([], duplicates.IndexStats(1, 20, 0, 0, 0))


def test_the_index_does_not_compare_all_pairs():
    # postings read per image stay bounded (stop words: no posting list longer than max_postings)
    # and grow far slower than the archive: all pairs would read 4x as much per image at 4x the images
    cap = 16
    per_image, cand = [], []
    for n in (300, 1200):
        des, mirrored = _descriptors(n, n)
        pairs, st = duplicates.candidates(des, mirrored, max_per_image=4, max_postings=cap)
        words = sum(len(duplicates.words(d, st.bits)) for d in des + mirrored)
        assert st.visits <= words * cap
        per_image.append(st.visits / n)
        cand.append(len(pairs) / n)
        found = {(i, j) for i, j, _ in pairs}
        assert sum((i, i + 1) in found for i in range(0, n, 2)) >= 0.95 * n / 2
    assert per_image[1] < 2 * per_image[0]
    assert cand[1] <= 8 and cand[1] < 1.5 * cand[0]  # confirmations grow linearly with the archive


def test_word_bits_grow_by_one_per_doubling_of_the_archive():
    b = [duplicates._word_bits(n) for n in (100, 5242, 5242 * 2, 5242 * 4, 10 ** 9)]
    assert b == [duplicates.WORD_BITS_MIN] * 2 + [21, 22, duplicates.WORD_BITS_MAX]
    w = duplicates.words(np.zeros((3, 32), np.uint8), 20)  # identical descriptors: one word per table
    assert len(w) == duplicates.WORD_TABLES and w.dtype == np.int64


def test_keypoint_words_rank_a_cropped_copy_first_among_look_alikes(sources):
    imgs, fps = sources
    copy = duplicates.fingerprint(_jpeg(TRANSFORMS["crop"](imgs[4]), 60))
    mirrored = duplicates.fingerprint(np.ascontiguousarray(_crop(imgs[1], 0.08, 0.05, 0.03, 0.1)[:, ::-1]))
    more = fps + [copy, mirrored]
    pairs, _ = duplicates.candidates([f.des for f in more], [f.des_m for f in more], max_per_image=1)
    assert (4, 6) in {(i, j) for i, j, _ in pairs} and (1, 7) in {(i, j) for i, j, _ in pairs}


def test_confirmations_over_two_workers_give_the_same_groups(sources):
    imgs, fps = sources
    fps = fps + [duplicates.fingerprint(TRANSFORMS["combined"](imgs[3]))]
    one = duplicates.group(fps, THRESHOLD, workers=1)
    two = duplicates.group(fps, THRESHOLD, workers=2)
    assert one == two
    assert one[0][6] == 3


def test_featureless_images_do_not_crash_and_do_not_match():
    flat = duplicates.fingerprint(np.full((200, 400), 0.5, np.float32))
    ramp = duplicates.fingerprint(np.tile(np.linspace(0, 1, 400, dtype=np.float32), (200, 1)))
    assert duplicates.confirm(flat, ramp).similarity == 0.0
    assert duplicates.confirm(flat, flat).similarity == 0.0
    labels, pairs = duplicates.group([flat, ramp], THRESHOLD)
    assert labels == [0, 1] and pairs == []


def test_real_opgs_combined_copy_grouped_and_distinct_patients_apart(opg_dev):
    paths = sorted((opg_dev / "images").iterdir())[::5]
    imgs = [pngio.to_float01(decode_file(p, "test").pixels) for p in paths]
    copy = TRANSFORMS["combined"](imgs[1]).astype(np.float32)
    fps = [duplicates.fingerprint(x) for x in imgs + [copy]]
    labels, _ = duplicates.group(fps, THRESHOLD)
    assert labels[-1] == labels[1]
    assert len(set(labels)) == len(imgs)
