"""The training run's log under ``models/<V>/live``: DVCLive scalars (``loss_d, loss_g,
wasserstein, gp, images_per_s``) every ``log_every`` steps and a fixed-seed sample grid every
``sample_every`` steps; after a resume, the rows a killed run logged past its checkpoint are dropped.

DVCLive (and torchvision, for the grid) are imported only when a log is written: the library also
trains without them (``train(..., live=False)``: benchmarks, the GPU check on a machine without DVC).
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from pipeline.core import atomic


class RunLog:
    """Rank 0's DVCLive run; every method is a no-op when ``enabled`` is false."""

    def __init__(self, live_dir: Path, *, resume: bool, enabled: bool = True) -> None:
        self.live = None
        if enabled:
            from dvclive import Live   # only where a log is written: the library trains without DVCLive

            self.live = Live(dir=str(live_dir), resume=resume, dvcyaml=False, save_dvc_exp=False, report=None)

    def metrics(self, step: int, values: dict[str, float]) -> None:
        if self.live is None:
            return
        self.live.step = step
        for k, v in values.items():
            self.live.log_metric(k, v)
        self.live.make_summary()

    def samples(self, step: int, generator: torch.nn.Module, z: torch.Tensor) -> None:
        if self.live is None:
            return
        self.live.step = step
        self.live.log_image(f"samples/{step:07d}.png", sample_grid(generator, z))

    def close(self) -> None:
        if self.live is not None:
            self.live.make_summary()


def sample_grid(generator: torch.nn.Module, z: torch.Tensor) -> np.ndarray:
    import torchvision   # only for the log's sample grids

    with torch.no_grad():
        x = generator(z).float().cpu()
    nrow = max(1, math.ceil(math.sqrt(x.shape[0] * x.shape[2] / x.shape[3])))
    grid = torchvision.utils.make_grid(x, nrow=nrow, padding=2, pad_value=1.0)[0]
    return np.round((grid.clamp(-1, 1).numpy() + 1.0) * 127.5).astype(np.uint8)


def trim_history(live_dir: Path, step: int) -> None:
    """Drop DVCLive rows logged after ``step`` (by a run killed before its next checkpoint)."""
    import pandas as pd

    for tsv in (live_dir / "plots" / "metrics").rglob("*.tsv") if live_dir.is_dir() else []:
        table = pd.read_csv(tsv, sep="\t")
        if "step" in table.columns:
            atomic.write_text(tsv, table[table["step"] <= step].to_csv(sep="\t", index=False))
    images = live_dir / "plots" / "images" / "samples"
    for png in images.glob("*.png") if images.is_dir() else []:
        if png.stem.isdigit() and int(png.stem) > step:
            png.unlink()
