"""Generators and critics for the WGAN-GP.

Two families, chosen by ``ModelConfig.model``:

- ``resnet`` (ours): the generator starts from a grid of the target's aspect (9x16 for 16:9 sizes,
  4x4 for squares; :func:`start_grid`) and doubles with nearest-upsample + 3x3 conv residual blocks
  (no transposed convolutions, so no checkerboards). The critic mirrors it with average-pool
  residual blocks (the first one "optimised", straight from the grey channel) down to the same grid
  and a linear score over that whole grid; no BatchNorm (``critic_norm``: ``none`` or ``layer``), as
  the ResNet models of Gulrajani et al. (2017).
- ``baseline``: the earlier attempt's DCGAN recipe (ConvTranspose 4x4 from a square 4x4 grid with
  BatchNorm + ReLU, widths features x16 down to x2; critic Conv 4x4 stride 2 + InstanceNorm(affine)
  + LeakyReLU(0.2), widths features x1 up to x8; weights from N(0, 0.02)). It can only grow squares
  of side 4 * 2^k; a non-square or odd target is resized from the next square up (bilinear), as
  the earlier attempt bent its square grid to 16:9.

Generators expose ``z_dim``, ``height``, ``width`` and map ``z ~ N(0, 1)`` of shape ``(n, z_dim)``
to images ``(n, 1, H, W)`` in [-1, 1]. :func:`load_generator` reads the exported ``generator.pt``.
"""
from __future__ import annotations

import dataclasses
import hashlib
import io
import math
import os
from typing import Literal

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from pipeline.core import atomic



@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Architecture of the generator and critic. No defaults here: the values live in params.yaml
    ``train`` and reach this class only through ``TrainConfig.model_config()``."""

    model: Literal["resnet", "baseline"]
    z_dim: int
    features: int          # resnet: width at full resolution (doubles per halving); baseline: DCGAN "features"
    max_features: int      # resnet: width cap at the coarse grid
    critic_norm: Literal["none", "layer"]   # resnet critic: no BatchNorm, ever
    min_grid: int          # smallest side of the start grid
    layout_basis: int      # resnet: components of the generator's learned layout basis (0: none)
    critic_mbstd: bool     # resnet critic: a minibatch standard deviation channel before the score
    upsample: Literal["nearest", "bilinear"]   # resnet generator: how each block doubles its grid

    def __post_init__(self) -> None:
        if self.z_dim < 1 or self.features < 1 or self.max_features < 1 or self.min_grid < 1:
            raise ValueError(f"model sizes must be positive: {self}")
        if self.layout_basis < 0:
            raise ValueError(f"layout_basis must be >= 0, got {self.layout_basis}")


def start_grid(height: int, width: int, min_side: int = 4) -> tuple[int, int, int]:
    """(h0, w0, n_doublings): halve H and W while both stay integers and at least ``min_side``.

    72x128 -> (9, 16, 3); 288x512 -> (9, 16, 5); 64x64 -> (4, 4, 4); 16x32 -> (4, 8, 2).
    """
    if height < 1 or width < 1:
        raise ValueError(f"image size must be positive, got {height}x{width}")
    h, w, n = height, width, 0
    while h % 2 == 0 and w % 2 == 0 and h // 2 >= min_side and w // 2 >= min_side:
        h, w, n = h // 2, w // 2, n + 1
    return h, w, n


# ------------------------------------------------------------------------------------ batch norm
class BatchNorm(nn.BatchNorm2d):
    """The generators' BatchNorm: with one process exactly ``nn.BatchNorm2d``; in training with
    several ranks (torchrun) it normalises by the statistics of the *global* batch, summed over the
    ranks with an all-reduce that autograd differentiates through, so the maths (outputs, gradients,
    running statistics) does not depend on the number of processes beyond float rounding, and the
    running statistics (hence the exported EMA generator) are the same on every rank.

    ``nn.SyncBatchNorm`` does the same on GPUs only (it refuses CPU tensors, so gloo tests could
    not run it); every rank must hold the same number of samples (the trainer's ``batch / N``)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        from torch.distributed.nn.functional import all_reduce   # autograd-aware

        world = dist.get_world_size()
        xf = x.float()
        count = xf.numel() // xf.shape[1] * world
        mean = all_reduce(xf.sum(dim=(0, 2, 3))) / count          # two passes: no E[x^2] - E[x]^2
        centred = xf - mean.view(1, -1, 1, 1)
        var = all_reduce(centred.square().sum(dim=(0, 2, 3))) / count
        if self.track_running_stats and self.running_mean is not None and self.running_var is not None:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
                self.running_mean.lerp_(mean.detach(), m)
                self.running_var.lerp_(var.detach() * (count / max(count - 1, 1)), m)   # unbiased, as torch
        y = centred * torch.rsqrt(var + self.eps).view(1, -1, 1, 1)
        if self.affine:
            y = y * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)
        return y.to(x.dtype)


