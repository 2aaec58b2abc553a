"""A killed stage leaves no worker: torchrun starts its workers in their own sessions (setsid), so a
`kill -9` of it (or of `dvc repro`) used to leave them training into models/V as orphans."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

WORKER = """
import os, sys, time
from pathlib import Path
from pipeline.gan import runtime
runtime.setup("cpu", "off", "off", 1)
Path(sys.argv[1], f"worker_{os.environ.get('RANK', '0')}").write_text(str(os.getpid()))
time.sleep(120)
"""

# a stand-in for torchrun's agent: starts the worker in a new session (as torchrun does) and waits
AGENT = """
import os, subprocess, sys
env = {**os.environ, "TORCHELASTIC_RUN_ID": "test", "LOCAL_RANK": "0", "RANK": "0", "WORLD_SIZE": "1"}
subprocess.Popen([sys.executable, sys.argv[1], sys.argv[2]], env=env, start_new_session=True).wait()
"""


def _gone(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.1)
    return False


def _wait_for(files: list[Path], proc: subprocess.Popen, seconds: float = 120) -> list[int]:
    deadline = time.monotonic() + seconds
    while not all(f.exists() and f.read_text() for f in files):
        assert proc.poll() is None and time.monotonic() < deadline, "the workers did not start"
        time.sleep(0.1)
    return [int(f.read_text()) for f in files]


def _kill_all(pids: list[int]) -> None:
    for pid in pids:   # only the processes this test started
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_a_torchrun_worker_dies_with_its_parent(tmp_path, repo_root):
    (tmp_path / "worker.py").write_text(WORKER)
    (tmp_path / "agent.py").write_text(AGENT)
    env = {**os.environ, "PYTHONPATH": str(repo_root), "OMP_NUM_THREADS": "1"}
    agent = subprocess.Popen([sys.executable, str(tmp_path / "agent.py"), str(tmp_path / "worker.py"), str(tmp_path)],
                             cwd=repo_root, env=env)
    [worker] = _wait_for([tmp_path / "worker_0"], agent)
    try:
        agent.kill()
        agent.wait()
        assert _gone(worker, 15), "the worker outlived its killed parent"
    finally:
        _kill_all([worker])


@pytest.mark.slow
def test_kill_9_of_torchrun_leaves_no_worker(tmp_path, repo_root):
    """The real launcher: 2 gloo workers under torchrun, torchrun SIGKILLed."""
    (tmp_path / "worker.py").write_text(WORKER)
    env = {**os.environ, "PYTHONPATH": str(repo_root), "OMP_NUM_THREADS": "1"}
    run = subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes=1",
                            "--nproc_per_node=2", str(tmp_path / "worker.py"), str(tmp_path)], cwd=repo_root, env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers = _wait_for([tmp_path / "worker_0", tmp_path / "worker_1"], run)
    try:
        run.kill()
        run.wait()
        assert all(_gone(pid, 15) for pid in workers), "torchrun's workers outlived it"
    finally:
        _kill_all(workers)
