"""Checkpoints: the full resume state of a training run, one file per saved step.

``checkpoints/step_XXXXXXX.pt`` (atomic): models, EMA, optimisers, step, the run's fingerprint
(config minus the resumable keys, seed, size, train ids, code hash) and every RNG state (python,
numpy, torch, cuda, the batch sampler's), per rank. A restart resumes from the newest one whose
fingerprint matches.
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


def fingerprint(config: dict[str, Any], seed: int, height: int, width: int, ids: list[str],
                modules: list[ModuleType]) -> dict:
    """What a checkpoint must match to be resumed: ``config`` (without the resumable keys), seed,
    size, the train ids and :func:`code_hash` of ``modules``."""
    return {"config": config, "seed": seed, "height": height, "width": width,
            "data": hashlib.sha256("\n".join(ids).encode()).hexdigest(), "code": code_hash(modules)}


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


def rng_state(data_gen: torch.Generator) -> dict:
    py = random.getstate()
    npy = np.random.get_state()
    return {"python": [py[0], list(py[1]), py[2]],
            "numpy": [npy[0], npy[1].tolist(), int(npy[2]), int(npy[3]), float(npy[4])],
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "data": data_gen.get_state()}


def set_rng_state(state: dict, data_gen: torch.Generator) -> None:
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    npy = state["numpy"]
    np.random.set_state((npy[0], np.array(npy[1], dtype=np.uint32), npy[2], npy[3], npy[4]))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    data_gen.set_state(state["data"])


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
