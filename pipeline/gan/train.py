"""The WGAN-GP training loop: one variant's train split -> ``models/<V>/``.

- Device ``auto``: CUDA when present, else CPU; one code path (bf16 autocast, channels_last and
  fused Adam switch on where they help, i.e. on CUDA).
- Per generator step: ``n_critic`` critic steps on DiffAugment-ed real and fake batches with the
  gradient penalty (:mod:`pipeline.gan.losses`), then one generator step through the same augmentation;
  an EMA of the generator's weights (:mod:`pipeline.gan.ema`) is what gets sampled and exported.
- No host sync in the inner loop: losses accumulate on the device and are read every ``log_every``
  steps (DVCLive: ``loss_d, loss_g, wasserstein, gp`` and a fixed-seed sample grid every
  ``sample_every`` steps, under ``models/<V>/live``).
- Checkpoints every ``checkpoint_every`` steps (:mod:`pipeline.gan.checkpoint`): a restart resumes
  from the newest one of the same config, seed, data and code, on any device and with any number
  of processes that divides the global batch (the launch is a speed setting; RNG rule in
  :mod:`pipeline.gan.checkpoint`), bit-identically when the launch is the same, on the CPU with the
  same ``train.cpu_threads`` (the thread count sets the order of float sums, and over thousands of
  GAN steps the images: it is a param, never read from the machine's load). Only a checkpoint of another config, seed, data or code is removed
  (a new run); never one because the launch differs.
- Multi-process (``train.gpus``: ``python -m stages.train V`` execs ``torchrun --nproc_per_node=N``
  itself, :mod:`pipeline.gan.launch`, so ``dvc repro`` is the multi-GPU run): each rank draws its own
  ``batch / N`` images and noise; gradients are averaged across ranks with one all-reduce per
  optimiser step (the DistributedDataParallel semantics, done by hand because DDP's hooks do not
  support the penalty's double backward); the generator's BatchNorm uses the global batch's
  statistics (:class:`pipeline.gan.models.BatchNorm`), so the maths does not depend on the number of
  processes. NCCL on CUDA, gloo on CPU. Rank 0 decides the resume; one run at a time per
  ``models/<V>`` (a lock on the folder); no checkpoint ever holds a NaN or an infinity.
"""
from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import math
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Callable, Literal

import torch
from tqdm import tqdm

from pipeline.gan import checkpoint, diffaugment, ema, losses, models, runtime, trainset
from pipeline.gan.checkpoint import checkpoints
from pipeline.gan.config import RESUMABLE_KEYS, TrainConfig
from pipeline.gan.diffaugment import diff_augment, parse_policy
from pipeline.gan.ema import EMA
from pipeline.gan.losses import critic_loss, generator_loss, gradient_penalty
from pipeline.gan.models import build_critic, build_generator, export_generator
from pipeline.gan.runlog import RunLog, trim_history
from pipeline.gan.runtime import Runtime
from pipeline.gan.trainset import load_train_images

__all__ = ["TrainConfig", "RESUMABLE_KEYS", "checkpoints", "train"]


