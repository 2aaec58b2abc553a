"""The process pool's machine-level figures (:mod:`pipeline.core.workpool`), measured here rather than
asserted in the tests (they depend on the machine's load; the tests check the behaviour behind them):

- ``page_faults``: minor page faults and milliseconds per near-duplicate check (OpenCV scratch
  buffers allocated and freed per call) in a pool worker, which keeps freed memory
  (``keep_freed_memory``), against a fresh process that does not. Target: under 1,000 faults per
  three checks in the worker (measured before: ~7,800 per check without, none with).
- ``die_with_parent``: seconds from ``kill -9`` of a pool's owner until its fork server and workers
  are gone. Target: under 5 s.

    python -m bench.workpool
"""
from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import markdown_table, save
from pipeline.core import workpool

CHECKS = 3


def _fingerprints():
    import numpy as np

    from pipeline.audit import duplicates

    rng = np.random.default_rng(0)
    return tuple(duplicates.fingerprint(rng.random((384, 768), dtype=np.float32)) for _ in range(2))


def duplicate_checks(a, b, n: int = CHECKS) -> tuple[int, float]:
    """(minor page faults, seconds) of ``n`` near-duplicate checks in this process, after a first one."""
    import resource

    from pipeline.audit import duplicates

    duplicates.fine_similarity(a, b)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    t0 = time.perf_counter()
    for _ in range(n):
        duplicates.fine_similarity(a, b)
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before, time.perf_counter() - t0


def page_faults() -> list[dict]:
    a, b = _fingerprints()
    (pool_faults, pool_s), = workpool.imap(duplicate_checks, [(a, b)], 2, progress=False)
    # a fresh process with glibc's defaults: a plain spawn pool, no workpool initializer
    with cf.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as ex:
        plain_faults, plain_s = ex.submit(duplicate_checks, a, b).result()
    return [{"case": "pool worker (keep_freed_memory)", "faults_per_check": pool_faults / CHECKS,
             "ms_per_check": 1000 * pool_s / CHECKS, "target": "< 333", "met": pool_faults < 1000},
            {"case": "fresh process (glibc defaults)", "faults_per_check": plain_faults / CHECKS,
             "ms_per_check": 1000 * plain_s / CHECKS, "target": "", "met": ""}]


OWNER = ("import time\nfrom pipeline.core import workpool\n"
         "def nap(i):\n    time.sleep(600)\n"
         "if __name__ == '__main__':\n"
         "    list(workpool.imap(nap, [(i,) for i in range(4)], 2, progress=False))\n")


def die_with_parent(timeout: float = 120.0) -> dict:
    import psutil

    repo = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "owner.py"
        script.write_text(OWNER)
        owner = subprocess.Popen([sys.executable, str(script)], cwd=repo,
                                 env=dict(os.environ, PYTHONPATH=str(repo)))
        procs: list = []
        try:
            deadline = time.monotonic() + timeout
            while sum("forkserver" in " ".join(p.cmdline()) for p in procs) < 3:   # server + 2 workers
                if time.monotonic() > deadline:
                    raise RuntimeError("the pool did not start")
                time.sleep(0.1)
                procs = psutil.Process(owner.pid).children(recursive=True)
            os.kill(owner.pid, signal.SIGKILL)
            owner.wait()
            t0 = time.perf_counter()
            _, alive = psutil.wait_procs(procs, timeout=timeout)
            seconds = time.perf_counter() - t0
        finally:
            for p in procs:
                try:
                    p.kill()
                except psutil.NoSuchProcess:
                    pass
    return {"case": "kill -9 of the pool's owner", "seconds_until_gone": seconds, "left_alive": len(alive),
            "target": "< 5 s", "met": not alive and seconds < 5}


def main() -> None:
    faults = page_faults()
    death = die_with_parent()
    table = (markdown_table(faults, ["case", "faults_per_check", "ms_per_check", "target", "met"]) + "\n\n"
             + markdown_table([death], ["case", "seconds_until_gone", "left_alive", "target", "met"]))
    save("workpool", {"page_faults": faults, "die_with_parent": death}, table)


if __name__ == "__main__":
    main()
