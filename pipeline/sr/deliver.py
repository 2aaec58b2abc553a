"""Synthetic images at the delivered size: the GAN's image, then the super-resolution stage.

Image ``i`` is drawn exactly as :mod:`pipeline.gan.generate` draws it (its latent from seed
``seed_base + i``), then upscaled with noise from the same seed's own stream. Output
(``data/synthetic/<V>/``): ``png16/`` and ``png8/`` at full size (what the release carries),
``lowres/`` the GAN's 16-bit images, ``seeds.csv`` as without SR, and ``sr.json`` (the SR export's
checksum, scale and sizes).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from pipeline.core import atomic, pngio
from pipeline.core.device import torch_device
from pipeline.core.tables import SEEDS_COLUMNS, write_csv
from pipeline.gan.generate import GenerateConfig, file_name, render
from pipeline.gan.models import load_generator
from pipeline.sr.models import load_sr
from pipeline.sr.upscale import upscale_one


def generate_full_size(cfg: GenerateConfig, variant: str, generator_path: str | os.PathLike,
                       sr_path: str | os.PathLike, out_dir: str | os.PathLike, tile: int,
                       height: int | None = None, width: int | None = None, progress: bool = True) -> list[dict]:
    """Write ``cfg.n`` full-size images of ``variant`` (atomically); returns the seeds rows."""
    device = torch_device(cfg.device)
    generator, info = load_generator(generator_path, device)
    if height is not None and width is not None and (generator.height, generator.width) != (height, width):
        raise ValueError(f"{generator_path}: the generator makes {generator.height}x{generator.width} images, "
                         f"variant {variant} is {height}x{width}: retrain or fix params.yaml")
    sr, sr_info = load_sr(sr_path, device)
    rows = []
    with atomic.directory(out_dir) as tmp:
        bar = tqdm(total=cfg.n, desc=f"generate {variant} x{sr.scale}", unit="img", disable=not progress)
        for k in range(0, cfg.n, cfg.batch):
            idx = list(range(k, min(cfg.n, k + cfg.batch)))
            seeds = [cfg.seed_base + i for i in idx]
            for i, s, low in zip(idx, seeds, render(generator, seeds, cfg.batch, device)):
                name = file_name(i)
                full = upscale_one(sr, low.astype(np.float64) / 65535.0, s, tile, device)
                full16 = np.round(full * 65535.0).astype(np.uint16)
                pngio.write_png16(tmp / "lowres" / name, low)
                pngio.write_png16(tmp / "png16" / name, full16)
                pngio.write_png8(tmp / "png8" / name, full16)
                rows.append({"file": name, "seed": s, "variant": variant,
                             "checkpoint_sha256": info["checkpoint_sha256"]})
                bar.update(1)
        bar.close()
        write_csv(tmp / "seeds.csv", SEEDS_COLUMNS, rows)
        atomic.write_text(tmp / "sr.json", json.dumps({
            "sr_sha256": sr_info["sr_sha256"], "scale": sr.scale, "tile": tile,
            "lowres": [generator.height, generator.width],
            "full": [generator.height * sr.scale, generator.width * sr.scale]}, indent=1) + "\n")
    return rows
