import numpy as np
import pytest

from pipeline.core.frames import Cleaning


def _marked(h=20, w=30):
    img = np.zeros((h, w), np.uint16)
    img[3:7, 5:12] = 1000  # a box x0=5, y0=3, x1=12, y1=7 in the ingested frame
    return img


@pytest.mark.parametrize("rot", [False, True])
def test_box_follows_the_pixels(rot):
    img = _marked()
    c = Cleaning(30, 20, rot, 2, 1, 27, 19)
    cleaned = c.apply(img)
    assert cleaned.shape == (18, 25) and c.size == (25, 18)
    ys, xs = np.nonzero(cleaned)
    found = (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
    assert c.to_cleaned((5, 3, 12, 7)) == found
    assert c.to_ingested(found) == (5, 3, 12, 7)


def test_identity_and_round_trip():
    c = Cleaning.identity(40, 10)
    assert c.to_ingested((1, 2, 3, 4)) == (1, 2, 3, 4)
    c = Cleaning(40, 10, True, 3, 2, 35, 9)
    for box in [(0, 0, 5, 5), (10, 1, 30, 7)]:
        assert c.to_ingested(c.to_cleaned(box)) == box


def test_bad_trim_is_a_clear_error():
    with pytest.raises(ValueError, match="does not fit"):
        Cleaning(10, 10, False, 0, 0, 11, 10)
    with pytest.raises(ValueError, match="expects"):
        Cleaning(10, 10).apply(np.zeros((5, 5)))


def test_from_row():
    c = Cleaning.from_row({"rot180": "1", "trim_x0": 1, "trim_y0": 2, "trim_x1": 9, "trim_y1": 8}, 10, 10)
    assert c.rot180 and c.size == (8, 6)
