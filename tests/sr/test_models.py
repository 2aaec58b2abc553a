"""The SR generator: consistency by construction, tiles that change nothing, one image per seed."""
import numpy as np
import pytest
import torch

from pipeline.sr.models import PatchCritic, SRGenerator, SRModelConfig, downscale, export_sr, load_sr, project
from pipeline.sr.upscale import bicubic, consistency_mae, noise_map, upscale, upscale_one


def _gen(scale=4, noise=True, seed=0):
    torch.manual_seed(seed)
    g = SRGenerator(SRModelConfig(scale=scale, features=8, blocks=2, noise=noise, critic_layers=2))
    torch.nn.init.normal_(g.tail2.weight, std=0.05)   # untrained but not the zero-initialised identity
    return g.double().eval()


@pytest.mark.parametrize("scale", [2, 4, 8])
def test_the_output_scaled_down_is_the_input(scale):
    g = _gen(scale)
    lr = torch.rand(2, 1, 6, 10, dtype=torch.float64) * 1.6 - 0.8
    with torch.no_grad():
        out = g(lr, torch.randn(2, 1, 6 * scale, 10 * scale, dtype=torch.float64))
    assert out.shape == (2, 1, 6 * scale, 10 * scale)
    assert torch.allclose(downscale(out, scale), lr, atol=1e-12)


def test_projection_keeps_detail_inside_blocks():
    y = torch.randn(1, 1, 8, 8, dtype=torch.float64)
    lr = torch.zeros(1, 1, 2, 2, dtype=torch.float64)
    p = project(y, lr, 4)
    assert torch.allclose(downscale(p, 4), lr)
    assert p.std() > 0.5   # the within-block variation survives


def test_a_fresh_generator_is_bicubic_upscaling():
    torch.manual_seed(0)
    g = SRGenerator(SRModelConfig(scale=4, features=8, blocks=1, noise=True, critic_layers=2)).double()
    lr = torch.rand(1, 1, 5, 7, dtype=torch.float64)
    base = torch.nn.functional.interpolate(lr, scale_factor=4, mode="bicubic", align_corners=False)
    with torch.no_grad():
        assert torch.allclose(g(lr), project(base, lr, 4), atol=1e-12)


@pytest.mark.parametrize("tile", [3, 5, 64])
def test_tiles_give_the_whole_image_result(tile):
    g = _gen(4)
    lr = np.random.default_rng(1).random((17, 23))
    whole = upscale_one(g, lr, seed=5, tile=1000)
    assert np.abs(upscale_one(g, lr, seed=5, tile=tile) - whole).max() < 1e-12


def test_each_image_is_its_seed_alone():
    g = _gen(2)
    lr = np.random.default_rng(2).random((3, 8, 8))
    a = upscale(g, lr, [10, 11, 12], tile=4)
    b = upscale(g, lr[1:2], [11], tile=8)
    assert np.array_equal(a[1], b[0])
    assert not np.array_equal(upscale(g, lr[:1], [10]), upscale(g, lr[:1], [99]))


def test_noise_is_a_stream_of_its_own():
    """The noise of seed s is not the GAN latent's stream of s (the latent's numbers come first there)."""
    latent = torch.randn(16, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    assert not torch.allclose(noise_map(7, 4, 4).flatten(), latent)
    assert torch.equal(noise_map(7, 4, 4), noise_map(7, 4, 4))


def test_consistency_and_bicubic_helpers():
    lr = np.random.default_rng(3).random((2, 6, 6)).astype(np.float32) * 0.5 + 0.25
    up = bicubic(lr, 4)
    assert up.shape == (2, 24, 24)
    block = np.repeat(np.repeat(lr, 4, axis=1), 4, axis=2)
    assert consistency_mae(block, lr, 4) < 1e-7
    assert consistency_mae(block + 0.1, lr, 4) == pytest.approx(0.1, abs=1e-6)


def test_critic_scores_one_value_per_patch():
    c = PatchCritic(SRModelConfig(scale=4, features=8, blocks=1, noise=True, critic_layers=3))
    assert c(torch.rand(3, 1, 32, 32), torch.rand(3, 1, 8, 8)).shape == (3,)


def test_export_round_trip(tmp_path):
    g = _gen(4).float()
    export_sr(tmp_path / "sr.pt", g, step=7, variant="v")
    h, info = load_sr(tmp_path / "sr.pt")
    assert info["step"] == 7 and info["model"]["scale"] == 4 and len(info["sr_sha256"]) == 64
    lr = np.random.default_rng(4).random((1, 6, 6))
    assert np.array_equal(upscale(g, lr, [1]), upscale(h, lr, [1]))
    (tmp_path / "bad.pt").write_bytes(b"nope")
    with pytest.raises(Exception):
        load_sr(tmp_path / "bad.pt")
