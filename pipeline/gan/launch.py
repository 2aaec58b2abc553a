"""How many training processes, and starting them: ``train.gpus`` -> ``torchrun``.

``python -m stages.train V`` (what ``dvc repro`` runs) replaces itself with
``python -m torch.distributed.run --standalone --nproc_per_node=N -m stages.train V`` when
:func:`processes` is above 1 and it is not already one of torchrun's processes, so the multi-GPU run
is the DVC stage itself (same command, deps, outs and lock). ``exec`` rather than a child process:
signals (Ctrl-C, a kill of the job) and the exit code are torchrun's own.

- ``gpus: auto``: the most visible GPUs (``CUDA_VISIBLE_DEVICES`` narrows them) whose count
  divides the global ``train.batch`` (8 on 6 GPUs: 4), said before the exec; 1 without CUDA;
- ``gpus: 0`` or ``1``: one process; ``N``: N processes, an error (before any exec) if fewer GPUs
  are visible or N does not divide the batch;
- on the CPU (``device: cpu`` or no CUDA): always one process (gloo runs are for tests: start
  torchrun by hand).

The number of processes is a speed setting: checkpoints resume with any of them that divides the
global ``train.batch`` (:mod:`pipeline.gan.checkpoint`).
"""
from __future__ import annotations

import os
import sys
from typing import NoReturn

import torch

from pipeline.core.config import ConfigError

TORCHRUN_ENV = ("TORCHELASTIC_RUN_ID", "LOCAL_RANK")   # set by torchrun in the processes it starts


def processes(gpus: int | str, device: str, visible: int | None = None, *, batch: int) -> int:
    """The number of training processes for ``train.gpus``, ``train.device`` and the global
    ``train.batch`` (every rank draws ``batch / N`` images)."""
    if visible is None:
        visible = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if device == "cpu" or visible == 0:
        if device == "cuda":
            raise RuntimeError("train.device is cuda but no CUDA device is available")
        return 1
    if gpus == "auto":
        n = max(k for k in range(1, visible + 1) if batch % k == 0)
        if n < visible:
            print(f"[train] gpus: auto: {n} of the {visible} visible GPUs (the most that divide train.batch "
                  f"{batch})", flush=True)
        return n
    n = max(1, int(gpus))
    if n > visible:
        raise ConfigError(f"train.gpus is {gpus} but {visible} GPU(s) are visible: set train.gpus to at "
                           f"most {visible} (or auto)")
    if batch % n:
        raise ConfigError(f"train.gpus is {gpus} but the global train.batch {batch} is not divisible by it: "
                          f"set train.gpus to a divisor of {batch} (or auto)")
    return n


def under_torchrun() -> bool:
    return any(k in os.environ for k in TORCHRUN_ENV)


def torchrun_argv(nproc: int, args: list[str]) -> list[str]:
    """The command that starts ``nproc`` processes of ``python args...`` on this machine (a free
    rendezvous port: ``--standalone``)."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes=1",
            f"--nproc_per_node={nproc}", *args]


def exec_torchrun(nproc: int, args: list[str]) -> NoReturn:
    argv = torchrun_argv(nproc, args)
    print(f"[train] {nproc} processes: {' '.join(argv[1:])}", flush=True)
    sys.stderr.flush()
    os.execv(argv[0], argv)
