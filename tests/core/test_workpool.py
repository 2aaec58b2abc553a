"""The shared process pool: job order, one worker in-process and single-threaded like a worker."""
from __future__ import annotations

import os

import cv2

from pipeline.core import workpool
from tests import builders


def _square_and_pid(x: int) -> tuple[int, int, int]:
    return x * x, os.getpid(), cv2.getNumThreads()


def test_results_come_back_in_job_order_from_other_processes():
    out = list(workpool.imap(_square_and_pid, [(i,) for i in range(20)], 2, progress=False))
    assert [r[0] for r in out] == [i * i for i in range(20)]
    assert os.getpid() not in {r[1] for r in out}
    assert {r[2] for r in out} == {1}  # OpenCV single-threaded in the workers


def test_one_worker_runs_here_single_threaded_and_restores_opencv_threads():
    before = cv2.getNumThreads()
    out = list(workpool.imap(_square_and_pid, [(i,) for i in range(3)], 1, progress=False))
    assert [r[0] for r in out] == [0, 1, 4]
    assert {r[1] for r in out} == {os.getpid()}
    assert {r[2] for r in out} == {1}
    assert cv2.getNumThreads() == before


def _page_faults_of_repeated_duplicate_checks(a, b, n: int = 3) -> int:
    """Page faults of ``n`` near-duplicate checks (OpenCV scratch buffers allocated and freed per
    call) in this process, after a first one."""
    import resource

    from pipeline.audit import duplicates

    duplicates.fine_similarity(a, b)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(n):
        duplicates.fine_similarity(a, b)
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


def test_workers_reuse_freed_memory_instead_of_faulting_it_in_again():
    import numpy as np

    from pipeline.audit import duplicates

    rng = np.random.default_rng(0)
    a, b = (duplicates.fingerprint(rng.random((384, 768), dtype=np.float32)) for _ in range(2))
    (faults,) = workpool.imap(_page_faults_of_repeated_duplicate_checks, [(a, b)], 2, progress=False)
    # a worker without keep_freed_memory: ~7,800 page faults per check (~2.5x slower); with it: none
    assert faults < 1000


def test_workers_and_fork_server_die_with_their_parent(tmp_path):
    """kill -9 of the process that owns a pool: its fork server and workers are gone within 5 s."""
    import signal
    import subprocess
    import sys
    import time

    import psutil

    script = tmp_path / "owner.py"
    script.write_text("import time\nfrom pipeline.core import workpool\n"
                      "def nap(i):\n    time.sleep(60)\n"
                      "if __name__ == '__main__':\n"
                      "    list(workpool.imap(nap, [(i,) for i in range(4)], 2, progress=False))\n")
    owner = subprocess.Popen([sys.executable, str(script)], cwd=os.getcwd(),
                             env=dict(os.environ, PYTHONPATH=os.getcwd()))
    procs = []
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            procs = psutil.Process(owner.pid).children(recursive=True)
            if sum("forkserver" in " ".join(p.cmdline()) for p in procs) >= 3:  # server + 2 workers
                break
            time.sleep(0.05)
        assert len(procs) >= 3
        os.kill(owner.pid, signal.SIGKILL)
        owner.wait()
        t0 = time.time()

        def alive():
            return builders.alive_pids(procs)

        while alive() and time.time() - t0 < 5:
            time.sleep(0.05)
        assert alive() == []
    finally:
        for p in procs:
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass
