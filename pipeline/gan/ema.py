"""Exponential moving average of a model's weights (the generator used for sampling).

``shadow = decay * shadow + (1 - decay) * live`` after every generator step, with the usual warm-up
``decay_t = min(decay, (1 + t) / (10 + t))`` so early samples are not dominated by the random init.
Buffers (BatchNorm running statistics) are copied from the live model.
"""
from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        self.decay = decay
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self.updates = 0

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        d = min(self.decay, (1.0 + self.updates) / (10.0 + self.updates))
        shadow = [p for p in self.model.parameters()]
        live = [p.detach() for p in model.parameters()]
        torch._foreach_lerp_(shadow, live, 1.0 - d)
        for b_s, b_l in zip(self.model.buffers(), model.buffers()):
            b_s.copy_(b_l)

    def state_dict(self) -> dict:
        return {"model": self.model.state_dict(), "updates": self.updates, "decay": self.decay}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.updates = int(state["updates"])
