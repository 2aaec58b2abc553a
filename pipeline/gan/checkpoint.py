"""Checkpoints: the full resume state of a training run, one file per saved step.

``checkpoints/step_XXXXXXX.pt`` (atomic): models, EMA, optimisers, step, the run's fingerprint
(config minus the resumable keys, seed, size, train ids, code hash), the launch that wrote it
(``world``, ``device``: cpu or cuda) and, per rank, every RNG state the rank draws from (python,
numpy, torch's CPU generator, the rank's own CUDA device's generator, the batch sampler's on the
data's device). A restart resumes from the newest one whose fingerprint matches, on any device and
with any number of processes that divides the global batch: the launch is a speed setting.

The RNG rule on resume (:func:`resume_rng`), recorded in every later checkpoint's ``resumes``:

- **restored**, when the world size, the device type and the batch sampler's device type are those
  of the checkpoint: rank r gets back exactly the states rank r saved, so the run continues
  bit-identically to one never interrupted (on the CPU with the same thread count; on CUDA up to the
  usual non-determinism of cuDNN and atomics).
- **reseeded** otherwise (another world size, CPU <-> CUDA, the train set moved between host and
  device): the saved streams cannot be mapped onto the new ranks (per-rank batches of another
  size, CPU and CUDA generators have different states), so rank r of W seeds all its generators
  from ``numpy.random.SeedSequence([seed, step, W, r])`` (word 0: python, numpy, torch and CUDA;
  word 1: the batch sampler). Same weights, optimiser moments, EMA and step; new, independent and
  reproducible random draws (the same resume again draws the same numbers), not the draws the
  uninterrupted run would have made.
"""
from __future__ import annotations

import hashlib
import random
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch

from pipeline.core import atomic

CHECKPOINT_RE = re.compile(r"^step_(\d{7})\.pt$")


def checkpoints(folder: Path) -> list[tuple[int, Path]]:
    """(step, path) of the checkpoints in ``folder``, oldest first."""
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := CHECKPOINT_RE.match(p.name))]
    return sorted(found)


def data_digest(ids: list[str], pixels: torch.Tensor) -> str:
    """sha256 of the train ids *and* the pixels training sees: the same ids with other pixels (a
    changed crop, letterbox or audit upstream) are other data, and their checkpoints are not resumed."""
    h = hashlib.sha256("\n".join(ids).encode())
    h.update(str(tuple(pixels.shape)).encode())
    h.update(np.ascontiguousarray(pixels.detach().to("cpu", torch.float32).numpy()).view(np.uint8))  # no copy
    return h.hexdigest()


def fingerprint(config: dict[str, Any], seed: int, height: int, width: int, ids: list[str],
                modules: list[ModuleType], pixels: torch.Tensor) -> dict:
    """What a checkpoint must match to be resumed: ``config`` (without the resumable keys), seed,
    size, the train ids and pixels (:func:`data_digest`) and :func:`code_hash` of ``modules``."""
    return {"config": config, "seed": seed, "height": height, "width": width,
            "data": data_digest(ids, pixels), "code": code_hash(modules)}


def code_hash(modules: list[ModuleType]) -> str:
    """sha256 of the modules that define what training computes: a checkpoint written by other code
    is not resumed (DVC reruns the stage after a code change, and the result must then be what the
    new code computes from scratch, not a re-export of the old run)."""
    h = hashlib.sha256()
    for module in modules:
        h.update(Path(module.__file__).read_bytes())
    return h.hexdigest()


def seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state(device: torch.device, data_gen: torch.Generator) -> dict:
    """This rank's RNG states: python, numpy, torch (CPU), ``device``'s own CUDA generator (None on
    the CPU; never the other visible GPUs'), the batch sampler's and the device type it lives on."""
    py = random.getstate()
    npy = np.random.get_state()
    return {"python": [py[0], list(py[1]), py[2]],
            "numpy": [npy[0], npy[1].tolist(), int(npy[2]), int(npy[3]), float(npy[4])],
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
            "data": data_gen.get_state(), "data_device": data_gen.device.type}


def set_rng_state(state: dict, device: torch.device, data_gen: torch.Generator) -> None:
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    npy = state["numpy"]
    np.random.set_state((npy[0], np.array(npy[1], dtype=np.uint32), npy[2], npy[3], npy[4]))
    torch.set_rng_state(state["torch"])
    if device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"], device)
    data_gen.set_state(state["data"])


def rank_seeds(seed: int, step: int, world: int, rank: int) -> tuple[int, int]:
    """(global RNGs' seed, batch sampler's seed) of rank ``rank`` of ``world`` resumed at ``step``."""
    words = np.random.SeedSequence([seed, step, world, rank]).generate_state(2, dtype=np.uint64)
    return int(words[0] >> np.uint64(1)), int(words[1] >> np.uint64(1))   # 63 bits: torch seeds are int64


def resume_rng(state: dict, seed: int, rank: int, world: int, device: torch.device,
               data_gen: torch.Generator) -> str:
    """Apply the RNG rule of the module docstring to this rank; returns ``restored`` or ``reseeded``."""
    saved = state.get("rng") or []
    same = (state.get("world") == world and len(saved) == world and state.get("device") == device.type
            and saved[rank].get("data_device") == data_gen.device.type)
    if same:
        set_rng_state(saved[rank], device, data_gen)
        return "restored"
    global_seed, data_seed = rank_seeds(seed, int(state["step"]), world, rank)
    seed_all(global_seed)   # torch.manual_seed seeds the CUDA generators too
    data_gen.manual_seed(data_seed)
    return "reseeded"


def load_optimizer(opt: torch.optim.Optimizer, state: dict) -> None:
    """``opt.load_state_dict(state)`` that keeps ``opt``'s own implementation (fused on CUDA,
    foreach on the CPU) and puts the ``step`` counters where that implementation wants them: a
    checkpoint written on another device would otherwise bring its flags along (fused Adam on a
    CPU-resumed run, foreach on a GPU one) with step counters on the wrong device.

    The per-parameter moments take their parameter's memory layout (strides): a checkpoint of a
    contiguous run resumed with ``channels_last`` parameters would otherwise keep contiguous
    moments, which CUDA's fused Adam refuses and the CPU's fused kernel silently misreads (it
    walks both tensors' storage in the same order)."""
    impl = [{k: g[k] for k in ("fused", "foreach", "capturable") if k in g} for g in opt.param_groups]
    opt.load_state_dict(state)
    for group, kept in zip(opt.param_groups, impl):
        group.update(kept)
        on_device = bool(group.get("fused") or group.get("capturable"))
        for p in group["params"]:
            st = opt.state.get(p, {})
            for key, value in st.items():
                if key != "step" and torch.is_tensor(value) and value.shape == p.shape \
                        and (value.stride() != p.stride() or value.device != p.device):
                    st[key] = torch.empty_like(p, dtype=value.dtype).copy_(value)   # p's strides and device
            if torch.is_tensor(st.get("step")):
                st["step"] = st["step"].to(device=p.device if on_device else "cpu", dtype=torch.float32)


def load(path: Path) -> dict:
    # on the CPU: RNG states must stay CPU tensors; load_state_dict moves the rest to the device
    return torch.load(path, map_location="cpu", weights_only=True)


def save(folder: Path, step: int, state: dict, keep: int) -> Path:
    """Write ``state`` as ``folder/step_XXXXXXX.pt`` (atomic) and keep the newest ``keep`` files."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"step_{step:07d}.pt"
    with atomic.open_file(path, "wb") as f:
        torch.save(state, f)
    for _, old in checkpoints(folder)[:-keep]:
        old.unlink()
    return path
