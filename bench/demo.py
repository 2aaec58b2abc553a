"""The demo's wall time per stage: a fresh copy of the project, then `dvc repro -s` of each stage in
pipeline order, timed. Target: the whole demo under 10 minutes on 2 CPU cores.

    python -m bench.demo
"""
from __future__ import annotations

import subprocess
import tempfile
import time
from pathlib import Path

from bench.common import markdown_table, save
from tests import builders


def stage_order(project: Path) -> list[str]:
    """Stages as dvc.yaml lists them (foreach items expanded): dvc.yaml is kept in pipeline order."""
    return builders.dvc(project, "stage", "list", "--name-only").split()


def main() -> None:
    repo = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory() as tmp:
        project = builders.copy_project(repo, Path(tmp) / "demo")
        rows, total = [], 0.0
        for stage in stage_order(project):
            t0 = time.perf_counter()
            r = subprocess.run([str(builders.BIN / "dvc"), "repro", "-s", stage], cwd=project, env=builders.env(),
                               capture_output=True, text=True)
            seconds = time.perf_counter() - t0
            if r.returncode != 0:
                raise RuntimeError(f"stage {stage} failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
            total += seconds
            rows.append({"stage": stage, "seconds": seconds})
        rows.append({"stage": "**total**", "seconds": total})
    table = markdown_table(rows, ["stage", "seconds"])
    save("demo", {"rows": rows, "total_seconds": total, "target_seconds": 600}, table)


if __name__ == "__main__":
    main()
