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


def _fake_cuda(monkeypatch, capability=(8, 0)):
    """torch.cuda as one visible GPU of ``capability``, on a machine without one (nothing runs on it)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "set_device", lambda dev: None)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda dev=None: capability)
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", torch.backends.cudnn.benchmark)
    monkeypatch.setattr(runtime, "set_tf32", lambda on: None)   # tested on its own below
    for key in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "TORCHELASTIC_RUN_ID"):
        monkeypatch.delenv(key, raising=False)


def test_amp_auto_is_bf16_only_on_cards_that_compute_it_natively(monkeypatch):
    """bf16 is emulated (slow) before compute capability 8.0 (V100 7.0, T4 7.5): auto stays fp32 there."""
    for capability, bf16 in (((7, 0), False), ((7, 5), False), ((8, 0), True), ((9, 0), True)):
        _fake_cuda(monkeypatch, capability)
        rt = runtime.setup("auto", "auto", "auto", tf32=True)
        assert rt.device == torch.device("cuda", 0) and rt.amp is bf16, capability
        assert runtime.setup("auto", "bf16", "auto").amp and not runtime.setup("auto", "off", "auto").amp
    assert not runtime.setup("cpu", "auto", "auto").amp


def test_tf32_falls_back_to_the_allow_flags_on_a_torch_without_fp32_precision(monkeypatch):
    import types

    old_matmul = types.SimpleNamespace(allow_tf32=None)          # torch < 2.9: no fp32_precision
    old_cudnn = types.SimpleNamespace(allow_tf32=None)
    monkeypatch.setattr(torch.backends, "cuda", types.SimpleNamespace(matmul=old_matmul))
    monkeypatch.setattr(torch.backends, "cudnn", old_cudnn)
    runtime.set_tf32(True)
    assert old_matmul.allow_tf32 is True and old_cudnn.allow_tf32 is True
    runtime.set_tf32(False)
    assert old_matmul.allow_tf32 is False and old_cudnn.allow_tf32 is False


def test_the_process_group_is_bound_to_the_gpu_and_ended_by_its_owner(monkeypatch):
    _fake_cuda(monkeypatch)
    calls = []
    state = {"up": False}
    monkeypatch.setattr(runtime.dist, "is_initialized", lambda: state["up"])

    def init_process_group(backend, device_id=None):   # torch >= 2.3's signature
        calls.append(("init", {"backend": backend, **({"device_id": device_id} if device_id else {})}))
        state.update(up=True)

    monkeypatch.setattr(runtime.dist, "init_process_group", init_process_group)
    monkeypatch.setattr(runtime.dist, "destroy_process_group",
                        lambda: calls.append(("destroy",)) or state.update(up=False))
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    rt = runtime.setup("auto", "auto", "auto")
    assert calls == [("init", {"backend": "nccl", "device_id": torch.device("cuda", 0)})]
    rt.close()
    rt.close()                                   # once only
    assert calls[1:] == [("destroy",)]
    calls.clear()
    gloo = runtime.setup("auto", "auto", "auto", backend="gloo")   # the one-GPU check's override
    assert calls == [("init", {"backend": "gloo"})]
    state["up"] = True                           # a group someone else started is left alone
    other = runtime.setup("auto", "auto", "auto")
    other.close()
    gloo.close()
    assert calls[-1] == ("destroy",) and calls.count(("destroy",)) == 1
    state["up"] = False                          # a torch without device_id: not passed
    monkeypatch.setattr(runtime.dist, "init_process_group",
                        lambda backend: calls.append(("old init", backend)) or state.update(up=True))
    runtime.setup("auto", "auto", "auto")
    assert calls[-1] == ("old init", "nccl")
