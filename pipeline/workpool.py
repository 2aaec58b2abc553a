"""Per-image work of the CPU stages over a process pool.

Workers start with the ``forkserver`` method (a fork-started worker deadlocks in OpenCV once the
parent used it) and run OpenCV single-threaded (one image per core is the parallelism). At most
``4 x workers`` jobs are in flight, so memory stays flat however long the job list; results come
back in job order, with a tqdm bar. One worker: the same function in this process, no pool.
"""
from __future__ import annotations

import collections
import concurrent.futures as cf
import multiprocessing
import os
from typing import Callable, Iterable, Iterator, TypeVar

from tqdm import tqdm

R = TypeVar("R")


def init_worker() -> None:
    import cv2

    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    cv2.setNumThreads(1)


def pool(workers: int) -> cf.ProcessPoolExecutor:
    return cf.ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("forkserver"),
                                  initializer=init_worker)


def imap(fn: Callable[..., R], jobs: Iterable[tuple], workers: int, desc: str = "", progress: bool = True,
         total: int | None = None) -> Iterator[R]:
    """``fn(*job)`` for every job, in job order."""
    jobs = list(jobs) if total is None and not hasattr(jobs, "__len__") else jobs
    bar = tqdm(total=total if total is not None else len(jobs), desc=desc, unit="img", disable=not progress)
    try:
        if workers <= 1:
            for job in jobs:
                yield fn(*job)
                bar.update()
            return
        with pool(workers) as ex:
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
