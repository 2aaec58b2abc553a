"""The process runtime: CPU threads under load, the host-sync guard, TF32 set through one API."""
from __future__ import annotations

import torch

from pipeline.gan import runtime
from pipeline.gan.runtime import Runtime


def test_cpu_threads_share_the_idle_cores(monkeypatch):
    monkeypatch.setattr(runtime.os, "sched_getaffinity", lambda _: set(range(8)))
    monkeypatch.setattr(runtime.os, "getloadavg", lambda: (0.2, 0.0, 0.0))
    assert runtime.cpu_threads(None) == 8 and runtime.cpu_threads(4) == 4
    assert runtime.cpu_threads(None, world=2) == 4
    monkeypatch.setattr(runtime.os, "getloadavg", lambda: (5.4, 0.0, 0.0))   # 5 cores busy elsewhere
    assert runtime.cpu_threads(None) == 3 and runtime.cpu_threads(None, world=2) == 1
    monkeypatch.setattr(runtime.os, "getloadavg", lambda: (30.0, 0.0, 0.0))
    assert runtime.cpu_threads(8) == 1


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
