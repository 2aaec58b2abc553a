"""SR training: it learns detail bicubic cannot give, resumes bit-identically, and stops on a budget."""
import numpy as np
import pytest
import torch

from pipeline.sr.models import load_sr
from pipeline.sr.train import SRConfig, train_sr
from pipeline.sr.upscale import bicubic, upscale


def _stripes(n=4, h=32, w=32, seed=0):
    """Images with fine vertical stripes (period 2 px: gone at x4) over a smooth ramp."""
    rng = np.random.default_rng(seed)
    x = np.arange(w)
    out = []
    for _ in range(n):
        ramp = np.linspace(0.3, 0.7, h)[:, None] * np.ones((1, w)) + rng.uniform(-0.1, 0.1)
        out.append(np.clip(ramp + 0.2 * ((x % 2) - 0.5)[None, :], 0, 1))
    return np.stack(out).astype(np.float32)


def _tensor(imgs):
    return torch.from_numpy(imgs)[:, None] * 2 - 1


TINY = dict(features=8, blocks=1, critic_layers=2, patch=16, batch=8, log_every=10, cpu_threads=1, device="cpu")


def test_the_pixel_loss_learns_detail_bicubic_cannot_give():
    train = _stripes(4, seed=0)
    r = train_sr(SRConfig(**TINY, steps=300, adv_weight=0.0, l1_weight=1.0, lr=3e-3, ema_decay=0.9, hflip=False),
                 4, _tensor(train), 0, None, progress=False)
    held = _stripes(2, seed=1)
    low = held.reshape(2, 8, 4, 8, 4).mean(axis=(2, 4))
    sr_err = np.abs(upscale(r["generator"], low, [0, 1]) - held).mean()
    bic_err = np.abs(bicubic(low, 4) - held).mean()
    assert sr_err < 0.5 * bic_err, (sr_err, bic_err)


def test_a_resumed_run_is_the_uninterrupted_one(tmp_path):
    imgs = _tensor(_stripes(3))
    cfg = SRConfig(**TINY, steps=6, checkpoint_every=3)
    train_sr(cfg, 4, imgs, 1, tmp_path / "a", progress=False)
    train_sr(SRConfig(**TINY, steps=3, checkpoint_every=3), 4, imgs, 1, tmp_path / "b", progress=False)
    r = train_sr(cfg, 4, imgs, 1, tmp_path / "b", progress=False)   # resumes at step 3
    assert r["steps"] == 6
    a, _ = load_sr(tmp_path / "a" / "sr.pt")
    b, _ = load_sr(tmp_path / "b" / "sr.pt")
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(va, vb), k


def test_a_checkpoint_of_another_config_is_not_resumed(tmp_path):
    imgs = _tensor(_stripes(3))
    train_sr(SRConfig(**TINY, steps=3, checkpoint_every=3), 4, imgs, 1, tmp_path, progress=False)
    r = train_sr(SRConfig(**{**TINY, "lr": 1e-3}, steps=2, checkpoint_every=3), 4, imgs, 1, tmp_path, progress=False)
    assert r["steps"] == 2


def test_the_cpu_budget_ends_the_run():
    r = train_sr(SRConfig(**TINY, steps=10**6), 4, _tensor(_stripes(2)), 0, None, budget_cpu_s=0.5, progress=False)
    assert r["stopped"] == "budget" and r["steps"] < 10**6


def test_a_patch_off_the_scale_grid_is_a_config_error():
    from pipeline.core.config import ConfigError
    with pytest.raises(ConfigError):
        train_sr(SRConfig(**{**TINY, "patch": 18}), 4, _tensor(_stripes(1)), 0, None, progress=False)


def test_overrides_name_known_keys_and_variants():
    from pipeline.core.config import ConfigError
    cfg = SRConfig(overrides={"v": {"steps": 5}})
    assert cfg.for_variant("v", ["v"]).steps == 5
    with pytest.raises(ConfigError):
        SRConfig(overrides={"v": {"stepz": 5}})
    with pytest.raises(ConfigError):
        cfg.for_variant("v", ["w"])
