import base64

import cv2
import numpy as np

from pipeline.core import html


def test_image_data_uri_holds_the_exact_pixels():
    img = (np.arange(12 * 20, dtype=np.uint16).reshape(12, 20) * 250)
    uri = html.image_data_uri(img)
    assert uri.startswith("data:image/png;base64,")
    back = cv2.imdecode(np.frombuffer(base64.b64decode(uri.split(",", 1)[1]), np.uint8), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(back, img)
    assert html.png_data_uri(b"\x89PNG") == "data:image/png;base64," + base64.b64encode(b"\x89PNG").decode()
