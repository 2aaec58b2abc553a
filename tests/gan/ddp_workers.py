"""What each rank of the multi-process tests runs (started by :func:`tests.gan.ddp.run_ranks`):
module-level functions of ``(out, *args)`` that write their findings under ``out`` per rank."""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch

H, W = 16, 32
TINY = dict(z_dim=8, features=4, max_features=16, batch=4, n_critic=2, log_every=2, sample_every=2,
            checkpoint_every=2, sample_count=4, device="cpu")


def tiny_generator(seed: int = 0) -> torch.nn.Module:
    from pipeline.gan.models import ModelConfig, build_generator

    torch.manual_seed(seed)
    cfg = ModelConfig(model="resnet", z_dim=8, features=4, max_features=16, critic_norm="none", min_grid=4,
                      layout_basis=0, critic_mbstd=True, upsample="nearest")
    return build_generator(cfg, H, W)


def global_batch(n: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """(z, per-pixel weights of the loss) of the global batch, the same on every rank."""
    g = torch.Generator().manual_seed(11)
    return torch.randn(n, 8, generator=g), torch.randn(n, 1, H, W, generator=g)


def loss_of(G: torch.nn.Module, z: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    return (G(z) * weights).mean()   # a mean over this process's samples, as the trainer's losses


def bn_step(out: str) -> None:
    """One forward and backward of the generator on this rank's half of a fixed batch, gradients
    averaged as the trainer averages them; then a perturbed buffer on rank 1 must fail the check."""
    from pipeline.gan import runtime

    rt = runtime.setup("cpu", "off", "off", 1)
    G = tiny_generator().train()
    z, weights = global_batch()
    n = z.shape[0] // rt.world
    part = slice(rt.rank * n, (rt.rank + 1) * n)
    y = G(z[part])
    (y * weights[part]).mean().backward()
    runtime.allreduce_grads(list(G.parameters()), rt.world)
    found = {"y": y.detach(), "grads": {k: p.grad.clone() for k, p in G.named_parameters()},
             "buffers": {k: b.clone() for k, b in G.named_buffers()}}
    runtime.check_replicas(G)                     # identical buffers: passes
    if rt.rank == 1:
        with torch.no_grad():
            G.out_bn.running_mean.add_(1e-3)
    try:
        runtime.check_replicas(G)
        found["caught"] = ""
    except RuntimeError as e:
        found["caught"] = str(e)
    torch.save(found, Path(out) / f"bn_rank{rt.rank}.pt")
    torch.distributed.destroy_process_group()


def train_run(out: str, steps: str, images_seed: str = "0") -> None:
    """train() of TINY on this rank (random images), the EMA generator's state at the end saved per
    rank, and whether the process group is still up after train() returned."""
    from pipeline.gan.train import TrainConfig, train

    rank = int(os.environ["RANK"])
    images = torch.rand(12, 1, H, W, generator=torch.Generator().manual_seed(int(images_seed))) * 2 - 1
    last = {}

    def keep(step, ema_model):
        last["ema"] = {k: v.detach().clone() for k, v in ema_model.state_dict().items()}
        return False

    result = train(TrainConfig(steps=int(steps), **TINY), "v", H, W, 123, "", "", Path(out) / "m",
                   progress=False, live=False, images=images, on_step=keep)
    result["group_up_after"] = torch.distributed.is_initialized()
    torch.save(last["ema"], Path(out) / f"ema_rank{rank}.pt")
    (Path(out) / f"result_rank{rank}.json").write_text(json.dumps(result))


def stale_resume(out: str, steps: str) -> None:
    """As :func:`train_run`, but rank 1 sees a stale listing of the checkpoint folder (its newest
    checkpoint missing), as a rank on another node of a shared folder may."""
    from pipeline.gan import train as train_module

    if int(os.environ["RANK"]) == 1:
        real = train_module.checkpoints
        train_module.checkpoints = lambda folder: real(folder)[:-1]
    train_run(out, steps)
