"""Tiled inference: any output size on any device's memory, bit-identical to the whole-image pass.

Each tile of ``tile x tile`` low-resolution pixels is run with :meth:`SRGenerator.halo` pixels of
context on every side (fewer at the image's own edges, where the whole-image pass pads too), and
only its centre is kept. Image ``i``'s noise is one full-size map drawn from its own seed and cut
per tile, so neither the tile size nor the batch changes an image.
"""
from __future__ import annotations

import numpy as np
import torch

from pipeline.sr.models import SRGenerator


NOISE_STREAM = 1   # the image seed's second stream (the first draws the GAN's latent)


def noise_map(seed: int, height: int, width: int) -> torch.Tensor:
    """The full-size noise of the image with this seed: a stream of its own, derived from the seed."""
    sub = int(np.random.SeedSequence([int(seed), NOISE_STREAM]).generate_state(1, np.uint64)[0]) & (2**63 - 1)
    return torch.randn((1, 1, height, width), generator=torch.Generator().manual_seed(sub), dtype=torch.float64)


def upscale_one(gen: SRGenerator, lr: np.ndarray, seed: int, tile: int = 64,
                device: torch.device | str = "cpu", dtype: torch.dtype = torch.float64) -> np.ndarray:
    """(h, w) in [0, 1] -> (h*scale, w*scale) in [0, 1]."""
    s, halo = gen.scale, gen.halo()
    h, w = lr.shape
    x = torch.from_numpy(np.ascontiguousarray(lr, dtype=np.float64))[None, None] * 2.0 - 1.0
    noise = noise_map(seed, h * s, w * s) if gen.cfg.noise else None
    out = torch.empty((h * s, w * s), dtype=torch.float64)
    gen = gen.to(device=device, dtype=dtype).eval()
    with torch.no_grad():
        for y0 in range(0, h, tile):
            for x0 in range(0, w, tile):
                y1, x1 = min(h, y0 + tile), min(w, x0 + tile)
                ya, yb, xa, xb = max(0, y0 - halo), min(h, y1 + halo), max(0, x0 - halo), min(w, x1 + halo)
                part = x[:, :, ya:yb, xa:xb].to(device=device, dtype=dtype)
                nz = None if noise is None else noise[:, :, ya * s:yb * s, xa * s:xb * s].to(device=device, dtype=dtype)
                y = gen(part, nz)[0, 0].to("cpu", torch.float64)
                out[y0 * s:y1 * s, x0 * s:x1 * s] = y[(y0 - ya) * s:(y1 - ya) * s, (x0 - xa) * s:(x1 - xa) * s]
    return ((out.clamp(-1, 1) + 1.0) / 2.0).numpy()


def upscale(gen: SRGenerator, lr: np.ndarray, seeds: list[int], tile: int = 64,
            device: torch.device | str = "cpu", dtype: torch.dtype = torch.float64) -> np.ndarray:
    """A stack (n, h, w) in [0, 1] -> (n, h*scale, w*scale) in [0, 1], image i with seeds[i]."""
    if len(seeds) != len(lr):
        raise ValueError(f"{len(lr)} images but {len(seeds)} seeds")
    return np.stack([upscale_one(gen, im, sd, tile, device, dtype) for im, sd in zip(lr, seeds)])


def bicubic(lr: np.ndarray, scale: int) -> np.ndarray:
    """The floor to beat: bicubic upscaling of a stack (n, h, w) in [0, 1]."""
    x = torch.from_numpy(np.ascontiguousarray(lr, dtype=np.float32))[:, None]
    y = torch.nn.functional.interpolate(x, scale_factor=scale, mode="bicubic", align_corners=False)
    return y[:, 0].clamp(0, 1).numpy()


def consistency_mae(hr: np.ndarray, lr: np.ndarray, scale: int) -> float:
    """Mean absolute difference (grey range [0, 1]) between ``hr`` area-downscaled and ``lr``."""
    n, h, w = lr.shape
    down = hr.reshape(n, h, scale, w, scale).mean(axis=(2, 4))
    return float(np.abs(down - lr).mean())
