"""The demo's wall time per stage: a fresh copy of the project, then `dvc repro -s` of each stage in
pipeline order, timed. Target: the whole demo under 10 minutes on 2 CPU cores.

    python -m bench.demo                     # a fresh copy of this checkout
    python -m bench.demo --project .         # in place: every stage forced (`dvc repro -f -s`), so the
                                             # checkout keeps the outputs and dvc.lock of the run

Machines differ up to several times in speed: the share of each stage in the total is the figure
that carries over.
"""
from __future__ import annotations

import subprocess
import tempfile
import time
from pathlib import Path

from bench.common import markdown_table, save
from bench import project as builders


def stage_order(project: Path) -> list[str]:
    """Stages as dvc.yaml lists them (foreach items expanded): dvc.yaml is kept in pipeline order."""
    return builders.dvc(project, "stage", "list", "--name-only").split()


def main() -> None:
    import argparse
    import contextlib

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--project", type=Path, default=None, help="run in this checkout (forced) instead of a fresh copy")
    args = ap.parse_args()
    repo = Path(__file__).resolve().parents[1]
    with contextlib.ExitStack() as stack:
        if args.project is None:
            tmp = stack.enter_context(tempfile.TemporaryDirectory())
            project, force = builders.copy_project(repo, Path(tmp) / "demo"), []
        else:
            project, force = args.project.resolve(), ["-f"]
        rows, total = [], 0.0
        for stage in stage_order(project):
            t0 = time.perf_counter()
            r = subprocess.run([str(builders.BIN / "dvc"), "repro", *force, "-s", stage], cwd=project,
                               env=builders.env(), capture_output=True, text=True)
            seconds = time.perf_counter() - t0
            if r.returncode != 0:
                raise RuntimeError(f"stage {stage} failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
            total += seconds
            rows.append({"stage": stage, "seconds": seconds})
        for row in rows:
            row["share"] = f"{100 * row['seconds'] / total:.1f}%"
        rows.append({"stage": "**total**", "seconds": total, "share": "100%"})
    table = markdown_table(rows, ["stage", "seconds", "share"])
    save("demo", {"rows": rows, "total_seconds": total, "target_seconds": 600,
                  "mode": "fresh copy" if args.project is None else "in place, forced"}, table)


if __name__ == "__main__":
    main()
