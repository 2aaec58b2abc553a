"""Training the super-resolution generator on a variant's real training images at full size.

Per step: ``n_critic`` patch-critic steps under the WGAN-GP objective of the base GAN
(:mod:`pipeline.gan.losses`, penalty on interpolated full-resolution patches with their
low-resolution condition held), then one generator step on ``adv_weight x`` the critic's loss plus
``l1_weight x`` the mean absolute error to the real patch. ``adv_weight: 0`` is the pixel loss
alone (blur: the mean of every detail the input allows). An EMA of the generator is exported.
The run stops at ``steps`` or when the process has used ``budget_cpu_s`` CPU-seconds (benches);
a checkpoint every ``checkpoint_every`` steps lets a killed stage resume.
"""
from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path
from typing import Any, Callable

import torch
from tqdm import tqdm

from pipeline.core import atomic
from pipeline.core.config import ConfigError, build, param
from pipeline.core.device import torch_device
from pipeline.gan.ema import EMA
from pipeline.gan.losses import critic_loss, generator_loss, gradient_penalty
from pipeline.sr import pairs
from pipeline.sr.models import PatchCritic, SRGenerator, SRModelConfig, export_sr


@dataclasses.dataclass(frozen=True)
class SRConfig:
    """params.yaml ``train_sr``; ``overrides.<variant>`` replaces keys for one variant. The scale
    is the variant's own (``variants.<V>.sr_scale``)."""

    features: int = param(32, ge=1)
    blocks: int = param(4, ge=0)
    noise: bool = True
    critic_layers: int = param(3, ge=1)
    patch: int = param(64, ge=8)          # full-resolution patch side
    batch: int = param(16, ge=1)
    steps: int = param(2000, ge=1)
    n_critic: int = param(1, ge=1)
    lr: float = param(2e-4, gt=0)
    betas: list[float] = param(factory=lambda: [0.0, 0.9], ge=0, lt=1, length=2)
    gp_lambda: float = param(10.0, ge=0)
    adv_weight: float = param(1.0, ge=0)
    l1_weight: float = param(20.0, ge=0)
    ema_decay: float = param(0.999, ge=0, lt=1)
    hflip: bool = True
    tile: int = param(64, ge=4)           # inference tile, low-resolution pixels
    checkpoint_every: int = param(200, ge=1)
    log_every: int = param(50, ge=1)
    cpu_threads: int = param(1, ge=0)     # 0: every core
    device: str = "auto"
    overrides: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        known = {f.name for f in dataclasses.fields(self)} - {"overrides"}
        for variant, changes in self.overrides.items():
            bad = sorted(set(changes or {}) - known)
            if bad:
                raise ConfigError(f"train_sr.overrides.{variant}.{bad[0]}: unknown key; known: {sorted(known)}")

    def for_variant(self, name: str, variants: Any = None) -> "SRConfig":
        if variants is not None:
            strays = sorted(set(self.overrides) - set(variants))
            if strays:
                raise ConfigError(f"train_sr.overrides.{strays[0]}: no variant of that name")
        data = dataclasses.asdict(self)
        data.update(self.overrides.get(name, {}))
        data["overrides"] = {}
        return build(SRConfig, data, f"train_sr.overrides.{name}")

    def model_config(self, scale: int) -> SRModelConfig:
        return SRModelConfig(scale=scale, features=self.features, blocks=self.blocks, noise=self.noise,
                             critic_layers=self.critic_layers)


# keys that never change what a resumed run computes
RESUMABLE = {"steps", "checkpoint_every", "log_every", "tile", "device", "overrides"}


def _fingerprint(cfg: SRConfig, scale: int, seed: int, n_images: int, shape: tuple) -> str:
    data = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in RESUMABLE}
    return json.dumps({"cfg": data, "scale": scale, "seed": seed, "n": n_images, "shape": list(shape)}, sort_keys=True)


