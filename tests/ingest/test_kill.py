"""kill -9 of the ingest stage process alone: its fork server and workers die with it (none left
after 5 s), and the rerun removes the temp folder the killed run left and finishes cleanly."""
import os
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import psutil
import pytest

from tests import builders


@pytest.mark.slow
def test_kill_9_of_the_stage_leaves_no_process_and_no_temp_folder(tmp_path, repo_root):
    raw = tmp_path / "raw"
    raw.mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):  # a few distinct images, hard-linked many times: slow enough to kill mid-run
        img = cv2.resize((rng.random((100, 200)) * 65535).astype(np.uint16), (1600, 800))
        cv2.imwrite(str(raw / f"img{i}.png"), img)
        for k in range(30):
            os.link(raw / f"img{i}.png", raw / f"img{i}_copy{k:02d}.png")
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "params.yaml").write_text((repo_root / "params.yaml").read_text())
    builders.set_params(proj, {"ingest.raw_dir": str(raw)})
    env = builders.env() | {"PYTHONPATH": str(repo_root), "DENTSYNTH_WORKERS": "2"}
    cmd = [sys.executable, "-m", "stages.ingest"]
    stage = subprocess.Popen(cmd, cwd=proj, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True)
    family = []
    try:
        deadline = time.time() + 120
        tmp_dirs = []
        while time.time() < deadline:
            family = psutil.Process(stage.pid).children(recursive=True)
            tmp_dirs = list((proj / "data").glob(".ingested.tmp-*")) if (proj / "data").exists() else []
            if len(family) >= 3 and tmp_dirs and any((tmp_dirs[0] / "images").glob("*.png")):
                break
            assert stage.poll() is None, "the stage finished before it could be killed"
            time.sleep(0.05)
        else:
            pytest.fail("the stage never started its workers")
        family = psutil.Process(stage.pid).children(recursive=True)
        os.kill(stage.pid, signal.SIGKILL)  # the stage process alone, not its group
        stage.wait()
        t0 = time.time()
        while builders.alive_pids(family) and time.time() - t0 < 5:
            time.sleep(0.05)
        left = builders.alive_pids(family)
        print(f"\n{len(family)} processes under the stage; {len(left)} alive {time.time() - t0:.2f} s after kill -9")
        assert not left, f"processes left after kill -9: {left}"
        assert list((proj / "data").glob(".ingested.tmp-*")), "the killed run left its temp folder (to be removed)"
        assert not (proj / "data" / "ingested").exists()

        rerun = subprocess.run(cmd, cwd=proj, env=env, capture_output=True, text=True, timeout=300)
        assert rerun.returncode == 0, rerun.stderr[-2000:]
        assert list((proj / "data").glob(".ingested.tmp-*")) == [], "the rerun removed the stale temp folder"
        manifest = (proj / "data" / "ingested" / "manifest.csv").read_text().splitlines()
        assert len(manifest) - 1 == 4 * 31
    finally:
        for pid in builders.alive_pids(family):
            os.kill(pid, signal.SIGKILL)
        if stage.poll() is None:
            stage.kill()
