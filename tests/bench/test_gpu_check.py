"""bench/gpu_check.py --dry-run: the GPU check's sequence on the CPU at tiny sizes (kill after the
first checkpoint, resume, checkpoint resumed on the CPU, throughput rows), without any module the
GPU machine lacks (DVC, DVCLive, torchvision, ruamel, albumentations, pydicom): a sitecustomize
blocks them in this process and in the children it starts."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys

ABSENT_ON_THE_GPU_MACHINE = ["dvc", "dvclive", "torchvision", "ruamel", "albumentations", "pydicom"]

BLOCKER = """
import sys
BLOCKED = {blocked!r}
class _Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{{name}} is not installed on the GPU machine")
        return None
sys.meta_path.insert(0, _Block())
"""


def test_dry_run_passes_without_the_modules_the_gpu_machine_lacks(repo_root, tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(BLOCKER.format(blocked=ABSENT_ON_THE_GPU_MACHINE))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(repo_root)]), "OMP_NUM_THREADS": "1"}
    probe = subprocess.run([sys.executable, "-c", "import dvclive"], env=env, capture_output=True, text=True)
    assert probe.returncode != 0 and "not installed on the GPU machine" in probe.stderr   # the blocker works
    out = tmp_path / "reports"
    r = subprocess.run([sys.executable, "-m", "bench.gpu_check", "--dry-run", "--out", str(out)], cwd=repo_root,
                       env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    report = json.loads((out / "gpu_dry_run.json").read_text())
    rows = {row["check"]: row for row in report["rows"]}
    assert report["dry_run"] and not any(row["status"] == "FAIL" for row in rows.values())
    assert rows["kill after first checkpoint"]["status"] == "ok"
    # killed once a checkpoint was on disk (the first, or a later one if the poll came late: the
    # killed run is 10,000 steps, it cannot end first); resumed from it for one more interval of 2
    k = int(re.search(r"checkpoint step (\d+) on disk", rows["kill after first checkpoint"]["note"])[1])
    assert k >= 2 and k % 2 == 0 and f"from step {k} to {k + 2}" in rows["resume the killed run"]["note"]
    assert rows["resume the killed run"]["bf16"] and rows["resume the killed run"]["channels_last"]
    assert rows["CPU (dry run) checkpoint resumed on the CPU"]["status"] == "ok"
    for name in ("earlier fp32", "ours bf16", "earlier f256 fp32", "earlier f256 bf16"):
        assert rows[name]["images_per_s"] > 0 and rows[name]["n_critic"] == rows["earlier fp32"]["n_critic"]
    assert rows["earlier fp32"]["vs_earlier"] == 1.0 and rows["earlier fp32"]["tf32"] is False
    assert r.stdout.rstrip().splitlines()[-1].startswith("| bench.quality")     # the table is printed last
    assert (out / "gpu_dry_run.md").read_text().count("\n|") == len(rows) + 2   # header, rule, one line per check
