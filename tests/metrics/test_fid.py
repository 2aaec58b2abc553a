"""FID/KID: loaded only from a local weights file (the test writes one from a freshly built model);
without one the metrics say so instead of printing a number; nothing is downloaded."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.metrics.fid import (NOT_COMPUTED, FIDConfig, fid_kid, frechet_distance, kernel_inception_distance,
                          load_inception, weights_available)
from pipeline.demo.phantoms import render_opg


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    from torchvision.models import inception_v3

    torch.manual_seed(0)
    net = inception_v3(weights=None, aux_logits=True, init_weights=False)
    # calibrate the BatchNorm statistics on a few phantoms, so that random features stay O(1)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = None
    rng = np.random.default_rng(9)
    x = torch.from_numpy(np.stack([render_opg(rng, 48, 96)[0] for _ in range(6)])).unsqueeze(1)
    net.train()
    with torch.no_grad():
        net(torch.nn.functional.interpolate(x, size=(299, 299), mode="bilinear").repeat(1, 3, 1, 1))
    path = tmp_path_factory.mktemp("inc") / "inception_v3_local.pth"
    torch.save(net.state_dict(), path)
    return path


def test_no_weights_file_means_not_computed(tmp_path):
    assert not weights_available("") and not weights_available(None)
    assert not weights_available(tmp_path / "missing.pth")
    out = fid_kid(None, np.zeros((3, 8, 8)), np.zeros((3, 8, 8)), FIDConfig(), 0)
    assert out == {"fid": NOT_COMPUTED, "kid_x1e3": NOT_COMPUTED}
    with pytest.raises(FileNotFoundError):
        load_inception(tmp_path / "missing.pth")


def test_wrong_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.pth"
    torch.save({"conv.weight": torch.zeros(3)}, bad)
    with pytest.raises(ValueError, match="inception_v3 state dict"):
        load_inception(bad)


def test_loads_local_weights_and_scores(weights, monkeypatch):
    import torch.hub

    def no_download(*a, **k):
        raise AssertionError("tried to download")
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_download)
    monkeypatch.setattr(torch.hub, "download_url_to_file", no_download)
    net = load_inception(weights)
    ref = torch.load(weights, weights_only=True)
    assert torch.equal(net.state_dict()["Conv2d_1a_3x3.conv.weight"], ref["Conv2d_1a_3x3.conv.weight"])
    rng = np.random.default_rng(0)
    a = np.stack([render_opg(rng, 48, 96)[0] for _ in range(8)])
    b = np.stack([render_opg(rng, 48, 96)[0] for _ in range(8)])
    noise = rng.uniform(0, 1, a.shape).astype(np.float32)
    cfg = FIDConfig(batch=8, kid_subsets=20, kid_subset_size=8)
    real = fid_kid(net, a, b, cfg, 0)
    bad = fid_kid(net, a, noise, cfg, 0)
    print(f"\nrandom-init Inception: real vs real FID {real['fid']:.3g} KID {real['kid_x1e3']:.3g}; "
          f"real vs noise FID {bad['fid']:.3g} KID {bad['kid_x1e3']:.3g}")
    assert isinstance(real["fid"], float) and real["fid"] < bad["fid"]
    assert real["kid_x1e3"] < bad["kid_x1e3"]


def test_frechet_and_kid_basics():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(400, 4))
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    assert frechet_distance(a, a + 1.0) == pytest.approx(4.0, rel=1e-3)   # |mean shift|^2
    b = rng.normal(size=(400, 4))
    assert abs(kernel_inception_distance(a, b, 10, 200, 0)) < kernel_inception_distance(a, a + 1.0, 10, 200, 0)


def test_frechet_small_sets_match_the_matrix_square_root():
    """Fewer images than feature dimensions: the nuclear-norm shortcut equals the sqrtm formula."""
    from scipy import linalg

    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(10, 20)), rng.normal(size=(12, 20)) * 1.3 + 0.2
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    expected = (((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(s1) + np.trace(s2)
                - 2 * np.trace(linalg.sqrtm(s1 @ s2).real))
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-6)