@dataclasses.dataclass
class Nets:
    """What training updates: generator, critic, the generator's EMA and both optimisers."""

    G: torch.nn.Module
    D: torch.nn.Module
    ema: EMA
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer

    def state_dict(self) -> dict:
        return {"G": self.G.state_dict(), "D": self.D.state_dict(), "ema": self.ema.state_dict(),
                "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.G.load_state_dict(state["G"])
        self.D.load_state_dict(state["D"])
        self.ema.load_state_dict(state["ema"])
        checkpoint.load_optimizer(self.opt_g, state["opt_g"])
        checkpoint.load_optimizer(self.opt_d, state["opt_d"])


def _build_nets(cfg: TrainConfig, height: int, width: int, seed: int, rt: Runtime, data: torch.Tensor) -> Nets:
    """Identical initial weights on every rank (same seed, built on the CPU), then on the device;
    with ``mean_init`` the generator starts at ``data``'s mean image (a resumed run loads its own)."""
    checkpoint.seed_all(seed)
    mcfg = cfg.model_config()
    G = build_generator(mcfg, height, width)
    if cfg.mean_init and hasattr(G, "init_mean"):   # before the EMA copy
        G.init_mean(data, mirror=cfg.hflip)
    D = build_critic(mcfg, height, width)
    G.to(rt.device, memory_format=rt.memory_format)
    D.to(rt.device, memory_format=rt.memory_format)
    opt_kw = {"fused": True} if rt.device.type == "cuda" else {"foreach": True}
    betas = (float(cfg.betas[0]), float(cfg.betas[1]))
    # Adam moves every parameter by about lr a step whatever its gradient's size: the per-pixel
    # layout (offset, basis entries of ~0.01) would drown in that noise at the conv weights' rate
    pixel = {"offset", "basis"}
    groups = [{"params": [p for n, p in G.named_parameters() if n not in pixel]}]
    layout = [p for n, p in G.named_parameters() if n in pixel]
    if layout:
        groups.append({"params": layout, "lr": cfg.lr * cfg.layout_lr})
    opt_g = torch.optim.Adam(groups, lr=cfg.lr, betas=betas, **opt_kw)
    opt_d = torch.optim.Adam(D.parameters(), lr=cfg.lr if cfg.lr_d is None else cfg.lr_d, betas=betas,
                             **opt_kw)
    return Nets(G, D, EMA(G, cfg.ema_decay), opt_g, opt_d)


def _fingerprint(cfg: TrainConfig, seed: int, height: int, width: int, ids: list[str],
                 data: torch.Tensor) -> dict:
    kept = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in RESUMABLE_KEYS}
    code = [diffaugment, ema, losses, models, trainset, runtime, checkpoint, sys.modules[__name__]]
    return checkpoint.fingerprint(kept, seed, height, width, ids, code, data)


class Batches:
    """Real batches of ``local_batch`` images, drawn with replacement by ``generator`` (on the
    data's device, so that drawing never copies indices from the host), flipped at random.

    A train set left in host memory (too big for ``data_on_device_gb``; pageable, never pinned as a
    whole: the pinned allocator rounds up to a power of two, 9 GB would pin 16 GB per rank) is
    indexed into a pinned batch buffer, so that its ``non_blocking`` copy really is asynchronous.
    Each batch takes a fresh buffer from torch's caching host allocator, which reuses a buffer only
    once the copy that read it has completed."""

    def __init__(self, data: torch.Tensor, local_batch: int, generator: torch.Generator, hflip: bool,
                 rt: Runtime) -> None:
        self.data, self.n, self.generator, self.hflip, self.rt = data, local_batch, generator, hflip, rt
        self.pinned = data.device.type == "cpu" and rt.device.type == "cuda"   # the batch buffer

    def __call__(self) -> torch.Tensor:
        data, dev = self.data, self.rt.device
        idx = torch.randint(data.shape[0], (self.n,), generator=self.generator, device=data.device)
        if data.device == dev:
            x = data[idx]
        elif self.pinned:
            buf = torch.empty((self.n, *data.shape[1:]), dtype=data.dtype, pin_memory=True)
            x = torch.index_select(data, 0, idx, out=buf).to(dev, non_blocking=True)
        else:
            x = data[idx].to(dev)
        if self.hflip:
            flip = torch.rand(self.n, 1, 1, 1, device=dev) < 0.5
            x = torch.where(flip, x.flip(3), x)
        return x.contiguous(memory_format=self.rt.memory_format)


def place_train_set(data: torch.Tensor, rt: Runtime, on_device_gb: float) -> torch.Tensor:
    """The train set on the GPU when it is at most ``on_device_gb``; else where it is, in pageable
    host memory (:class:`Batches` copies each batch through a pinned buffer)."""
    if rt.device.type == "cuda" and data.numel() * data.element_size() <= on_device_gb * 1e9:
        return data.to(rt.device)
    return data


