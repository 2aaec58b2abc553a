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
    # the rows of #29: a CPU checkpoint resumed with channels_last, two ranks on one device, the
    # options, and the same draws on two devices (the CPU twice here)
    cpu_first = rows["CPU checkpoint resumed on the CPU, channels_last (dry run)"]
    assert cpu_first["status"] == "ok" and cpu_first["channels_last"] and "step 2 -> 4" in cpu_first["note"]
    two = rows["two processes, one device (gloo)"]
    assert two["status"] == "ok" and "EMA generators identical" in two["note"]
    assert rows["DiffAugment + critic_norm layer"]["status"] == "ok"
    same = rows["CUDA vs CPU, 2 steps fp32 (dry run: CPU twice)"]
    assert same["status"] == "ok" and "largest loss difference 0.00e+00" in same["note"]
    assert rows["ours bf16 + critic_concat"]["images_per_s"] > 0
    for name in ("earlier fp32", "ours bf16", "earlier f256 fp32", "earlier f256 bf16"):
        assert rows[name]["images_per_s"] > 0 and rows[name]["n_critic"] == rows["earlier fp32"]["n_critic"]
    assert rows["earlier fp32"]["vs_earlier"] == 1.0 and rows["earlier fp32"]["tf32"] is False
    assert r.stdout.rstrip().splitlines()[-1].startswith("| bench.quality")     # the table is printed last
    assert (out / "gpu_dry_run.md").read_text().count("\n|") == len(rows) + 2   # header, rule, one line per check


def test_rows_skipped_for_time_read_na_and_quality_needs_a_folder(tmp_path, monkeypatch):
    """Out of budget, a row is n/a (not FAIL); bench.quality runs only on a folder passed in, with
    its --raw argument (it exits 2 without one)."""
    from bench import gpu_check

    check = gpu_check.Check(dry=True, minutes=0, params_file="params.yaml")
    check.throughput()
    check.cpu_to_cuda()
    check.two_ranks()
    assert check.rows and {r["status"] for r in check.rows} == {"n/a"}
    real = gpu_check.Check(dry=False, minutes=8, params_file="params.yaml")
    real.quality()
    assert real.rows[-1]["status"] == "n/a" and "--quality-raw" in real.rows[-1]["note"]
    calls = []

    class Done:
        returncode, stdout, stderr = 0, "quality written", ""

    monkeypatch.setattr(gpu_check.subprocess, "run", lambda argv, **kw: calls.append(argv) or Done())
    fed = gpu_check.Check(dry=False, minutes=8, params_file="params.yaml", quality_raw=[str(tmp_path)])
    fed.quality()
    assert fed.rows[-1]["status"] == "ok"
    argv = calls[-1]
    assert argv[1:3] == ["-m", "bench.quality"] and argv[argv.index("--raw") + 1] == str(tmp_path)
    assert {"--size", "--seeds", "--recipes", "--budget-s", "--out"} <= set(argv)   # options bench.quality has
