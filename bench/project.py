"""Throwaway copies of this project and the `dvc` they are driven with: for the benchmarks that time
DVC stages (bench/demo.py) and the tests that drive DVC (tests/builders.py re-exports these)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

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


def dvc(project: Path, *args: str, timeout: int = 900) -> str:
    r = subprocess.run([str(BIN / "dvc"), *args], cwd=project, env=env(), capture_output=True,
                       text=True, timeout=timeout)
    if r.returncode != 0:
        raise AssertionError(f"dvc {' '.join(args)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return r.stdout + r.stderr
