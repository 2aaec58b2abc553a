"""Where released images came from, as dvc.lock records it: the code commit, and per variant the
training data hashes and training params. Read by the release stage, written into the card."""
from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.core import config


@dataclass(frozen=True)
class Provenance:
    """What the card says about where the images came from (read from dvc.lock by the stage)."""

    code_commit: str = "unknown"
    lock: dict = field(default_factory=dict)


def read_lock(path: Path) -> dict:
    if not Path(path).exists():
        return {}
    return config.parse_yaml(Path(path).read_text()) or {}  # YAML 1.2, as DVC writes it


def provenance_from_lock(lock: dict, variants: list[str]) -> dict:
    """Per variant: the training data hashes and training params recorded in dvc.lock."""
    stages = (lock or {}).get("stages", {})
    out = {}
    for v in variants:
        st = stages.get(f"train@{v}", {})
        deps = {d["path"]: d.get("md5") or d.get("hash") or "" for d in st.get("deps", [])
                if str(d.get("path", "")).startswith("data/")}
        out[v] = {"training_data": deps, "params": st.get("params", {})}
    return out


def code_commit() -> str:
    """The checkout's commit (marked when tracked files differ from it), as the card records it."""
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, check=True).stdout.strip()
        return sha + (" (with uncommitted changes)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
