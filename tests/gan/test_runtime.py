"""The process runtime: CPU threads from the param, the host-sync guard, TF32 set through one API."""
from __future__ import annotations

import torch

from pipeline.gan import runtime
from pipeline.gan.runtime import Runtime


def test_cpu_threads_come_from_the_param_never_from_the_load(monkeypatch):
    """The thread count sets the float rounding of a run: it must not follow the machine's load
    (two `dvc repro` of the same inputs would give different generators)."""
    monkeypatch.setattr(runtime.os, "sched_getaffinity", lambda _: set(range(8)))
    for load in (0.2, 5.4, 30.0):
        monkeypatch.setattr(runtime.os, "getloadavg", lambda load=load: (load, 0.0, 0.0))
        assert runtime.cpu_threads(None) == 8 and runtime.cpu_threads(0) == 8 and runtime.cpu_threads(4) == 4
        assert runtime.cpu_threads(0, world=2) == 4 and runtime.cpu_threads(1, world=2) == 1


def test_the_stage_default_is_one_thread():
    from pipeline.gan.train import RESUMABLE_KEYS, TrainConfig

    assert TrainConfig().cpu_threads == 1 and "cpu_threads" in RESUMABLE_KEYS   # a launch key: resumable
    before = torch.get_num_threads()
    try:
        runtime.setup("cpu", "off", "off", 2)
        assert torch.get_num_threads() == 2
        runtime.setup("cpu", "off", "off", 1)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_the_sync_guard_wraps_only_active_cuda_steps(monkeypatch):
    calls = []
    monkeypatch.setattr(torch.cuda, "set_sync_debug_mode", calls.append)
    cuda = Runtime(torch.device("cuda", 0), 0, 1, True, True)    # a device object; no GPU needed
    with cuda.sync_guard("error")(True):
        assert calls == ["error"]
    assert calls == ["error", 0]
    with cuda.sync_guard("error")(False):
        pass
    with cuda.sync_guard(None)(True):
        pass
    with Runtime(torch.device("cpu"), 0, 1, False, False).sync_guard("error")(True):
        pass
    assert calls == ["error", 0]
    try:                                       # reset even when the step raises (a sync in error mode)
        with cuda.sync_guard("warn")(True):
            raise RuntimeError("called a synchronizing CUDA operation")
    except RuntimeError:
        pass
    assert calls[-2:] == ["warn", 0]


def test_tf32_is_set_for_matmuls_and_convolutions_alike():
    before = (torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision)
    try:
        runtime.set_tf32(False)
        assert (torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision) == ("ieee", "ieee")
        runtime.set_tf32(True)
        assert (torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision) == ("tf32", "tf32")
    finally:
        torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision = before