# ---------------------------------------------------------------------------------------- resnet
class _GBlock(nn.Module):
    """BN-ReLU-Up-Conv3-BN-ReLU-Conv3, shortcut Up-Conv1."""

    def __init__(self, cin: int, cout: int, upsample: str = "nearest") -> None:
        super().__init__()
        self.mode = upsample
        self.bn1, self.bn2 = BatchNorm(cin), BatchNorm(cout)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self._up(F.relu(self.bn1(x)))
        h = self.conv2(F.relu(self.bn2(self.conv1(h))))
        return h + self.skip(self._up(x))

    def _up(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "nearest":
            return F.interpolate(x, scale_factor=2.0, mode="nearest")
        return F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)


class _DBlock(nn.Module):
    """(Norm)-ReLU-Conv3-(Norm)-ReLU-Conv3-AvgPool, shortcut Conv1-AvgPool. No BatchNorm."""

    def __init__(self, cin: int, cout: int, norm: str, first: bool = False) -> None:
        super().__init__()
        self.first = first
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1)
        # LayerNorm over (C, H, W) with per-channel affine, independent of the input size
        self.n1 = nn.GroupNorm(1, cin) if norm == "layer" and not first else nn.Identity()
        self.n2 = nn.GroupNorm(1, cout) if norm == "layer" else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x if self.first else F.relu(self.n1(x))
        h = self.conv2(F.relu(self.n2(self.conv1(h))))
        return F.avg_pool2d(h, 2) + F.avg_pool2d(self.skip(x), 2)


def _widths(cfg: ModelConfig, n: int) -> list[int]:
    """Channel widths from the coarse grid (index 0) to full resolution (index n)."""
    return [min(cfg.max_features, cfg.features * 2 ** (n - i)) for i in range(n + 1)]


class ResNetGenerator(nn.Module):
    """z -> linear to the start grid -> residual up-blocks -> conv to one channel, plus a learned
    per-pixel offset and, with ``layout_basis`` k > 0, a learned linear layout ``coef(z) @ basis``
    (k images of full size), all before the tanh.

    :meth:`init_mean` starts the offset at the train set's mean image and the basis at its first k
    principal components (scaled by their spread, the coefficients start as z's first k entries),
    with the conv branch silenced: at step 0 the generator draws from a Gaussian model of the
    archive's global layout (arch, rows, mandible, and how they vary between patients), and the
    adversarial loss only has to add what a linear model cannot (anatomy's sharp structure)."""

    def __init__(self, cfg: ModelConfig, height: int, width: int) -> None:
        super().__init__()
        self.z_dim, self.height, self.width = cfg.z_dim, height, width
        self.h0, self.w0, n = start_grid(height, width, cfg.min_grid)
        ch = _widths(cfg, n)
        self.fc = nn.Linear(cfg.z_dim, ch[0] * self.h0 * self.w0)
        self.blocks = nn.Sequential(*[_GBlock(ch[i], ch[i + 1], cfg.upsample) for i in range(n)])
        self.out_bn = BatchNorm(ch[-1])
        self.out = nn.Conv2d(ch[-1], 1, 3, padding=1)
        self.offset = nn.Parameter(torch.zeros(1, 1, height, width))
        self.k = cfg.layout_basis
        if self.k:
            self.coef = nn.Linear(cfg.z_dim, self.k, bias=False)
            self.basis = nn.Parameter(torch.zeros(self.k, height * width))

    @torch.no_grad()
    def init_mean(self, images: torch.Tensor, mirror: bool = False) -> None:
        """Start at ``images`` (n, 1, H, W) in [-1, 1] (and their mirror images with ``mirror``,
        as training flips them): the offset at atanh(mean image); with a layout basis, the basis at
        the principal components of atanh(images) and the conv branch's last layer at zero."""
        x = images.float().clamp(-0.96, 0.96)
        if mirror:
            x = torch.cat([x, x.flip(3)])
        pre = torch.atanh(x)
        mean = pre.mean(dim=0, keepdim=True)
        self.offset.copy_(torch.atanh(x.mean(dim=0, keepdim=True)).to(self.offset.device))
        if not self.k:
            return
        centred = (pre - mean).flatten(1).double()
        _, sv, vt = torch.linalg.svd(centred, full_matrices=False)
        k = min(self.k, vt.shape[0])
        scale = sv[:k] / max(centred.shape[0] - 1, 1) ** 0.5
        self.basis.zero_()
        self.basis[:k] = (vt[:k] * scale[:, None]).float().to(self.basis.device)
        self.coef.weight.zero_()
        self.coef.weight[:, :min(self.k, self.z_dim)].copy_(torch.eye(self.k, min(self.k, self.z_dim)))
        self.out.weight.zero_()
        self.out.bias.zero_()

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.fc(z).view(z.shape[0], -1, self.h0, self.w0)
        x = self.out(F.relu(self.out_bn(self.blocks(x)))) + self.offset
        if self.k:
            x = x + (self.coef(z) @ self.basis).view(-1, 1, self.height, self.width)
        return torch.tanh(x)


