"""Per-image work of the CPU stages over a process pool.

Workers start with the ``forkserver`` method (a fork-started worker deadlocks in OpenCV once the
parent used it) and run OpenCV single-threaded (one image per core is the parallelism). At most
``4 x workers`` jobs are in flight, so memory stays flat however long the job list; results come
back in job order, with a tqdm bar. One worker: the same function in this process, no pool, with
OpenCV single-threaded and the memory policy of a worker (one worker is one core: what the
benchmarks compare).

Workers die with their parent: the fork server and every worker ask the kernel for SIGKILL when
their parent dies (Linux ``prctl(PR_SET_PDEATHSIG)``; elsewhere a thread that watches the parent
id), so ``kill -9`` of the stage process leaves no server or worker writing into its temp folder.
"""
from __future__ import annotations

import collections
import concurrent.futures as cf
import ctypes
import functools
import multiprocessing
import os
import signal
import sys
import threading
import time
from typing import Callable, Iterator, Sequence, TypeVar

from tqdm import tqdm

R = TypeVar("R")


@functools.cache
def keep_freed_memory() -> None:
    """Let glibc keep freed memory for the next image instead of handing every large block back to the
    kernel. A fresh process (every pool worker) starts with a 128 KiB mmap threshold, so each
    full-size array or OpenCV scratch buffer is mapped and faulted in anew (the cost: docs/params.md,
    workers). No-op without glibc; once per process."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    m_trim_threshold, m_mmap_threshold = -1, -3
    libc.mallopt(m_mmap_threshold, 64 << 20)   # blocks below 64 MiB come from the heap
    libc.mallopt(m_trim_threshold, 512 << 20)  # and up to 512 MiB of freed heap stays


_OWNER_ENV = "DENTSYNTH_POOL_OWNER"          # pid of the process that started the fork server
_SERVER_ENV = "DENTSYNTH_POOL_FORKSERVER"    # pid of the fork server (set in the server, inherited by workers)


def die_with_parent(parent: int | None = None) -> None:
    """SIGKILL this process as soon as its parent (``parent``, default the current one) is gone."""
    parent = os.getppid() if parent is None else parent
    armed = False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        armed = libc.prctl(pr_set_pdeathsig, int(signal.SIGKILL), 0, 0, 0) == 0
    except (OSError, AttributeError):
        armed = False
    if not armed:  # no prctl (not Linux): watch the parent id
        def watch() -> None:
            while os.getppid() == parent:
                time.sleep(0.2)
            os._exit(1)

        threading.Thread(target=watch, name="die-with-parent", daemon=True).start()
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)


def _in_fork_server() -> None:
    """Run on import: in the fork server (a child of the pool's owner that preloads this module)
    arm the death signal and tell the workers the server's pid."""
    if _is_fork_server():
        die_with_parent()
        os.environ[_SERVER_ENV] = str(os.getpid())


def _is_fork_server() -> bool:
    if os.environ.get(_OWNER_ENV) != str(os.getppid()):
        return False
    try:  # the server runs `python -c 'from multiprocessing.forkserver import main; main(...)'`
        with open(f"/proc/{os.getpid()}/cmdline", "rb") as f:
            return b"multiprocessing.forkserver" in f.read()
    except OSError:
        return "multiprocessing.forkserver" in sys.modules and sys.argv[:1] == ["-c"]


def init_worker() -> None:
    import cv2

    server = os.environ.get(_SERVER_ENV)
    die_with_parent(int(server) if server else None)
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    cv2.setNumThreads(1)
    keep_freed_memory()


# One thread per worker for the numeric libraries too: their default (a thread per core, busy-waiting)
# in every worker oversubscribes the cores (docs/params.md, workers). Set before the fork server
# starts, so it and every worker inherit it.
_SINGLE_THREADED = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def pool(workers: int, preload: tuple[str, ...] = ()) -> cf.ProcessPoolExecutor:
    """A pool of ``workers`` processes forked from a server that has imported ``preload`` and every
    pipeline module this process has imported, once: a worker then starts in milliseconds instead of
    importing them again (Python's own ``__main__`` preload never happens for ``python -m``;
    albumentations alone takes 2 s). The first pool of a process starts the server; later pools
    reuse it."""
    for var in _SINGLE_THREADED:
        os.environ.setdefault(var, "1")
    os.environ[_OWNER_ENV] = str(os.getpid())  # the server started for this process dies with it
    ctx = multiprocessing.get_context("forkserver")
    # what this process already imported of the pipeline: the worker re-runs the main module, whose
    # imports then come from the server's memory (preloading the main module itself makes runpy warn)
    imported = sorted(m for m in sys.modules if m.startswith(f"{__package__}."))
    ctx.set_forkserver_preload(list(dict.fromkeys([__name__, *preload, *imported])))
    return cf.ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=init_worker)


def imap(fn: Callable[..., R], jobs: Sequence[tuple], workers: int, desc: str = "",
         progress: bool = True) -> Iterator[R]:
    """``fn(*job)`` for every job, in job order."""
    bar = tqdm(total=len(jobs), desc=desc, unit="img", disable=not progress)
    try:
        if workers <= 1:
            import cv2

            threads = cv2.getNumThreads()
            cv2.setNumThreads(1)
            keep_freed_memory()  # as in a worker (process-wide; it stays set)
            try:
                for job in jobs:
                    yield fn(*job)
                    bar.update()
            finally:
                cv2.setNumThreads(threads)
            return
        with pool(workers, (fn.__module__,)) as ex:
            window: collections.deque[cf.Future] = collections.deque()
            for job in jobs:
                window.append(ex.submit(fn, *job))
                if len(window) >= 4 * workers:
                    yield window.popleft().result()
                    bar.update()
            while window:
                yield window.popleft().result()
                bar.update()
    finally:
        bar.close()


_in_fork_server()
