"""Generators/critics: aspect-true start grids, shapes, no BatchNorm in the critic, baseline recipe,
export + load_generator round trip."""
from __future__ import annotations

import hashlib
import pickle

import pytest
import torch
from torch import nn

from pipeline.gan.models import (build_critic, build_generator, export_generator,
                             load_generator, start_grid)
from tests.builders import model_config


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("hw, expected", [
    ((72, 128), (9, 16, 3)), ((144, 256), (9, 16, 4)), ((288, 512), (9, 16, 5)),
    ((64, 64), (4, 4, 4)), ((256, 256), (4, 4, 6)), ((16, 32), (4, 8, 2)), ((15, 20), (15, 20, 0)),
])
def test_start_grid_keeps_the_aspect(hw, expected):
    h0, w0, n = start_grid(*hw)
    assert (h0, w0, n) == expected
    assert (h0 * 2 ** n, w0 * 2 ** n) == hw


@pytest.mark.parametrize("model", ["resnet", "baseline"])
@pytest.mark.parametrize("hw", [(16, 32), (16, 16)])
def test_generator_and_critic_shapes(model, hw):
    cfg = model_config(model=model, z_dim=12, features=4)
    g, d = build_generator(cfg, *hw), build_critic(cfg, *hw)
    torch.manual_seed(0)
    x = g(torch.randn(3, g.z_dim))
    assert g.z_dim == 12 and x.shape == (3, 1, *hw)
    assert x.min() >= -1 and x.max() <= 1
    # the output is squashed into [-1, 1] (tanh), not merely small: with the last layer's weights
    # 1000x larger most pixels sit at -1 or 1 and none beyond
    last = [m for m in g.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))][-1]
    with torch.no_grad():
        last.weight.mul_(1000)
        big = g(torch.randn(3, g.z_dim))
        last.weight.div_(1000)
    assert big.abs().max() <= 1 and (big.abs() > 0.999).float().mean() > 0.25
    assert d(x).shape == (3,)
    # each sample's score depends on that sample only (no batch statistics in the critic)
    d.eval()
    s_all = d(x)
    s_one = d(x[1:2])
    assert torch.allclose(s_all[1:2], s_one, atol=1e-5)


def test_resnet_grows_from_the_aspect_grid_without_transposed_convs():
    cfg = model_config(z_dim=8, features=4)
    g = build_generator(cfg, 72, 128)
    assert (g.h0, g.w0) == (9, 16)
    assert not any(isinstance(m, nn.ConvTranspose2d) for m in g.modules())
    d = build_critic(cfg, 72, 128)
    assert not any(isinstance(m, (nn.BatchNorm2d, nn.InstanceNorm2d)) for m in d.modules())
    d_ln = build_critic(model_config(z_dim=8, features=4, critic_norm="layer"), 72, 128)
    assert any(isinstance(m, nn.GroupNorm) and m.num_groups == 1 for m in d_ln.modules())
    assert d_ln(torch.zeros(2, 1, 72, 128)).shape == (2,)


