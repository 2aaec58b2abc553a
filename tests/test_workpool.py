"""The shared process pool: job order, one worker in-process and single-threaded like a worker."""
from __future__ import annotations

import os

import cv2

from pipeline import workpool


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
