import cv2
import numpy as np

from pipeline.release.contact_sheet import contact_sheet


def _decode(png):
    return cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED)


def test_sheet_grid_keeps_aspect_and_grows_with_rows():
    wide = np.full((90, 160), 30000, np.uint16)
    one = _decode(contact_sheet([("a", wide)], thumb_w=64, columns=3))
    seven = _decode(contact_sheet([(str(i), wide) for i in range(7)], thumb_w=64, columns=3))
    assert one.ndim == 2 and one.dtype == np.uint8
    assert seven.shape[1] == 3 * (64 + 4) + 4 and seven.shape[0] > 2 * one.shape[0]
    # the thumbnail (36 px high for 16:9 at 64 wide) sits below the 28-px title band
    assert (np.abs(one[28:28 + 36, 4:4 + 64].astype(int) - 30000 / 65535 * 255) <= 1).all()


def test_empty_sheet_still_decodes():
    assert _decode(contact_sheet([])).size > 0