def minibatch_std(h: torch.Tensor, group: int = 4) -> torch.Tensor:
    """One channel more: the standard deviation of the features over each group of ``group``
    samples (a divisor of the batch), averaged, so the critic sees a batch without variety."""
    n, c, hh, ww = h.shape
    g = math.gcd(n, group)
    if g < 2:
        return torch.cat([h, torch.zeros_like(h[:, :1])], dim=1)
    y = h.reshape(g, n // g, c, hh, ww)
    std = (y.var(dim=0, unbiased=False) + 1e-8).sqrt().mean(dim=(1, 2, 3))   # (n // g,)
    std = std.view(1, n // g, 1, 1, 1).expand(g, n // g, 1, hh, ww).reshape(n, 1, hh, ww)
    return torch.cat([h, std], dim=1)


class ResNetCritic(nn.Module):
    def __init__(self, cfg: ModelConfig, height: int, width: int) -> None:
        super().__init__()
        self.height, self.width = height, width
        h0, w0, n = start_grid(height, width, cfg.min_grid)
        if n < 1:
            raise ValueError(f"resnet critic: {height}x{width} cannot be halved down to a grid of side "
                             f">= {cfg.min_grid}")
        ch = _widths(cfg, n)[::-1]   # full resolution first: features, 2 x features, ...
        # the first block is the paper's "optimised" one (1 -> features, no pre-activation): at
        # full resolution it costs ~9 features^2 MACs per pixel instead of ~54 with a stem conv
        self.blocks = nn.Sequential(_DBlock(1, ch[0], cfg.critic_norm, first=True),
                                    *[_DBlock(ch[i], ch[i + 1], cfg.critic_norm) for i in range(n - 1)])
        # the score reads the whole start grid (not a sum over it): with 3 blocks a 72x128 critic's
        # receptive field is ~29 px, so pooling would make it a patch critic, blind to the layout
        self.mbstd = cfg.critic_mbstd
        self.fc = nn.Linear((ch[n - 1] + int(self.mbstd)) * h0 * w0, 1)

    def forward(self, x: torch.Tensor, parts: int = 1) -> torch.Tensor:
        """Scores of ``x``; ``parts`` > 1: ``x`` is that many batches concatenated (real and fake in
        one forward), and the minibatch standard deviation is taken within each, as in separate passes."""
        h = F.relu(self.blocks(x))
        if self.mbstd:
            h = minibatch_std(h) if parts == 1 else torch.cat([minibatch_std(c) for c in h.chunk(parts)])
        return self.fc(h.flatten(1)).flatten()


# -------------------------------------------------------------------------------------- baseline
def _baseline_side(height: int, width: int) -> tuple[int, int]:
    """(side, n_doublings) of the smallest square 4 * 2^k covering both sides."""
    side, n = 4, 0
    while side < max(height, width):
        side, n = side * 2, n + 1
    return side, n


def _dcgan_init(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.BatchNorm2d, nn.InstanceNorm2d)):
            if m.weight is not None:
                nn.init.normal_(m.weight, 1.0 if isinstance(m, (nn.BatchNorm2d, nn.InstanceNorm2d)) else 0.0,
                                0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class BaselineGenerator(nn.Module):
    def __init__(self, cfg: ModelConfig, height: int, width: int) -> None:
        super().__init__()
        self.z_dim, self.height, self.width = cfg.z_dim, height, width
        side, n = _baseline_side(height, width)
        if n < 1:
            raise ValueError(f"baseline generator needs images larger than 4x4, got {height}x{width}")
        f = cfg.features
        widths = [f * 16 // 2 ** i if f * 16 // 2 ** i >= f * 2 else f * 2 for i in range(n)]
        layers: list[nn.Module] = [nn.ConvTranspose2d(cfg.z_dim, widths[0], 4, 1, 0, bias=False),
                                   BatchNorm(widths[0]), nn.ReLU(True)]
        for i in range(n - 1):
            layers += [nn.ConvTranspose2d(widths[i], widths[i + 1], 4, 2, 1, bias=False),
                       BatchNorm(widths[i + 1]), nn.ReLU(True)]
        layers += [nn.ConvTranspose2d(widths[-1], 1, 4, 2, 1), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        self.side = side
        _dcgan_init(self)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.net(z.view(z.shape[0], self.z_dim, 1, 1))
        if (self.height, self.width) != (self.side, self.side):
            x = F.interpolate(x, size=(self.height, self.width), mode="bilinear", align_corners=False)
        return x


class BaselineCritic(nn.Module):
    def __init__(self, cfg: ModelConfig, height: int, width: int) -> None:
        super().__init__()
        self.height, self.width = height, width
        f = cfg.features
        layers: list[nn.Module] = [nn.Conv2d(1, f, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        h, w, c = height // 2, width // 2, f
        while min(h, w) > 4:
            cout = min(c * 2, f * 8)
            layers += [nn.Conv2d(c, cout, 4, 2, 1, bias=False), nn.InstanceNorm2d(cout, affine=True),
                       nn.LeakyReLU(0.2, True)]
            h, w, c = h // 2, w // 2, cout
        if min(h, w) < 1:
            raise ValueError(f"baseline critic: image {height}x{width} too small")
        layers.append(nn.Conv2d(c, 1, (h, w), 1, 0))   # the remaining grid -> one score
        self.net = nn.Sequential(*layers)
        _dcgan_init(self)

    def forward(self, x: torch.Tensor, parts: int = 1) -> torch.Tensor:
        return self.net(x).flatten()   # per-sample normalisation (InstanceNorm): parts need no care


# ------------------------------------------------------------------------------------- factories
def build_generator(cfg: ModelConfig, height: int, width: int) -> nn.Module:
    cls = ResNetGenerator if cfg.model == "resnet" else BaselineGenerator
    return cls(cfg, height, width)


def build_critic(cfg: ModelConfig, height: int, width: int) -> nn.Module:
    cls = ResNetCritic if cfg.model == "resnet" else BaselineCritic
    return cls(cfg, height, width)


def export_generator(path: str | os.PathLike, generator: nn.Module, cfg: ModelConfig, *, step: int,
                     variant: str) -> None:
    """Write the (EMA) generator as a self-describing ``generator.pt``, atomically."""
    state = {k: v.detach().to("cpu", copy=True).contiguous() for k, v in generator.state_dict().items()}
    payload = {"format": "dentsynth-generator/1", "model": dataclasses.asdict(cfg),
               "height": generator.height, "width": generator.width, "step": int(step),
               "variant": variant, "state_dict": state}
    with atomic.open_file(path, "wb") as f:
        torch.save(payload, f)


def load_generator(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """(generator in eval mode on ``device``, info): info holds model config, step, variant, sha256."""
    with open(path, "rb") as f:
        data = f.read()
    payload = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    if not isinstance(payload, dict) or payload.get("format") != "dentsynth-generator/1":
        raise ValueError(f"{path}: not a dentsynth generator export")
    cfg = ModelConfig(**{"layout_basis": 0, "critic_mbstd": False, "upsample": "nearest",
                         **payload["model"]})   # older exports lack the newer keys
    gen = build_generator(cfg, payload["height"], payload["width"])
    gen.load_state_dict(payload["state_dict"])
    gen.to(device).eval()
    info = {"model": payload["model"], "height": payload["height"], "width": payload["width"],
            "step": payload["step"], "variant": payload["variant"],
            "checkpoint_sha256": hashlib.sha256(data).hexdigest()}
    return gen, info
