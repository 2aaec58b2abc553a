"""A throwaway copy of this project (tracked + untracked-not-ignored files) for tests that drive dvc."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from pipeline import config

BIN = Path(sys.executable).parent


def env() -> dict:
    e = dict(os.environ)
    e["PATH"] = f"{BIN}{os.pathsep}{e.get('PATH', '')}"
    e.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    e.setdefault("DENTSYNTH_WORKERS", "2")
    e["DVC_NO_ANALYTICS"] = "1"
    return e


def copy_project(repo: Path, dest: Path) -> Path:
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=repo,
                           capture_output=True, check=True).stdout.decode().split("\0")
    for rel in filter(None, files):
        src = repo / rel
        if not src.is_file() or rel.startswith(("data/", "models/", "reports/")):
            continue
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dest / rel)
    git = ["git", "-c", "user.email=t@example.org", "-c", "user.name=test"]
    subprocess.run(git + ["init", "-q"], cwd=dest, check=True)
    subprocess.run(git + ["add", "-A"], cwd=dest, check=True)
    subprocess.run(git + ["commit", "-qm", "copy"], cwd=dest, check=True)
    return dest


def set_params(project: Path, updates: dict[str, object]) -> None:
    """Set dotted keys in the copy's params.yaml (e.g. {'phantoms.width': 256})."""
    path = project / "params.yaml"
    params = config.parse_yaml(path.read_text())  # as DVC reads it (an unquoted 16:9 stays a string)
    for dotted, value in updates.items():
        node = params
        *parents, last = dotted.split(".")
        for key in parents:
            node = node[key]
        node[last] = value
    path.write_text(yaml.safe_dump(params, sort_keys=False))


def dvc(project: Path, *args: str, timeout: int = 900) -> str:
    r = subprocess.run([str(BIN / "dvc"), *args], cwd=project, env=env(), capture_output=True,
                       text=True, timeout=timeout)
    if r.returncode != 0:
        raise AssertionError(f"dvc {' '.join(args)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return r.stdout + r.stderr


def changed_stages(project: Path, *targets: str) -> set[str]:
    """Stages `dvc status` reports as changed (their deps, params or outs differ from dvc.lock)."""
    out = dvc(project, "status", "--json", *(("--with-deps", *targets) if targets else ()))
    return set(json.loads(out[out.index("{"):]) if "{" in out else {})


def ran_stages(log: str) -> set[str]:
    return {line.split("'")[1] for line in log.splitlines() if line.startswith("Running stage '")}
