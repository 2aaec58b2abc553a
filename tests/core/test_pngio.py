import numpy as np
import pytest

from pipeline.core import pngio


def test_png16_round_trip_is_lossless(tmp_path):
    rng = np.random.default_rng(0)
    img = rng.integers(0, 65536, size=(7, 13), dtype=np.uint16)
    p = pngio.write_png16(tmp_path / "a.png", img)
    assert np.array_equal(pngio.read_png16(p), img)


def test_conversions():
    assert pngio.to_uint16(np.array([[0, 255]], np.uint8)).tolist() == [[0, 65535]]
    assert pngio.to_uint16(np.array([[0.0, 1.0, 2.0, -1]], np.float32)).tolist() == [[0, 65535, 65535, 0]]
    f = pngio.to_float01(np.array([[0, 65535]], np.uint16))
    assert f.dtype == np.float32 and f.tolist() == [[0.0, 1.0]]


def test_png8_and_errors(tmp_path):
    p = pngio.write_png8(tmp_path / "b.png", np.array([[0.0, 1.0]], np.float32))
    assert pngio.read_png16(p).tolist() == [[0, 65535]]
    with pytest.raises(ValueError):
        pngio.encode_png16(np.zeros((2, 2, 3), np.uint16))
    with pytest.raises(OSError):
        pngio.read_png16(tmp_path / "missing.png")
