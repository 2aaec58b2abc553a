"""The shared process pool: job order, one worker in-process and single-threaded like a worker."""
from __future__ import annotations

import os

import cv2
import pytest

from pipeline.core import workpool


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


_MALLINFO2 = ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
              "keepcost")   # glibc's struct mallinfo2 (2.33+), all size_t


def _large_block_probe(size: int = 48 << 20) -> tuple[int, int] | None:
    """(bytes glibc mmapped for one malloc of ``size``, bytes of free heap it keeps once that block is
    freed), in this process; None without glibc's mallinfo2. 48 MiB is above glibc's largest dynamic
    mmap threshold (32 MiB on 64-bit), so with glibc's defaults such a block is always mmapped and
    handed back on free; with the pool's memory policy (mmap threshold 64 MiB, trim 512 MiB) it comes
    from the heap and stays there for the next image."""
    import ctypes

    class MallInfo2(ctypes.Structure):
        _fields_ = [(n, ctypes.c_size_t) for n in _MALLINFO2]

    try:
        libc = ctypes.CDLL("libc.so.6")
        info = libc.mallinfo2
    except (OSError, AttributeError):
        return None
    info.restype = MallInfo2
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    before = info().hblkhd
    block = libc.malloc(size)
    mapped = info().hblkhd - before
    libc.free(block)
    return mapped, info().fordblks


def test_workers_keep_freed_memory_for_the_next_image(tmp_path):
    """A 48 MiB block in a pool worker (and in the one-worker path, here) comes from the heap and stays
    there once freed; in a fresh process with glibc's defaults the same block is mmapped: the probe can
    tell the two apart. (What that saves per image, in page faults and time: ``python -m bench.workpool``.)"""
    import ast
    import subprocess
    import sys

    script = tmp_path / "fresh.py"
    script.write_text("import sys\nsys.path.insert(0, sys.argv[1])\n"
                      "from tests.core.test_workpool import _large_block_probe\nprint(_large_block_probe())\n")
    fresh = subprocess.run([sys.executable, str(script), os.getcwd()], capture_output=True, text=True, check=True)
    if fresh.stdout.strip() == "None":
        pytest.skip("no glibc mallinfo2 here")
    mapped, _ = ast.literal_eval(fresh.stdout)
    assert mapped >= 48 << 20, "glibc's defaults should mmap a 48 MiB block"
    for workers in (2, 1):
        (probe,) = workpool.imap(_large_block_probe, [()], workers, progress=False)
        mapped, kept = probe
        assert mapped == 0 and kept >= 48 << 20, (workers, probe)


def test_workers_and_fork_server_die_with_their_parent(tmp_path):
    """kill -9 of the process that owns a pool: its fork server and workers go too. Waited for, with a
    generous timeout (how fast: ``python -m bench.workpool``)."""
    import signal
    import subprocess
    import sys
    import time

    import psutil

    script = tmp_path / "owner.py"
    script.write_text("import time\nfrom pipeline.core import workpool\n"
                      "def nap(i):\n    time.sleep(600)\n"
                      "if __name__ == '__main__':\n"
                      "    list(workpool.imap(nap, [(i,) for i in range(4)], 2, progress=False))\n")
    owner = subprocess.Popen([sys.executable, str(script)], cwd=os.getcwd(),
                             env=dict(os.environ, PYTHONPATH=os.getcwd()))
    procs = []
    try:
        deadline = time.monotonic() + 120
        while sum("forkserver" in " ".join(p.cmdline()) for p in procs) < 3:   # server + 2 workers
            assert owner.poll() is None and time.monotonic() < deadline, "the pool did not start"
            time.sleep(0.1)
            procs = psutil.Process(owner.pid).children(recursive=True)
        os.kill(owner.pid, signal.SIGKILL)
        owner.wait()
        _, alive = psutil.wait_procs(procs, timeout=120)   # the nap is 600 s: only the death signal ends them
        assert alive == []
    finally:
        for p in procs:
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass
