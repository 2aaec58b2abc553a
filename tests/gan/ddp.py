"""Helpers of the multi-process tests: ``world`` gloo processes on the CPU, each running one of
:mod:`tests.gan.ddp_workers`' functions with torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK,
MASTER_ADDR/PORT), killed together at a deadline (a rank waiting in a collective for a peer that
went elsewhere would otherwise hang the test)."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_ranks(worker: str, out: Path, *args: str, world: int = 2, timeout: float = 120) -> list[str]:
    """Run ``ddp_workers.<worker>(out, *args)`` on ``world`` ranks; their stderr tails, or an
    AssertionError naming the ranks that failed or hung."""
    out.mkdir(parents=True, exist_ok=True)
    port = str(free_port())
    code = "import sys; from tests.gan import ddp_workers as w; getattr(w, sys.argv[1])(*sys.argv[2:])"
    procs = []
    for rank in range(world):
        env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "RANK": str(rank),
               "WORLD_SIZE": str(world), "LOCAL_RANK": str(rank), "LOCAL_WORLD_SIZE": str(world),
               "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port}
        log = open(out / f"rank{rank}.log", "w")
        procs.append((subprocess.Popen([sys.executable, "-c", code, worker, str(out), *args], cwd=REPO, env=env,
                                       stdout=log, stderr=subprocess.STDOUT), log))
    deadline = time.monotonic() + timeout
    try:
        while any(p.poll() is None for p, _ in procs) and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        for p, log in procs:
            if p.poll() is None:
                p.kill()
            p.wait()
            log.close()
    logs = [(out / f"rank{r}.log").read_text() for r in range(world)]
    bad = [f"rank {r} rc {p.returncode}:\n{logs[r][-2500:]}" for r, (p, _) in enumerate(procs) if p.returncode != 0]
    assert not bad, ("hung or failed (deadline %.0f s)\n" % timeout) + "\n".join(bad)
    return logs
