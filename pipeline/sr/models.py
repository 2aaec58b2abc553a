"""The super-resolution generator and its patch critic.

Generator: a residual convolutional body at the low resolution, a 3x3 conv + pixel shuffle per
doubling (each output sub-position gets its own weights, so detail can depend on where a pixel lies
in its block; started as nearest upsampling, ICNR, so no checkerboard at the start), one noise channel at the output resolution (seeded per image, so detail is drawn, not
averaged), and a residual added to the bicubic upsampling of the input. Its last operation is the
consistency projection :func:`project`: every ``scale x scale`` block of the output averages exactly
to the low-resolution pixel it came from, so the output scaled back down (area) gives the input
back: the global layout stays the GAN's by construction.

Critic: a fully convolutional WGAN critic on full-resolution patches, conditioned on the nearest
upsampling of the low-resolution patch; its score is the mean of its per-location scores.
"""
from __future__ import annotations

import dataclasses
import hashlib
import io
import math
import os

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.core import atomic

FORMAT = "dentsynth-sr/1"


@dataclasses.dataclass(frozen=True)
class SRModelConfig:
    scale: int          # 2, 4 or 8
    features: int       # channels of the generator body and the critic's first layer
    blocks: int         # residual blocks at the low resolution
    noise: bool         # one noise channel at the output resolution
    critic_layers: int  # stride-2 conv layers of the patch critic

    def __post_init__(self) -> None:
        if self.scale not in (2, 4, 8):
            raise ValueError(f"sr scale must be 2, 4 or 8, got {self.scale}")


def downscale(x: torch.Tensor, scale: int) -> torch.Tensor:
    """Area downscaling by an integer factor: the mean of each ``scale x scale`` block (what
    cv2.INTER_AREA computes for integer factors)."""
    return F.avg_pool2d(x, scale)


def project(y: torch.Tensor, lr: torch.Tensor, scale: int) -> torch.Tensor:
    """``y`` with each block's mean replaced by the low-resolution pixel: ``downscale(out) == lr``."""
    return y - F.interpolate(downscale(y, scale) - lr, scale_factor=scale, mode="nearest")


class _Res(nn.Module):
    def __init__(self, f: int) -> None:
        super().__init__()
        self.c1, self.c2 = nn.Conv2d(f, f, 3, padding=1), nn.Conv2d(f, f, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.c2(F.leaky_relu(self.c1(x), 0.2))


class SRGenerator(nn.Module):
    def __init__(self, cfg: SRModelConfig) -> None:
        super().__init__()
        self.cfg, self.scale, f = cfg, cfg.scale, cfg.features
        self.head = nn.Conv2d(1, f, 3, padding=1)
        self.body = nn.Sequential(*[_Res(f) for _ in range(cfg.blocks)])
        self.ups = nn.ModuleList([nn.Conv2d(f, 4 * f, 3, padding=1) for _ in range(int(math.log2(cfg.scale)))])
        for conv in self.ups:   # ICNR: the four sub-positions start with the same weights
            with torch.no_grad():
                conv.weight.copy_(conv.weight[::4].repeat_interleave(4, dim=0))
                conv.bias.copy_(conv.bias[::4].repeat_interleave(4, dim=0))
        self.tail1 = nn.Conv2d(f + int(cfg.noise), f, 3, padding=1)
        self.tail2 = nn.Conv2d(f, 1, 3, padding=1)
        nn.init.zeros_(self.tail2.weight)   # starts as bicubic upscaling
        nn.init.zeros_(self.tail2.bias)

    def halo(self) -> int:
        """Low-resolution pixels of context an output pixel depends on (each side), rounded up:
        tiles overlapping by this much give exactly the whole-image result."""
        lr_convs = 1 + 2 * self.cfg.blocks
        hr = sum(1 / 2 ** k for k in range(len(self.ups))) + 2 / self.scale
        return lr_convs + math.ceil(hr) + 2   # + the bicubic kernel's reach

    def forward(self, lr: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        """(n, 1, h, w) in [-1, 1] -> (n, 1, h*scale, w*scale); ``noise`` (n, 1, H, W) when the
        model has a noise channel (zeros if None)."""
        h = self.head(lr)
        h = h + self.body(h)
        for conv in self.ups:
            h = F.leaky_relu(F.pixel_shuffle(conv(h), 2), 0.2)
        if self.cfg.noise:
            if noise is None:
                noise = torch.zeros_like(h[:, :1])
            h = torch.cat([h, noise.to(h.dtype)], dim=1)
        r = self.tail2(F.leaky_relu(self.tail1(h), 0.2))
        base = F.interpolate(lr, scale_factor=self.scale, mode="bicubic", align_corners=False)
        return project(base + r, lr, self.scale)


class PatchCritic(nn.Module):
    """Scores a full-resolution patch given the nearest upsampling of its low-resolution input."""

    def __init__(self, cfg: SRModelConfig) -> None:
        super().__init__()
        layers, cin, f = [], 2, cfg.features
        for k in range(cfg.critic_layers):
            cout = f * 2 ** k
            layers += [nn.Conv2d(cin, cout, 4 if k else 3, stride=2 if k else 1, padding=1), nn.LeakyReLU(0.2)]
            cin = cout
        layers.append(nn.Conv2d(cin, 1, 3, padding=1))
        self.net = nn.Sequential(*layers)
        self.scale = cfg.scale

    def forward(self, hr: torch.Tensor, lr: torch.Tensor) -> torch.Tensor:
        cond = F.interpolate(lr, scale_factor=self.scale, mode="nearest")
        return self.net(torch.cat([hr, cond.to(hr.dtype)], dim=1)).mean(dim=(1, 2, 3))


def export_sr(path: str | os.PathLike, generator: SRGenerator, *, step: int, variant: str) -> None:
    """The (EMA) SR generator as a self-describing file, atomically."""
    state = {k: v.detach().to("cpu", copy=True).contiguous() for k, v in generator.state_dict().items()}
    payload = {"format": FORMAT, "model": dataclasses.asdict(generator.cfg), "step": int(step),
               "variant": variant, "state_dict": state}
    with atomic.open_file(path, "wb") as f:
        torch.save(payload, f)


def load_sr(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[SRGenerator, dict]:
    with open(path, "rb") as f:
        data = f.read()
    payload = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{path}: not a dentsynth super-resolution export")
    gen = SRGenerator(SRModelConfig(**payload["model"]))
    gen.load_state_dict(payload["state_dict"])
    gen.to(device).eval()
    return gen, {"model": payload["model"], "step": payload["step"], "variant": payload["variant"],
                 "sr_sha256": hashlib.sha256(data).hexdigest()}
