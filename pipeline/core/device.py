"""The torch device a stage runs on. A module of its own so that metrics and generation pick a
device without importing the GAN's models."""
from __future__ import annotations

import torch


def torch_device(name: str) -> torch.device:
    """``auto`` (CUDA when there is one, else the CPU), ``cpu`` or ``cuda``: the device a stage runs on."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)
