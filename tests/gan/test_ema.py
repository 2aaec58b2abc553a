"""The generator's EMA: warm-up decay, the lerp itself, buffers copied, state round trip."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from pipeline.gan.ema import EMA


def _net(value: float) -> nn.Module:
    net = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    with torch.no_grad():
        for p in net.parameters():
            p.fill_(value)
    return net


def test_update_follows_the_warmed_up_decay_and_copies_buffers():
    live = _net(1.0)
    ema = EMA(live, decay=0.99)
    assert not any(p.requires_grad for p in ema.model.parameters()) and not ema.model.training
    with torch.no_grad():
        for p in live.parameters():
            p.fill_(3.0)
    live.train()(torch.randn(8, 3))            # moves the BatchNorm running statistics
    ema.update(live)                           # t = 1: decay min(0.99, 2 / 11)
    d = 2.0 / 11.0
    for p in ema.model.parameters():
        assert torch.allclose(p, torch.full_like(p, d * 1.0 + (1 - d) * 3.0))
    for b_s, b_l in zip(ema.model.buffers(), live.buffers()):
        assert torch.equal(b_s, b_l)
    for _ in range(500):                       # long after the warm-up the shadow converges to the live weights
        ema.update(live)
    assert all(torch.allclose(p, torch.full_like(p, 3.0), atol=1e-3) for p in ema.model.parameters())
    assert ema.updates == 501


def test_decay_zero_is_the_live_model_and_bad_decays_fail():
    live = _net(2.0)
    ema = EMA(live, decay=0.0)
    with torch.no_grad():
        for p in live.parameters():
            p.add_(1.0)
    ema.update(live)
    assert all(torch.equal(a, b) for a, b in zip(ema.model.parameters(), live.parameters()))
    for bad in (1.0, -0.1):
        with pytest.raises(ValueError, match="decay"):
            EMA(live, decay=bad)


def test_state_dict_round_trip_continues_identically():
    live = _net(0.5)
    a = EMA(live, 0.9)
    for k in range(3):
        with torch.no_grad():
            live[0].weight.add_(k)
        a.update(live)
    b = EMA(_net(0.0), 0.9)
    b.load_state_dict(a.state_dict())
    assert b.updates == 3
    a.update(live)
    b.update(live)
    assert all(torch.equal(x, y) for x, y in zip(a.model.state_dict().values(), b.model.state_dict().values()))
