"""Where and how one training process runs: its device, rank and world size (torchrun's
environment), bf16 autocast, channels_last, TF32, CPU threads, the host-sync guard of the hot loop,
and the data-parallel helpers (one gradient all-reduce per optimiser step, a replica check at the
end). NCCL on CUDA, gloo on CPU. Rank r uses ``cuda:LOCAL_RANK``, and only that device."""
from __future__ import annotations

import contextlib
import dataclasses
import os
from typing import Any, Callable, ContextManager

import torch
import torch.distributed as dist

from pipeline.core.tables import cpu_count


@dataclasses.dataclass
class Runtime:
    device: torch.device
    rank: int
    world: int
    amp: bool
    channels_last: bool
    tf32: bool = False    # fp32 matmuls and convolutions in TF32 (CUDA only; never on the CPU)

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.channels_last else torch.contiguous_format

    def autocast(self) -> Callable[[], ContextManager[Any]]:
        if self.amp:
            return lambda: torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    def sync_guard(self, mode: str | None) -> Callable[[bool], ContextManager[Any]]:
        """``guard(active)``: a context in which CUDA ops that make the host wait for the device
        warn (``mode="warn"``) or raise (``"error"``), per ``torch.cuda.set_sync_debug_mode``;
        a no-op on the CPU, with ``mode`` None or ``active`` false."""
        if mode is None or self.device.type != "cuda":
            return lambda active: contextlib.nullcontext()

        @contextlib.contextmanager
        def guard(active: bool):
            if not active:
                yield
                return
            torch.cuda.set_sync_debug_mode(mode)
            try:
                yield
            finally:
                torch.cuda.set_sync_debug_mode(0)
        return guard


def setup(device: str, amp: str, channels_last: str, threads: int | None = None, tf32: bool = False) -> Runtime:
    """The process's runtime from the config's ``device``, ``amp``, ``channels_last`` and ``tf32``
    and torchrun's ``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` (absent: one process)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("train.device is cuda but no CUDA device is available")
    if use_cuda and local >= torch.cuda.device_count():
        raise RuntimeError(f"process LOCAL_RANK {local} has no GPU: {torch.cuda.device_count()} visible; "
                           f"launch at most that many processes (train.gpus)")
    dev = torch.device("cuda", local) if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(dev)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    if not use_cuda and (threads is not None or world > 1):
        torch.set_num_threads(cpu_threads(threads, world))
    use_amp = amp == "bf16" or (amp == "auto" and use_cuda)
    cl = channels_last == "on" or (channels_last == "auto" and use_cuda)
    if use_cuda:
        torch.backends.cudnn.benchmark = True
        set_tf32(tf32)
    return Runtime(dev, rank, world, use_amp, cl, tf32=use_cuda and tf32)


def set_tf32(on: bool) -> None:
    """fp32 matmuls (cuBLAS) and convolutions (cuDNN) in TF32 or in IEEE fp32. Set both explicitly:
    torch's defaults differ (convolutions TF32, matmuls not). Only the new API, never mixed with
    ``allow_tf32`` (torch refuses the mix)."""
    precision = "tf32" if on else "ieee"
    torch.backends.cuda.matmul.fp32_precision = precision
    torch.backends.cudnn.conv.fp32_precision = precision


def cpu_threads(requested: int | None, world: int = 1) -> int:
    """Torch threads per process on the CPU: ``requested`` in all (0 or None: every core this process
    may use) shared by the ``world`` ranks. Never taken from the machine's load: the count sets the
    order of float sums, so a run's images would depend on what else ran (an earlier version lowered
    it on a loaded machine, and two `dvc repro` runs of the same inputs gave different generators).
    The default ``train.cpu_threads: 1`` is also the fastest on a shared machine: the nets are
    small, every op is a short parallel region whose OpenMP barrier waits for all its threads, and a
    thread that is not scheduled stalls the others (2 shared cores at load 5: 2 threads 2.4-3.2
    s/step, 1 thread 0.52 s/step)."""
    n = requested if requested and requested > 0 else cpu_count()
    return max(1, n // world)


def allreduce_grads(params: list[torch.Tensor], world: int) -> None:
    """Average the gradients over the ranks (one flat all-reduce)."""
    if world == 1:
        return
    grads = [p.grad for p in params if p.grad is not None]
    flat = torch._utils._flatten_dense_tensors(grads)
    dist.all_reduce(flat)
    flat.div_(world)
    for g, avg in zip(grads, torch._utils._unflatten_dense_tensors(flat, grads)):
        g.copy_(avg)


def check_replicas(*models: torch.nn.Module) -> None:
    """Fail loudly if the ranks' weights have drifted apart (they must stay identical)."""
    with torch.no_grad():
        local = torch.stack([torch.cat([p.detach().double().flatten() for p in m.parameters()]).sum()
                             for m in models])
    lo, hi = local.clone(), local.clone()
    dist.all_reduce(lo, op=dist.ReduceOp.MIN)
    dist.all_reduce(hi, op=dist.ReduceOp.MAX)
    if not torch.equal(lo, hi):
        raise RuntimeError(f"data-parallel replicas diverged: weight checksums {lo.tolist()} vs {hi.tolist()}")