def _from_rank0(rt: Runtime, value: Any) -> Any:
    """Rank 0's ``value`` on every rank (a picklable object)."""
    if rt.world == 1:
        return value
    box = [value if rt.main else None]
    torch.distributed.broadcast_object_list(box, src=0)
    return box[0]


def _all_ranks(rt: Runtime, ok: bool) -> bool:
    """Whether ``ok`` holds on every rank."""
    if rt.world == 1:
        return ok
    flag = torch.tensor([int(ok)], device=rt.device)
    torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MIN)
    return bool(flag.item())


def lock_run(out_dir: Path) -> int | None:
    """An exclusive ``flock`` on the folder ``out_dir`` (no lock file among DVC's outputs): the
    descriptor holding it, or None when another process holds it. The kernel drops the lock when the
    holder dies, however it dies."""
    out_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(out_dir, os.O_RDONLY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _resume(ckpt_dir: Path, live_dir: Path, out_dir: Path, fingerprint: dict, nets: Nets,
            data_gen: torch.Generator, seed: int, rt: Runtime, variant: str) -> tuple[int, list[dict]]:
    """Load the newest checkpoint of this run into ``nets`` and the RNGs, whatever the launch that
    wrote it; returns (its step, the resume history to record); (0, []) for a fresh run. Only
    checkpoints of another config, seed, data or code are removed (that is another run).

    Rank 0 alone lists the folder and decides; every rank loads the file it names, and all fail
    together if any cannot read it (ranks on other nodes, or a stale view of a shared folder, would
    otherwise pick other steps, average the gradients of different models, and hang)."""
    state: dict | None = None
    decision: dict = {"resume": None}
    if rt.main:
        existing = checkpoints(ckpt_dir)
        if existing:
            _, last = existing[-1]
            state = checkpoint.load(last)
            decision = {"resume": last.name, "step": int(state.get("step", -1)),
                        "match": state.get("fingerprint") == fingerprint}
    decision = _from_rank0(rt, decision)
    if decision["resume"] is not None:
        last = ckpt_dir / decision["resume"]
        if decision["match"]:
            if not rt.main:
                try:
                    state = checkpoint.load(last)
                except (OSError, RuntimeError, EOFError) as e:
                    print(f"[train] {variant}: rank {rt.rank} cannot read {last}: {e}", file=sys.stderr)
                    state = None
            ok = state is not None and int(state.get("step", -1)) == decision["step"] and \
                state.get("fingerprint") == fingerprint
            if not _all_ranks(rt, ok):
                raise RuntimeError(f"[train] {variant}: rank 0 chose {last} but not every rank reads that "
                                   f"checkpoint there (a folder not shared by all ranks, or a stale view of it)")
            assert state is not None
            nets.load_state_dict(state)
            rule = checkpoint.resume_rng(state, seed, rt.rank, rt.world, rt.device, data_gen)
            step = int(state["step"])
            resume = {"step": step, "from_world": state.get("world"), "world": rt.world,
                      "from_device": state.get("device"), "device": rt.device.type, "rng": rule}
            if rt.main:
                print(f"[train] {variant}: resumed from {last.name} (step {step}; written by "
                      f"{resume['from_world']} process(es) on {resume['from_device']}, now {rt.world} on "
                      f"{rt.device.type}; RNG streams {rule})")
                trim_history(live_dir, step)
            rt.barrier()
            return step, [*state.get("resumes", []), resume]
        if rt.main:
            assert state is not None
            differ = sorted(k for k in fingerprint if state.get("fingerprint", {}).get(k) != fingerprint[k])
            if "config" in differ:
                old = state["fingerprint"]["config"]
                differ += [f"train.{k}" for k in sorted(fingerprint["config"]) if old.get(k) != fingerprint["config"][k]]
            print(f"[train] {variant}: checkpoints in {ckpt_dir} are of another run (differs in "
                  f"{', '.join(differ)}): starting afresh")
        rt.barrier()
        if rt.main:
            shutil.rmtree(ckpt_dir, ignore_errors=True)
    if rt.main:   # a fresh run: nothing of an earlier one may survive next to it
        shutil.rmtree(live_dir, ignore_errors=True)
        (out_dir / "generator.pt").unlink(missing_ok=True)
    rt.barrier()
    return 0, []


def non_finite(tree: Any, where: str = "") -> list[str]:
    """Names of the floating-point tensors in ``tree`` (nested dicts and lists) holding a NaN or an
    infinity; one host sync for all of them."""
    named: list[tuple[str, torch.Tensor]] = []

    def walk(x: Any, name: str) -> None:
        if torch.is_tensor(x):
            if x.is_floating_point():
                named.append((name, x))
        elif isinstance(x, dict):
            for k, v in x.items():
                walk(v, f"{name}.{k}" if name else str(k))
        elif isinstance(x, (list, tuple)):
            for i, v in enumerate(x):
                walk(v, f"{name}[{i}]")

    walk(tree, where)
    if not named:
        return []
    finite = torch.stack([t.isfinite().all().to(named[0][1].device) for _, t in named]).tolist()
    return [name for (name, _), ok in zip(named, finite) if not ok]


def _save(ckpt_dir: Path, step: int, nets: Nets, data_gen: torch.Generator, fingerprint: dict,
          resumes: list[dict], cfg: TrainConfig, rt: Runtime, variant: str) -> None:
    """Every rank checks the (replicated) state before anything is written: a NaN or infinity in
    any weight, EMA, buffer or optimiser moment stops the run, so no checkpoint ever holds one
    (losses are read only every ``log_every`` steps, and the EMA enters no loss at all)."""
    nets_state = nets.state_dict()
    bad = non_finite(nets_state)
    if bad:
        raise FloatingPointError(f"[train] {variant}: non-finite state at step {step}, not saved "
                                 f"({len(bad)} tensor(s): {', '.join(bad[:5])}); the newest checkpoint "
                                 f"is the last finite one")
    rng = checkpoint.rng_state(rt.device, data_gen)
    if rt.world > 1:
        all_rng: list = [None] * rt.world
        torch.distributed.all_gather_object(all_rng, rng)
    else:
        all_rng = [rng]
    if rt.main:
        state = {"step": step, **nets_state, "rng": all_rng, "fingerprint": fingerprint,
                 "world": rt.world, "device": rt.device.type, "resumes": resumes, "variant": variant}
        checkpoint.save(ckpt_dir, step, state, cfg.keep_checkpoints)
    rt.barrier()


# ------------------------------------------------------------------------------------------ main
def train(cfg: TrainConfig, variant: str, height: int, width: int, seed: int, images_dir: str | os.PathLike,
          split_csv: str | os.PathLike, out_dir: str | os.PathLike, *, stop_after: int | None = None,
          images: torch.Tensor | None = None, progress: bool = True, threads: int | None = None,
          live: bool = True, sync_debug: Literal["warn", "error"] | None = None,
          on_step: Callable[[int, torch.nn.Module], bool] | None = None) -> dict:
    """Train (or resume) one variant's GAN into ``out_dir``; returns a summary dict.

    ``stop_after`` ends the run after that many steps without exporting (as a kill would, for
    tests); ``images`` bypasses reading ``images_dir`` (benchmarks); ``on_step(step, ema_generator)``
    is called after every generator step and ends the run (like ``stop_after``) when it returns True
    (benchmarks: a wall-clock budget, snapshots); ``threads``: CPU threads in all (split between the
    ranks; None: torch's default); ``live``: write the DVCLive log; ``sync_debug``: on CUDA, every
    training step after this process's first runs under ``torch.cuda.set_sync_debug_mode`` (logging
    and checkpoints excluded). None of them changes the maths; the thread count changes float
    rounding (gradients differ by ~1e-6), so bit-identical reruns need the same count.

    One run at a time per ``out_dir``: rank 0 holds a lock on the folder (:func:`lock_run`) for the
    whole run, and a second run into it (another ``dvc repro``, orphaned workers of a killed one)
    stops with an error on every rank before it touches anything. The process group that the
    runtime started is ended on the way out.
    """
    rt = runtime.setup(cfg.device, cfg.amp, cfg.channels_last, cfg.cpu_threads if threads is None else threads,
                       tf32=cfg.tf32, backend=cfg.dist_backend)
    out_dir = Path(out_dir)
    with contextlib.ExitStack() as stack:
        stack.callback(rt.close)
        if cfg.batch % rt.world:
            raise ValueError(f"train.batch {cfg.batch} (the global batch) is not divisible by the {rt.world} "
                             f"processes: launch a divisor of it (train.gpus); resuming needs the same train.batch")
        fd = lock_run(out_dir) if rt.main else -1
        if fd is not None and fd >= 0:
            stack.callback(os.close, fd)
        if not _from_rank0(rt, fd is not None):
            raise RuntimeError(f"[train] {variant}: another training run holds {out_dir} (still running, or "
                               f"the orphaned workers of a killed one): stop it before starting this one")
        return _train(cfg, variant, height, width, seed, images_dir, split_csv, out_dir, rt,
                      stop_after=stop_after, images=images, progress=progress, live=live,
                      sync_debug=sync_debug, on_step=on_step)
    raise AssertionError("unreachable")


def _train(cfg: TrainConfig, variant: str, height: int, width: int, seed: int, images_dir: str | os.PathLike,
           split_csv: str | os.PathLike, out_dir: Path, rt: Runtime, *, stop_after: int | None,
           images: torch.Tensor | None, progress: bool, live: bool, sync_debug: Literal["warn", "error"] | None,
           on_step: Callable[[int, torch.nn.Module], bool] | None) -> dict:
    ckpt_dir, live_dir = out_dir / "checkpoints", out_dir / "live"
    local_batch = cfg.batch // rt.world

    if images is None:
        data, ids = load_train_images(images_dir, split_csv, height, width)
    else:
        data, ids = images, [f"tensor-{images.shape[0]}"]
    fingerprint = _fingerprint(cfg, seed, height, width, ids, data)
    nets = _build_nets(cfg, height, width, seed, rt, data)
    G, D = nets.G, nets.D
    G_run = torch.compile(G) if cfg.compile else G
    D_run = torch.compile(D) if cfg.compile else D   # the penalty's double backward uses eager D

    data = place_train_set(data, rt, cfg.data_on_device_gb)

    # per-rank randomness: noise, augmentation, flips (global RNGs) and batch sampling (data_gen)
    checkpoint.seed_all(seed + 1 + rt.rank)
    data_gen = torch.Generator(device=data.device).manual_seed(seed + 7919 * (rt.rank + 1))
    fixed_z = torch.randn(cfg.sample_count, cfg.z_dim, generator=torch.Generator().manual_seed(seed))
    fixed_z = fixed_z.to(rt.device)

    step, resumes = _resume(ckpt_dir, live_dir, out_dir, fingerprint, nets, data_gen, seed, rt, variant)
    first_step = step
    batch = Batches(data, local_batch, data_gen, cfg.hflip, rt)
    ops = parse_policy(cfg.diffaugment)
    autocast = rt.autocast()

    def aug(x: torch.Tensor) -> torch.Tensor:
        return diff_augment(x, ops).contiguous(memory_format=rt.memory_format) if ops else x

    log = RunLog(live_dir, resume=step > 0, enabled=live and rt.main)
    g_params, d_params = list(G.parameters()), list(D.parameters())
    acc = torch.zeros(4, device=rt.device)   # loss_d, wasserstein, gp, loss_g summed since the last log
    acc_n, t_log = 0, time.perf_counter()
    bar = tqdm(total=cfg.steps, initial=step, desc=f"train {variant}", unit="step",
               disable=not (rt.main and progress), mininterval=5.0)
    summary: dict[str, float] = {}
    guard = rt.sync_guard(sync_debug)
    while step < cfg.steps and (stop_after is None or step < stop_after):
        with guard(step > first_step):   # this process's first step warms up (cuDNN, compile)
            # critic
            D.requires_grad_(True)
            for _ in range(cfg.n_critic):
                real = batch()
                z = torch.randn(local_batch, cfg.z_dim, device=rt.device)
                with torch.no_grad(), autocast():
                    fake = G_run(z)
                with autocast():
                    real_a, fake_a = aug(real), aug(fake)
                    if cfg.critic_concat:   # one forward of both halves (per-sample maths, other rounding)
                        d_real, d_fake = D_run(torch.cat([real_a, fake_a]), parts=2).chunk(2)
                    else:
                        d_real, d_fake = D_run(real_a), D_run(fake_a)
                    loss_w, w = critic_loss(d_real, d_fake)
                gp, _ = gradient_penalty(D, real_a, fake_a)
                loss_d = loss_w + cfg.gp_lambda * gp
                nets.opt_d.zero_grad(set_to_none=True)
                loss_d.backward()
                runtime.allreduce_grads(d_params, rt.world)
                nets.opt_d.step()
            # generator
            D.requires_grad_(False)
            z = torch.randn(local_batch, cfg.z_dim, device=rt.device)
            with autocast():
                loss_g = generator_loss(D_run(aug(G_run(z))))
            nets.opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            runtime.allreduce_grads(g_params, rt.world)
            nets.opt_g.step()
            nets.ema.update(G)
            acc += torch.stack([loss_d.detach(), w, gp.detach(), loss_g.detach()])
        step += 1
        bar.update(1)
        acc_n += 1

        if step % cfg.log_every == 0 or step == cfg.steps:
            if rt.world > 1:
                torch.distributed.all_reduce(acc)
                acc /= rt.world
            vals = (acc / acc_n).tolist()   # the one host sync, every log_every steps
            now = time.perf_counter()
            summary = dict(zip(("loss_d", "wasserstein", "gp", "loss_g"), vals))
            summary["images_per_s"] = acc_n * cfg.batch * (cfg.n_critic + 1) / max(now - t_log, 1e-9)
            acc.zero_()
            acc_n, t_log = 0, now
            log.metrics(step, summary)
            if not all(math.isfinite(v) for v in vals):
                raise FloatingPointError(f"[train] {variant}: non-finite losses at step {step}: {summary}")
        if step % cfg.sample_every == 0 or step == cfg.steps:
            log.samples(step, nets.ema.model, fixed_z)
        if step % cfg.checkpoint_every == 0 or step == cfg.steps:
            _save(ckpt_dir, step, nets, data_gen, fingerprint, resumes, cfg, rt, variant)
        if on_step is not None and on_step(step, nets.ema.model):
            break
    bar.close()

    if rt.world > 1:
        runtime.check_replicas(G, D, nets.ema.model)
    finished = step >= cfg.steps
    if finished and rt.main:
        export_generator(out_dir / "generator.pt", nets.ema.model, cfg.model_config(), step=step, variant=variant)
    log.close()
    rt.barrier()
    return {"variant": variant, "step": step, "resumed_from": first_step, "finished": finished,
            "rng_on_resume": resumes[-1]["rng"] if first_step else None,
            "device": str(rt.device), "world": rt.world, "amp_bf16": rt.amp, "channels_last": rt.channels_last,
            "tf32": rt.tf32, "compile": cfg.compile, "data_on_device": data.device == rt.device,
            "data_pinned": batch.pinned, "train_images": data.shape[0], **summary}
