"""`dvc repro` of train@V after a SIGKILL resumes from the last checkpoint and DVC records the stage
as up to date."""
from __future__ import annotations

import json
import os
import subprocess

import pytest

from pipeline.gan.models import load_generator
from pipeline.gan.train import checkpoints

H, W = 16, 32
TINY = dict(z_dim=8, features=4, max_features=16, batch=4, n_critic=2, log_every=2, sample_every=2,
            checkpoint_every=2, sample_count=4, device="cpu")   # as tests/gan/test_train.py trains


@pytest.mark.slow   # drives dvc
@pytest.mark.timeout(1800)   # up to 600 s for a checkpoint, then the resumed run
def test_dvc_repro_after_a_kill_resumes(repo_root, tmp_path):
    """The real thing: `dvc repro` of train@V, SIGKILLed (with its whole process group) once a
    checkpoint exists, then `dvc repro` again: the stage resumes from that checkpoint, finishes,
    and DVC records it as up to date. The killed run is a million steps long, so it cannot end before
    the kill however slow the test's side is; the resumed one is 8 steps past the checkpoint
    (``steps`` is a resumable key)."""
    import signal
    import time

    from tests import builders

    project = builders.copy_project(repo_root, tmp_path / "proj")
    variant = "full_16x9"
    builders.make_train_set(project / "data" / "variants" / variant, size=(H, W))
    (project / "data" / "split").mkdir(parents=True)
    (project / "data" / "variants" / variant / "split.csv").rename(project / "data" / "split" / "split.csv")
    tiny = {f"train.{k}": v for k, v in TINY.items()}
    builders.set_params(project, {**tiny, "train.steps": 1_000_000, "train.overrides": {},   # no per-variant steps
                                  "train.checkpoint_every": 4, "train.log_every": 4,
                            "train.sample_every": 100, f"variants.{variant}.height": H,
                            f"variants.{variant}.width": W})
    stage = f"train@{variant}"
    env = {**builders.env(), "OMP_NUM_THREADS": "1", "DENTSYNTH_WORKERS": "1"}
    proc = subprocess.Popen([str(builders.BIN / "dvc"), "repro", "-s", stage], cwd=project, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    ckpts = project / "models" / variant / "checkpoints"
    deadline = time.monotonic() + 600
    try:   # wait for the condition (a checkpoint past step 8 on disk), not for a time
        while not any(s >= 8 for s, _ in checkpoints(ckpts)):
            assert proc.poll() is None, "the stage ended before it could be killed"
            assert time.monotonic() < deadline, "no checkpoint within 600 s"
            time.sleep(0.2)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    killed_at = checkpoints(ckpts)[-1][0]
    assert killed_at >= 8 and not (project / "models" / variant / "generator.pt").exists()
    end = killed_at + 8
    builders.set_params(project, {"train.steps": end})
    log = builders.dvc(project, "repro", "-s", stage)
    assert f"resumed from step_{killed_at:07d}.pt (step {killed_at};" in log and "RNG streams restored" in log, log[-2000:]
    assert '"finished": true' in log and f'"step": {end}' in log
    _, info = load_generator(project / "models" / variant / "generator.pt")
    assert info["step"] == end
    metrics = json.loads((project / "models" / variant / "live" / "metrics.json").read_text())
    assert metrics["step"] == end
    assert stage not in builders.changed_stages(project, stage)
    # `dvc plots show` renders the DVCLive scalars and the sample grids declared in dvc.yaml
    builders.dvc(project, "plots", "show", "-o", str(tmp_path / "plots"))
    html = (tmp_path / "plots" / "index.html").read_text()
    assert "wasserstein" in html and "samples" in html
