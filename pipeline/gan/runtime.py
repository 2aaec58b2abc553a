"""Where and how one training process runs: its device, rank and world size (torchrun's
environment), bf16 autocast, channels_last, TF32, CPU threads, the host-sync guard of the hot loop,
and the data-parallel helpers (one gradient all-reduce per optimiser step, a replica check at the
end). NCCL on CUDA, gloo on CPU. Rank r uses ``cuda:LOCAL_RANK``, and only that device."""
from __future__ import annotations

import contextlib
import dataclasses
import inspect
import os
import signal
import sys
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
    owns_group: bool = False   # setup() started the process group: close() ends it

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

    def close(self) -> None:
        """End the process group this runtime started (NCCL warns, and may hang at exit, without)."""
        if self.owns_group and dist.is_initialized():
            dist.destroy_process_group()
            self.owns_group = False

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


def setup(device: str, amp: str, channels_last: str, threads: int | None = None, tf32: bool = False,
          backend: str = "auto") -> Runtime:
    """The process's runtime from the config's ``device``, ``amp``, ``channels_last``, ``tf32`` and
    ``dist_backend`` and torchrun's ``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` (absent: one process).

    ``amp: auto`` is bf16 on CUDA cards of compute capability 8.0 and up (Ampere+); older cards
    (V100, T4) emulate bf16 slowly, so they stay in fp32 unless ``amp: bf16`` asks. A process that
    torchrun started dies with its parent (:func:`die_with_parent`). ``backend`` ``auto`` is NCCL on
    CUDA and gloo on the CPU; ``gloo`` on CUDA lets several processes share one GPU (checks only:
    NCCL refuses two ranks on one device)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if "TORCHELASTIC_RUN_ID" in os.environ:   # one of torchrun's workers
        die_with_parent()
    use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("train.device is cuda but no CUDA device is available")
    if use_cuda and local >= torch.cuda.device_count():
        raise RuntimeError(f"process LOCAL_RANK {local} has no GPU: {torch.cuda.device_count()} visible; "
                           f"launch at most that many processes (train.gpus)")
    dev = torch.device("cuda", local) if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(dev)
    owns_group = False
    if world > 1 and not dist.is_initialized():
        name = backend if backend != "auto" else ("nccl" if use_cuda else "gloo")
        kwargs: dict[str, Any] = {"backend": name}
        # device_id binds the group to this rank's GPU (NCCL: eager init, no guessed device in barrier)
        if use_cuda and name == "nccl" and "device_id" in inspect.signature(dist.init_process_group).parameters:
            kwargs["device_id"] = dev
        dist.init_process_group(**kwargs)
        owns_group = True
    if not use_cuda and (threads is not None or world > 1):
        torch.set_num_threads(cpu_threads(threads, world))
    use_amp = amp == "bf16" or (amp == "auto" and use_cuda and bf16_fast(dev))
    cl = channels_last == "on" or (channels_last == "auto" and use_cuda)
    if use_cuda:
        torch.backends.cudnn.benchmark = True
        set_tf32(tf32)
    return Runtime(dev, rank, world, use_amp, cl, tf32=use_cuda and tf32, owns_group=owns_group)


def bf16_fast(device: torch.device) -> bool:
    """Whether ``device`` computes bf16 natively: CUDA compute capability 8.0 or higher."""
    return device.type == "cuda" and tuple(torch.cuda.get_device_capability(device)) >= (8, 0)


def die_with_parent() -> None:
    """Linux: SIGKILL this process when its parent dies. torchrun starts its workers in their own
    sessions, so a ``kill -9`` of the stage (torchrun) would otherwise leave them training (and
    writing into ``models/<V>``) as orphans. If the parent is already gone, exit now."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    parent = os.getppid()
    libc = ctypes.CDLL(None, use_errno=True)
    PR_SET_PDEATHSIG = 1
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        return
    if os.getppid() != parent:   # the parent died before the prctl: no signal will come
        os._exit(1)


def set_tf32(on: bool) -> None:
    """fp32 matmuls (cuBLAS) and convolutions (cuDNN) in TF32 or in IEEE fp32. Set both explicitly:
    torch's defaults differ (convolutions TF32, matmuls not). Only the new API, never mixed with
    ``allow_tf32`` (torch refuses the mix) where the new API exists; the ``allow_tf32`` flags on a
    torch without it."""
    precision = "tf32" if on else "ieee"
    matmul, conv = torch.backends.cuda.matmul, getattr(torch.backends.cudnn, "conv", None)
    if hasattr(matmul, "fp32_precision") and conv is not None and hasattr(conv, "fp32_precision"):
        try:
            matmul.fp32_precision = precision
            conv.fp32_precision = precision
            return
        except (AttributeError, RuntimeError, TypeError):   # a torch that has the names but not the API
            pass
    matmul.allow_tf32 = on   # older torch: only the allow_tf32 flags exist
    torch.backends.cudnn.allow_tf32 = on


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
    """Fail loudly if the ranks' weights or buffers (BatchNorm running statistics, which the
    exported EMA generator carries) have drifted apart: they must stay identical. Two float64
    checksums per tensor (sum and sum of squares), compared with one MIN and one MAX all-reduce."""
    with torch.no_grad():
        tensors = [t.detach().double() for m in models for t in [*m.parameters(), *m.buffers()]]
        local = torch.stack([torch.stack([t.sum(), t.square().sum()]) for t in tensors]).flatten()
    lo, hi = local.clone(), local.clone()
    dist.all_reduce(lo, op=dist.ReduceOp.MIN)
    dist.all_reduce(hi, op=dist.ReduceOp.MAX)
    if not torch.equal(lo, hi):
        names = [f"model {i} {name}" for i, m in enumerate(models)
                 for name in [*(n for n, _ in m.named_parameters()), *(n for n, _ in m.named_buffers())]]
        differ = [names[k // 2] for k in torch.nonzero(lo != hi).flatten().tolist()]
        raise RuntimeError(f"data-parallel replicas diverged in {len(set(differ))} tensor(s): "
                           f"{', '.join(dict.fromkeys(differ))}"[:600])