def test_baseline_is_the_dcgan_recipe():
    cfg = model_config(model="baseline", z_dim=10, features=4)
    g, d = build_generator(cfg, 32, 32), build_critic(cfg, 32, 32)
    convt = [m for m in g.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert convt[0].out_channels == 16 * 4 and convt[0].kernel_size == (4, 4)
    assert all(m.kernel_size == (4, 4) for m in convt)
    assert any(isinstance(m, nn.BatchNorm2d) for m in g.modules())
    norms = [m for m in d.modules() if isinstance(m, nn.InstanceNorm2d)]
    assert norms and all(m.affine for m in norms)
    assert max(m.out_channels for m in d.modules() if isinstance(m, nn.Conv2d)) <= 8 * 4
    w = torch.cat([m.weight.flatten() for m in d.modules() if isinstance(m, nn.Conv2d)])
    # DCGAN init: every conv weight drawn from N(0, 0.02); n of them have a mean within 5 standard
    # errors (0.02 / sqrt(n)) of 0 and a standard deviation within 5 x 0.02 / sqrt(2 n) of 0.02
    n = w.numel()
    assert n > 1000 and abs(w.mean().item()) < 5 * 0.02 / n ** 0.5
    assert abs(w.std().item() - 0.02) < 5 * 0.02 / (2 * n) ** 0.5, w.std().item()


def test_export_and_load_generator_round_trip(tmp_path):
    cfg = model_config(z_dim=6, features=4)
    g = build_generator(cfg, 16, 32).eval()
    path = tmp_path / "generator.pt"
    export_generator(path, g, cfg, step=7, variant="v")
    loaded, info = load_generator(path)
    z = torch.randn(2, 6)
    assert torch.equal(loaded(z), g(z))
    assert info["step"] == 7 and info["variant"] == "v" and info["model"]["z_dim"] == 6
    assert info["checkpoint_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(pickle.UnpicklingError):
        load_generator(tmp_path / "bad.pt")


def test_mean_init_starts_the_generator_at_the_train_mean():
    """train.mean_init: with the last conv silenced, the generator draws the train set's mean image
    (clamped to tanh's usable range), whatever z; without it, flat grey. (No layout basis here: the
    offset alone.)"""
    torch.manual_seed(0)
    g = build_generator(model_config(z_dim=8, features=4, max_features=16, layout_basis=0), 18, 32).eval()
    images = torch.rand(10, 1, 18, 32) * 1.6 - 0.8
    with torch.no_grad():
        g.out.weight.zero_()
        g.out.bias.zero_()
        assert torch.allclose(g(torch.randn(3, 8)), torch.zeros(3, 1, 18, 32))
        g.init_mean(images)
        out = g(torch.randn(3, 8))
    assert torch.allclose(out, images.mean(0, keepdim=True).expand(3, -1, -1, -1), atol=1e-5)


def test_layout_basis_starts_at_a_gaussian_model_of_the_train_set():
    """train.layout_basis: after init_mean the generator is offset + coef(z) @ basis (the conv branch
    silenced); the basis spans the train set's principal directions, so generated images vary along
    the directions the train images vary along, with about the same spread."""
    torch.manual_seed(0)
    h, w, k = 18, 32, 3
    # train images on a known 2-d subspace (pre-tanh), plus tiny noise
    a, b = torch.zeros(h, w), torch.zeros(h, w)
    a[:, : w // 2], b[:, w // 2:] = 1.0, 1.0             # orthogonal directions
    coeffs = torch.randn(200, 2) * torch.tensor([0.5, 0.2])
    pre = 0.1 + coeffs[:, :1, None] * a + coeffs[:, 1:, None] * b + 0.001 * torch.randn(200, h, w)
    images = torch.tanh(pre).unsqueeze(1)
    g = build_generator(model_config(z_dim=8, features=4, max_features=16, layout_basis=k), h, w).eval()
    g.init_mean(images)
    with torch.no_grad():
        z = torch.randn(2000, 8)
        out = torch.atanh(g(z).clamp(-0.999, 0.999))[:, 0]
        expected = g.offset[0, 0] + (z[:, :k] @ g.basis).view(-1, h, w)
    assert torch.allclose(out, expected, atol=1e-3)            # the conv branch is silent at the start
    # generated spread along each train direction matches the train set's (pre-tanh), within 10 %
    centred = out - out.mean(0)
    for direction, sd in ((a, 0.5), (b, 0.2)):
        unit = direction / direction.norm()
        got = (centred * unit).sum((1, 2)).std()
        assert abs(got / (sd * direction.norm()) - 1) < 0.1
    # and nothing along a direction the train set does not vary in
    c = torch.ones(h, w)
    c[h // 2:] = -1.0                                      # orthogonal to both
    assert (centred * c / c.norm()).sum((1, 2)).std() < 0.01
    # the basis is trained: it is a parameter with a gradient
    g.train()
    g(torch.randn(4, 8)).sum().backward()
    assert g.basis.grad is not None and g.basis.grad.abs().sum() > 0


def test_minibatch_std_channel_is_zero_for_a_batch_without_variety():
    from pipeline.gan.models import minibatch_std
    same = torch.randn(1, 3, 2, 4).expand(8, -1, -1, -1)
    out = minibatch_std(same)
    assert out.shape == (8, 4, 2, 4) and torch.allclose(out[:, 3], torch.zeros(8, 2, 4), atol=1e-3)
    varied = minibatch_std(torch.randn(8, 3, 2, 4))
    assert (varied[:, 3] > 0.3).all()
    # groups of 4 (samples i, i + 2, i + 4, i + 6 of 8): each group's channel is its own std
    x = torch.randn(8, 3, 2, 4)
    x[0::2] = same[:4]
    grouped = minibatch_std(x)[:, 3, 0, 0]
    assert torch.allclose(grouped[0::2], torch.zeros(4), atol=1e-3) and (grouped[1::2] > 0.3).all()
    # a critic with the channel scores every sample and takes a gradient penalty's double backward
    d = build_critic(model_config(z_dim=8, features=4, max_features=16, critic_mbstd=True), 18, 32)
    xr = torch.randn(4, 1, 18, 32, requires_grad=True)
    score = d(xr)
    (g,) = torch.autograd.grad(score.sum(), xr, create_graph=True)
    g.norm().backward()
    assert score.shape == (4,)


@pytest.mark.parametrize("model", ["resnet", "baseline"])
def test_real_and_fake_in_one_critic_forward_score_as_two(model):
    """critic_concat: one forward of cat(real, fake) with parts=2 gives each half's scores of its own
    forward (the minibatch-std channel stays within each half), to float rounding."""
    from pipeline.gan.models import ModelConfig, build_critic

    cfg = ModelConfig(model=model, z_dim=8, features=4, max_features=16, critic_norm="layer", min_grid=4,
                      layout_basis=0, critic_mbstd=True, upsample="nearest")
    torch.manual_seed(0)
    D = build_critic(cfg, 16, 32)
    real, fake = torch.rand(4, 1, 16, 32) * 2 - 1, torch.rand(4, 1, 16, 32) * 0.2
    both = D(torch.cat([real, fake]), parts=2)
    assert torch.allclose(both, torch.cat([D(real), D(fake)]), rtol=0, atol=1e-5)
    if model == "resnet":   # without parts, the std channel would mix real and fake
        assert not torch.allclose(D(torch.cat([real, fake])), both, rtol=0, atol=1e-5)
