"""The WGAN-GP training loop: one variant's train split -> ``models/<V>/``.

- Device ``auto``: CUDA when present, else CPU; one code path (bf16 autocast, channels_last and
  fused Adam switch on where they help, i.e. on CUDA).
- Per generator step: ``n_critic`` critic steps on DiffAugment-ed real and fake batches with the
  gradient penalty (:mod:`pipeline.gan.losses`), then one generator step through the same augmentation;
  an EMA of the generator's weights (:mod:`pipeline.gan.ema`) is what gets sampled and exported.
- No host sync in the inner loop: losses accumulate on the device and are read every ``log_every``
  steps (DVCLive: ``loss_d, loss_g, wasserstein, gp`` and a fixed-seed sample grid every
  ``sample_every`` steps, under ``models/<V>/live``).
- Checkpoints every ``checkpoint_every`` steps (``checkpoints/step_XXXXXXX.pt``, atomic): models,
  EMA, optimisers, step and every RNG state (python, numpy, torch, cuda, the batch sampler's), per
  rank. A restart resumes from the newest compatible one, bit-identically on CPU with the same
  thread count (:func:`cpu_threads` lowers it on a loaded machine: a speed/rounding trade-off).
- Multi-process (``torchrun --nproc_per_node=N -m stages.train V``): each rank draws its own
  ``batch / N`` images and noise; gradients are averaged across ranks with one all-reduce per
  optimiser step (the DistributedDataParallel semantics, done by hand because DDP's hooks do not
  support the penalty's double backward). NCCL on CUDA, gloo on CPU.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import math
import os
import random
import re
import shutil
import time
from pathlib import Path
from typing import Any, Callable, Literal

import numpy as np
import torch
import torch.distributed as dist
from tqdm import tqdm

from pipeline.core import atomic
from pipeline.core.config import ConfigError, build
from pipeline.core.tables import cpu_count
from pipeline.gan.diffaugment import diff_augment, parse_policy
from pipeline.gan.ema import EMA
from pipeline.gan.losses import critic_loss, generator_loss, gradient_penalty
from pipeline.gan.models import ModelConfig, build_critic, build_generator, export_generator
from pipeline.gan import diffaugment, ema, losses, models, trainset
from pipeline.gan.trainset import load_train_images

CHECKPOINT_RE = re.compile(r"^step_(\d{7})\.pt$")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """params.yaml ``train``. ``overrides.<variant>`` replaces keys for one variant."""

    # architecture (see pipeline.gan.models.ModelConfig)
    model: Literal["resnet", "baseline"] = "resnet"
    z_dim: int = 64
    features: int = 8
    max_features: int = 64
    critic_norm: Literal["none", "layer"] = "none"
    min_grid: int = 4
    # optimisation
    steps: int = 800                 # generator steps
    batch: int = 8                   # global batch (split across ranks)
    n_critic: int = 2
    lr: float = 5e-4                 # Adam learning rate of the generator (and of the critic unless lr_d)
    lr_d: float | None = None        # critic's learning rate; null: same as lr
    betas: list[float] = dataclasses.field(default_factory=lambda: [0.0, 0.9])
    gp_lambda: float = 10.0
    # data efficiency
    diffaugment: str = ""            # e.g. "translation,cutout,brightness,contrast"; empty: off
    hflip: bool = True
    ema_decay: float = 0.99
    mean_init: bool = True           # resnet: the generator's output offset starts at the train set's mean image
    # logging and checkpoints (do not change results)
    log_every: int = 25
    sample_every: int = 100
    sample_count: int = 16
    checkpoint_every: int = 50
    keep_checkpoints: int = 2
    # speed (do not change the maths, except amp's rounding)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    amp: Literal["auto", "bf16", "off"] = "auto"      # auto: bf16 on CUDA, off on CPU
    channels_last: Literal["auto", "on", "off"] = "auto"   # auto: on CUDA only
    compile: bool = False
    data_on_device_gb: float = 8.0   # keep the train set on the GPU when it is at most this big
    overrides: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.betas) != 2:
            raise ValueError(f"train.betas must be two numbers, got {self.betas}")
        for name in ("steps", "batch", "n_critic", "log_every", "sample_every", "checkpoint_every",
                     "keep_checkpoints", "sample_count"):
            if getattr(self, name) < 1:
                raise ValueError(f"train.{name} must be >= 1")
        if self.lr <= 0 or (self.lr_d is not None and self.lr_d <= 0):
            raise ValueError("train.lr and train.lr_d must be positive")
        parse_policy(self.diffaugment)
        known = {f.name for f in dataclasses.fields(self)} - {"overrides"}
        for variant, changes in self.overrides.items():
            bad = sorted(set(changes or {}) - known)
            if bad:
                raise ConfigError(f"train.overrides.{variant}.{bad[0]}: unknown key; known: {sorted(known)}")

    @classmethod
    def baseline_recipe(cls, **changes: Any) -> "TrainConfig":
        """The earlier attempt's recipe, for side-by-side runs: DCGAN architecture (features 64,
        z 100), Adam lr 1e-4 betas (0, 0.9), lambda 10, n_critic 5, batch 64, fp32, no DiffAugment,
        no EMA (decay 0: the exported generator is the live one), no flips, no mean-image start."""
        recipe = dict(model="baseline", z_dim=100, features=64, lr=1e-4, lr_d=None, betas=[0.0, 0.9],
                      gp_lambda=10.0, n_critic=5, batch=64, diffaugment="", hflip=False, ema_decay=0.0,
                      mean_init=False,
                      amp="off", channels_last="off", compile=False)
        return cls(**{**recipe, **changes})

    def model_config(self) -> ModelConfig:
        return ModelConfig(model=self.model, z_dim=self.z_dim, features=self.features,
                           max_features=self.max_features, critic_norm=self.critic_norm,
                           min_grid=self.min_grid)

    def for_variant(self, name: str, variants: Any = None) -> "TrainConfig":
        """This config with ``overrides[name]`` applied. Unknown keys are an error, and so is an
        override naming none of ``variants`` (the variants params.yaml defines), e.g. a typo."""
        if variants is not None:
            strays = sorted(set(self.overrides) - set(variants))
            if strays:
                raise ConfigError(f"train.overrides.{strays[0]}: no variant of that name; "
                                  f"params.yaml defines {sorted(variants)}")
        data = dataclasses.asdict(self)
        data.update(self.overrides.get(name, {}))
        data["overrides"] = {}
        return build(TrainConfig, data, f"train.overrides.{name}")


# keys that may change between a checkpoint and its resumption without invalidating it
RESUMABLE_KEYS = {"steps", "log_every", "sample_every", "sample_count", "checkpoint_every",
                  "keep_checkpoints", "device", "channels_last", "compile", "data_on_device_gb",
                  "overrides"}


@dataclasses.dataclass
class Runtime:
    device: torch.device
    rank: int
    world: int
    amp: bool
    channels_last: bool


# --------------------------------------------------------------------------------------- helpers
def _runtime(cfg: TrainConfig, threads: int | None = None) -> Runtime:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available())
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("train.device is cuda but no CUDA device is available")
    device = torch.device("cuda", local) if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(device)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    if not use_cuda and (threads or world > 1):
        torch.set_num_threads(cpu_threads(threads, world))
    amp = cfg.amp == "bf16" or (cfg.amp == "auto" and use_cuda)
    cl = cfg.channels_last == "on" or (cfg.channels_last == "auto" and use_cuda)
    if use_cuda:
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return Runtime(device, rank, world, amp, cl)


def cpu_threads(requested: int | None, world: int = 1) -> int:
    """Torch threads per process on the CPU: ``requested`` (default: all cores) shared by the
    ``world`` ranks, but no more than the cores the load average leaves idle. The nets are small, so
    every op is a short parallel region whose OpenMP barrier waits for all its threads: on a busy
    machine a thread that is not scheduled stalls the others (measured on 2 shared cores at load 5:
    2 threads 2.4-3.2 s/step, 1 thread 0.52 s/step). Changes only float rounding, never the maths."""
    cores = cpu_count()
    n = max(1, (requested or cores) // world)
    idle = cores - int(os.getloadavg()[0] + 0.5) if hasattr(os, "getloadavg") else cores
    return max(1, min(n, idle // world if world > 1 else idle))


def _rng_state(data_gen: torch.Generator) -> dict:
    py = random.getstate()
    npy = np.random.get_state()
    return {"python": [py[0], list(py[1]), py[2]],
            "numpy": [npy[0], npy[1].tolist(), int(npy[2]), int(npy[3]), float(npy[4])],
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "data": data_gen.get_state()}


def _set_rng_state(state: dict, data_gen: torch.Generator) -> None:
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    npy = state["numpy"]
    np.random.set_state((npy[0], np.array(npy[1], dtype=np.uint32), npy[2], npy[3], npy[4]))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    data_gen.set_state(state["data"])


def _seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _allreduce_grads(params: list[torch.Tensor], world: int) -> None:
    """Average the gradients over the ranks (one flat all-reduce)."""
    if world == 1:
        return
    grads = [p.grad for p in params if p.grad is not None]
    flat = torch._utils._flatten_dense_tensors(grads)
    dist.all_reduce(flat)
    flat.div_(world)
    for g, avg in zip(grads, torch._utils._unflatten_dense_tensors(flat, grads)):
        g.copy_(avg)


def _check_replicas(*models: torch.nn.Module) -> None:
    """Fail loudly if the ranks' weights have drifted apart (they must stay identical)."""
    with torch.no_grad():
        local = torch.stack([torch.cat([p.detach().double().flatten() for p in m.parameters()]).sum()
                             for m in models])
    lo, hi = local.clone(), local.clone()
    dist.all_reduce(lo, op=dist.ReduceOp.MIN)
    dist.all_reduce(hi, op=dist.ReduceOp.MAX)
    if not torch.equal(lo, hi):
        raise RuntimeError(f"data-parallel replicas diverged: weight checksums {lo.tolist()} vs {hi.tolist()}")