def train_sr(cfg: SRConfig, scale: int, images: torch.Tensor, seed: int, out_dir: str | os.PathLike | None,
             variant: str = "", budget_cpu_s: float | None = None,
             on_log: Callable[[int, dict], None] | None = None, progress: bool = True) -> dict:
    """Train on ``images`` (n, 1, H, W) in [-1, 1]; export ``out_dir/sr.pt`` (when out_dir is given);
    returns the run record (steps, CPU-seconds, losses) and the EMA generator under ``"generator"``."""
    if cfg.patch % scale:
        raise ConfigError(f"train_sr.patch {cfg.patch} must be a multiple of the scale {scale}")
    H, W = images.shape[-2:]
    patch = min(cfg.patch, (min(H, W) // scale) * scale)
    if cfg.cpu_threads:
        torch.set_num_threads(cfg.cpu_threads)
    device = torch_device(cfg.device)
    torch.manual_seed(seed)
    mcfg = cfg.model_config(scale)
    gen, critic = SRGenerator(mcfg).to(device), PatchCritic(mcfg).to(device)
    ema = EMA(gen, cfg.ema_decay)
    opt_g = torch.optim.Adam(gen.parameters(), lr=cfg.lr, betas=tuple(cfg.betas))
    opt_d = torch.optim.Adam(critic.parameters(), lr=cfg.lr, betas=tuple(cfg.betas))
    rng = torch.Generator().manual_seed(seed + 1)
    ckpt = Path(out_dir) / "checkpoint.pt" if out_dir is not None else None
    fp = _fingerprint(cfg, scale, seed, len(images), tuple(images.shape))
    step, history = 0, []
    if ckpt is not None and ckpt.is_file():
        state = torch.load(ckpt, map_location="cpu", weights_only=False)
        if state.get("fingerprint") == fp:
            gen.load_state_dict(state["gen"]); critic.load_state_dict(state["critic"])
            ema.load_state_dict(state["ema"]); opt_g.load_state_dict(state["opt_g"])
            opt_d.load_state_dict(state["opt_d"]); rng.set_state(state["rng"])
            torch.set_rng_state(state["torch_rng"])
            step, history = int(state["step"]), state["history"]
    images = images.to(device)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    acc = {"loss_d": 0.0, "wasserstein": 0.0, "gp": 0.0, "loss_g": 0.0, "l1": 0.0}
    bar = tqdm(total=cfg.steps, initial=step, desc=f"train_sr {variant} x{scale}", unit="step",
               disable=not progress, mininterval=2.0)
    stopped = "steps"
    while step < cfg.steps:
        for _ in range(cfg.n_critic):
            hr, lr = pairs.sample(images, patch, cfg.batch, scale, rng, cfg.hflip)
            noise = torch.randn(hr.shape, generator=rng).to(device) if mcfg.noise else None
            with torch.no_grad():
                fake = gen(lr, noise)
            if cfg.adv_weight > 0:
                loss_d, w = critic_loss(critic(hr, lr), critic(fake, lr))
                gp, _ = gradient_penalty(lambda x: critic(x, lr), hr, fake, rng if device.type == "cpu" else None)
                opt_d.zero_grad(set_to_none=True)
                (loss_d + cfg.gp_lambda * gp).backward()
                opt_d.step()
                acc["loss_d"] += float(loss_d.detach()); acc["wasserstein"] += float(w); acc["gp"] += float(gp.detach())
        fake = gen(lr, noise)
        l1 = (fake - hr).abs().mean()
        loss_g = cfg.l1_weight * l1
        if cfg.adv_weight > 0:
            adv = generator_loss(critic(fake, lr))
            loss_g = loss_g + cfg.adv_weight * adv
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        ema.update(gen)
        step += 1
        acc["loss_g"] += float(loss_g.detach()); acc["l1"] += float(l1.detach())
        bar.update(1)
        if step % cfg.log_every == 0:
            row = {"step": step, **{k: v / cfg.log_every for k, v in acc.items()}}   # no timings: outputs must reproduce
            row["loss_d"] /= cfg.n_critic; row["wasserstein"] /= cfg.n_critic; row["gp"] /= cfg.n_critic
            history.append(row)
            acc = dict.fromkeys(acc, 0.0)
            if on_log is not None:
                on_log(step, row)
        if ckpt is not None and step % cfg.checkpoint_every == 0:
            for t in list(gen.parameters()) + list(critic.parameters()):
                if not torch.isfinite(t).all():
                    raise FloatingPointError(f"train_sr {variant}: non-finite weights at step {step}")
            with atomic.open_file(ckpt, "wb") as f:
                torch.save({"fingerprint": fp, "step": step, "gen": gen.state_dict(), "critic": critic.state_dict(),
                            "ema": ema.state_dict(), "opt_g": opt_g.state_dict(), "opt_d": opt_d.state_dict(),
                            "rng": rng.get_state(), "torch_rng": torch.get_rng_state(), "history": history}, f)
        if budget_cpu_s is not None and time.process_time() - cpu0 >= budget_cpu_s:
            stopped = "budget"
            break
    bar.close()
    result = {"variant": variant, "scale": scale, "steps": step, "stopped": stopped, "patch": patch,
              "cpu_s": time.process_time() - cpu0, "wall_s": time.perf_counter() - wall0,
              "history": history}
    if out_dir is not None:
        export_sr(Path(out_dir) / "sr.pt", ema.model.cpu(), step=step, variant=variant)
        with atomic.open_file(Path(out_dir) / "metrics.json", "w") as f:   # timings left out: the folder must reproduce
            json.dump({k: v for k, v in result.items() if k not in ("history", "cpu_s", "wall_s")} |
                      {"last": history[-1] if history else {}}, f, indent=1)
    result["generator"] = ema.model.eval()
    return result