def checkpoints(folder: Path) -> list[tuple[int, Path]]:
    """(step, path) of the checkpoints in ``folder``, oldest first."""
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := CHECKPOINT_RE.match(p.name))]
    return sorted(found)


def _fingerprint(cfg: TrainConfig, seed: int, height: int, width: int, ids: list[str]) -> dict:
    kept = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in RESUMABLE_KEYS}
    return {"config": kept, "seed": seed, "height": height, "width": width,
            "data": hashlib.sha256("\n".join(ids).encode()).hexdigest(), "code": _code_hash()}


def _code_hash() -> str:
    """sha256 of the modules that define what training computes: a checkpoint written by other code
    is not resumed (DVC reruns the stage after a code change, and the result must then be what the
    new code computes from scratch, not a re-export of the old run)."""
    h = hashlib.sha256()
    for module in (diffaugment, ema, losses, models, trainset):
        h.update(Path(module.__file__).read_bytes())
    h.update(Path(__file__).read_bytes())
    return h.hexdigest()


def _sample_grid(generator: torch.nn.Module, z: torch.Tensor) -> np.ndarray:
    import torchvision

    with torch.no_grad():
        x = generator(z).float().cpu()
    nrow = max(1, math.ceil(math.sqrt(x.shape[0] * x.shape[2] / x.shape[3])))
    grid = torchvision.utils.make_grid(x, nrow=nrow, padding=2, pad_value=1.0)[0]
    return np.round((grid.clamp(-1, 1).numpy() + 1.0) * 127.5).astype(np.uint8)


def _trim_live_history(live_dir: Path, step: int) -> None:
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


# ------------------------------------------------------------------------------------------ main
def train(cfg: TrainConfig, variant: str, height: int, width: int, seed: int, images_dir: str | os.PathLike,
          split_csv: str | os.PathLike, out_dir: str | os.PathLike, *, stop_after: int | None = None,
          images: torch.Tensor | None = None, progress: bool = True, threads: int | None = None,
          on_step: Callable[[int, torch.nn.Module], bool] | None = None) -> dict:
    """Train (or resume) one variant's GAN into ``out_dir``; returns a summary dict.

    ``stop_after`` ends the run after that many steps without exporting (as a kill would, for
    tests); ``images`` bypasses reading ``images_dir`` (benchmarks); ``on_step(step, ema_generator)``
    is called after every generator step and ends the run (like ``stop_after``) when it returns True
    (benchmarks: a wall-clock budget, snapshots); ``threads``: CPU threads in all
    (split between the ranks; None: torch's default). Neither changes the maths; the thread count
    changes float rounding (gradients differ by ~1e-6), so bit-identical reruns need the same count.
    """
    rt = _runtime(cfg, threads)
    on_cuda = rt.device.type == "cuda"
    out_dir = Path(out_dir)
    ckpt_dir, live_dir = out_dir / "checkpoints", out_dir / "live"
    main = rt.rank == 0
    if cfg.batch % rt.world:
        raise ValueError(f"train.batch {cfg.batch} is not divisible by the {rt.world} processes")
    local_batch = cfg.batch // rt.world

    if images is None:
        data, ids = load_train_images(images_dir, split_csv, height, width)
    else:
        data, ids = images, [f"tensor-{images.shape[0]}"]
    fingerprint = _fingerprint(cfg, seed, height, width, ids)

    # models: identical initial weights on every rank (same seed, built on the CPU)
    _seed_all(seed)
    mcfg = cfg.model_config()
    G = build_generator(mcfg, height, width)
    if cfg.mean_init and hasattr(G, "init_mean"):   # before the EMA copy; a resumed run loads its own
        G.init_mean(data)
    D = build_critic(mcfg, height, width)
    fmt = torch.channels_last if rt.channels_last else torch.contiguous_format
    G.to(rt.device, memory_format=fmt)
    D.to(rt.device, memory_format=fmt)
    ema = EMA(G, cfg.ema_decay)
    opt_kw = {"fused": True} if on_cuda else {"foreach": True}
    betas = (float(cfg.betas[0]), float(cfg.betas[1]))
    opt_g = torch.optim.Adam(G.parameters(), lr=cfg.lr, betas=betas, **opt_kw)
    opt_d = torch.optim.Adam(D.parameters(), lr=cfg.lr if cfg.lr_d is None else cfg.lr_d, betas=betas,
                             **opt_kw)
    G_run = torch.compile(G) if cfg.compile else G
    D_run = torch.compile(D) if cfg.compile else D   # the penalty's double backward uses eager D

    # the train set on the device when it fits
    nbytes = data.numel() * data.element_size()
    if on_cuda and nbytes <= cfg.data_on_device_gb * 1e9:
        data = data.to(rt.device)
    elif on_cuda:
        data = data.pin_memory()
    data_on_device = data.device == rt.device
    n_images = data.shape[0]

    # per-rank randomness: noise, augmentation, flips (global RNGs) and batch sampling (data_gen,
    # on the data's device, so that drawing a batch never copies indices from the host)
    _seed_all(seed + 1 + rt.rank)
    data_gen = torch.Generator(device=data.device).manual_seed(seed + 7919 * (rt.rank + 1))
    fixed_z = torch.randn(cfg.sample_count, cfg.z_dim, generator=torch.Generator().manual_seed(seed))
    fixed_z = fixed_z.to(rt.device)

    # resume from the newest compatible checkpoint
    step = 0
    existing = checkpoints(ckpt_dir)
    if existing:
        last_step, last = existing[-1]
        # on the CPU: RNG states must stay CPU tensors; load_state_dict moves the rest to the device
        state = torch.load(last, map_location="cpu", weights_only=True)
        if state.get("fingerprint") != fingerprint or state.get("world") != rt.world:
            if main:
                print(f"[train] {variant}: checkpoints in {ckpt_dir} are from another config, seed, "
                      f"data or process count: starting afresh")
            if rt.world > 1:
                dist.barrier()
            if main:
                shutil.rmtree(ckpt_dir, ignore_errors=True)
                shutil.rmtree(live_dir, ignore_errors=True)
                (out_dir / "generator.pt").unlink(missing_ok=True)
        else:
            G.load_state_dict(state["G"])
            D.load_state_dict(state["D"])
            ema.load_state_dict(state["ema"])
            opt_g.load_state_dict(state["opt_g"])
            opt_d.load_state_dict(state["opt_d"])
            _set_rng_state(state["rng"][rt.rank], data_gen)
            step = int(state["step"])
            if main:
                print(f"[train] {variant}: resumed from {last.name} (step {step})")
                _trim_live_history(live_dir, step)
    elif main:   # a fresh run: nothing of an earlier one may survive next to it
        shutil.rmtree(live_dir, ignore_errors=True)
        (out_dir / "generator.pt").unlink(missing_ok=True)
    if rt.world > 1:
        dist.barrier()

    ops = parse_policy(cfg.diffaugment)
    autocast = (lambda: torch.autocast(rt.device.type, dtype=torch.bfloat16)) if rt.amp \
        else contextlib.nullcontext

    def batch() -> torch.Tensor:
        idx = torch.randint(n_images, (local_batch,), generator=data_gen, device=data.device)
        x = data[idx] if data_on_device else data[idx].to(rt.device, non_blocking=True)
        if cfg.hflip:
            flip = torch.rand(local_batch, 1, 1, 1, device=rt.device) < 0.5
            x = torch.where(flip, x.flip(3), x)
        return x.contiguous(memory_format=fmt)

    def aug(x: torch.Tensor) -> torch.Tensor:
        return diff_augment(x, ops).contiguous(memory_format=fmt) if ops else x

    live = None
    if main:
        from dvclive import Live

        live = Live(dir=str(live_dir), resume=step > 0, dvcyaml=False, save_dvc_exp=False,
                    report=None)

    def save_checkpoint() -> None:
        rng = _rng_state(data_gen)
        if rt.world > 1:
            all_rng: list = [None] * rt.world
            dist.all_gather_object(all_rng, rng)
        else:
            all_rng = [rng]
        if main:
            state = {"step": step, "G": G.state_dict(), "D": D.state_dict(), "ema": ema.state_dict(),
                     "opt_g": opt_g.state_dict(), "opt_d": opt_d.state_dict(), "rng": all_rng,
                     "fingerprint": fingerprint, "world": rt.world, "variant": variant}
            ckpt_dir.mkdir(parents=True, exist_ok=True)
            with atomic.open_file(ckpt_dir / f"step_{step:07d}.pt", "wb") as f:
                torch.save(state, f)
            for _, old in checkpoints(ckpt_dir)[:-cfg.keep_checkpoints]:
                old.unlink()
        if rt.world > 1:
            dist.barrier()

    g_params, d_params = list(G.parameters()), list(D.parameters())
    acc = torch.zeros(4, device=rt.device)   # loss_d, wasserstein, gp, loss_g summed since the last log
    acc_n, t_log = 0, time.perf_counter()
    first_step = step
    bar = tqdm(total=cfg.steps, initial=step, desc=f"train {variant}", unit="step",
               disable=not (main and progress), mininterval=5.0)
    summary: dict[str, float] = {}
    while step < cfg.steps and (stop_after is None or step < stop_after):
        # critic
        D.requires_grad_(True)
        for _ in range(cfg.n_critic):
            real = batch()
            z = torch.randn(local_batch, cfg.z_dim, device=rt.device)
            with torch.no_grad(), autocast():
                fake = G_run(z)
            with autocast():
                real_a, fake_a = aug(real), aug(fake)
                loss_w, w = critic_loss(D_run(real_a), D_run(fake_a))
            gp, _ = gradient_penalty(D, real_a, fake_a)
            loss_d = loss_w + cfg.gp_lambda * gp
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            _allreduce_grads(d_params, rt.world)
            opt_d.step()
        # generator
        D.requires_grad_(False)
        z = torch.randn(local_batch, cfg.z_dim, device=rt.device)
        with autocast():
            loss_g = generator_loss(D_run(aug(G_run(z))))
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        _allreduce_grads(g_params, rt.world)
        opt_g.step()
        ema.update(G)
        step += 1
        bar.update(1)
        acc += torch.stack([loss_d.detach(), w, gp.detach(), loss_g.detach()])
        acc_n += 1

        if step % cfg.log_every == 0 or step == cfg.steps:
            if rt.world > 1:
                dist.all_reduce(acc)
                acc /= rt.world
            vals = (acc / acc_n).tolist()   # the one host sync, every log_every steps
            now = time.perf_counter()
            summary = dict(zip(("loss_d", "wasserstein", "gp", "loss_g"), vals))
            summary["images_per_s"] = acc_n * cfg.batch * (cfg.n_critic + 1) / max(now - t_log, 1e-9)
            acc.zero_()
            acc_n, t_log = 0, now
            if live is not None:
                live.step = step
                for k, v in summary.items():
                    live.log_metric(k, v)
                live.make_summary()
            if not all(math.isfinite(v) for v in vals):
                raise FloatingPointError(f"[train] {variant}: non-finite losses at step {step}: {summary}")
        if live is not None and (step % cfg.sample_every == 0 or step == cfg.steps):
            live.step = step
            live.log_image(f"samples/{step:07d}.png", _sample_grid(ema.model, fixed_z))
        if step % cfg.checkpoint_every == 0 or step == cfg.steps:
            save_checkpoint()
        if on_step is not None and on_step(step, ema.model):
            break
    bar.close()

    if rt.world > 1:
        _check_replicas(G, D)
    finished = step >= cfg.steps
    if finished and main:
        export_generator(out_dir / "generator.pt", ema.model, mcfg, step=step, variant=variant)
    if live is not None:
        live.make_summary()
    if rt.world > 1:
        dist.barrier()
    return {"variant": variant, "step": step, "resumed_from": first_step, "finished": finished,
            "device": str(rt.device), "world": rt.world, "amp_bf16": rt.amp, "channels_last": rt.channels_last,
            "train_images": n_images, **summary}
